package console

import (
	"slices"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/server"
)

// maxDiffed bounds each side of a text diff.
const maxDiffed = 256 << 10

type change struct {
	Path, Kind   string
	SizeA, SizeB int64
	Diffable     bool
}

type textDiff struct {
	Path, Diff string
}

// Comparison is what two versions of a runtime differ in.
type Comparison struct {
	A, B                    api.VersionDTO
	Added, Removed, Changed []change
	NAdded, NRemoved        int
	NChanged, NSame         int
	AddedBytes              int64 // content of files added
	NewContent              int64 // content in chunks of B that A lacks: what B adds to a store holding A
	Diffs                   []textDiff
}

func (c *Console) compare(q *req) error {
	_, p, err := c.project(q)
	if err != nil {
		return err
	}
	r := q.PathValue("r")
	qs := q.URL.Query()
	refs := qs["v"]
	if a, b := qs.Get("a"), qs.Get("b"); a != "" || b != "" {
		refs = []string{a, b}
	}
	if len(refs) != 2 || refs[0] == "" || refs[1] == "" {
		return ops.Errorf(ops.KindUsage, "tick two versions in the table, then Compare", "comparing needs two versions, %d given", len(refs))
	}
	var vs [2]*ledger.Version
	for i, ref := range refs {
		if vs[i], err = server.ResolveAny(c.in, p, r, ref); err != nil {
			return err
		}
	}
	if vs[0].Seq > vs[1].Seq { // older first
		vs[0], vs[1] = vs[1], vs[0]
	}
	var ms [2]*cas.Manifest
	for i, v := range vs {
		if ms[i], err = cas.LoadManifest(q.ctx(), c.in.Chunks, v.Manifest); err != nil {
			return err
		}
	}
	cmp, err := c.diff(q, ms[0], ms[1], qs.Get("diff"))
	if err != nil {
		return err
	}
	cmp.A, cmp.B = api.DTO(vs[0]), api.DTO(vs[1])
	data := map[string]any{"Project": p, "Runtime": r, "C": cmp, "Base": runtimeURL(p, r)}
	return c.render(q, "compare", r+" · compare", append(runtimeCrumbs(p, r), crumb{"compare", ""}), data)
}

func sameEntry(a, b *cas.Entry) bool {
	return a.Kind == b.Kind && a.Mode == b.Mode && a.Size == b.Size && a.Target == b.Target && slices.Equal(a.Chunks, b.Chunks)
}

// shownDiff says which changed files get a text diff without asking: runtime.yaml and
// the locks.
func shownDiff(p string) bool {
	return p == "runtime.yaml" || strings.Contains(p, ".starwhale/lock/")
}

func (c *Console) diff(q *req, a, b *cas.Manifest, want string) (*Comparison, error) {
	cmp := &Comparison{}
	inA := make(map[cas.Hash]bool, len(a.Entries))
	for i := range a.Entries {
		for _, h := range a.Entries[i].Chunks {
			inA[h] = true
		}
	}
	counted := map[cas.Hash]bool{}
	for i := range b.Entries {
		e := &b.Entries[i]
		for _, h := range e.Chunks {
			if inA[h] || counted[h] {
				continue
			}
			counted[h] = true
			if len(e.Chunks) == 1 {
				cmp.NewContent += e.Size
				continue
			}
			n, err := server.ChunkLen(q.ctx(), c.in, h)
			if err != nil {
				return nil, err
			}
			cmp.NewContent += n
		}
	}
	add := func(list *[]change, n *int, ch change) {
		*n++
		if len(*list) < maxCompareRows {
			*list = append(*list, ch)
		}
	}
	var diffs []change
	i, j := 0, 0
	for i < len(a.Entries) || j < len(b.Entries) {
		switch {
		case j == len(b.Entries) || (i < len(a.Entries) && a.Entries[i].Path < b.Entries[j].Path):
			e := &a.Entries[i]
			add(&cmp.Removed, &cmp.NRemoved, change{Path: e.Path, Kind: e.Kind.String(), SizeA: e.Size})
			i++
		case i == len(a.Entries) || b.Entries[j].Path < a.Entries[i].Path:
			e := &b.Entries[j]
			cmp.AddedBytes += e.Size
			add(&cmp.Added, &cmp.NAdded, change{Path: e.Path, Kind: e.Kind.String(), SizeB: e.Size})
			j++
		default:
			ea, eb := &a.Entries[i], &b.Entries[j]
			if sameEntry(ea, eb) {
				cmp.NSame++
			} else {
				ch := change{Path: eb.Path, Kind: eb.Kind.String(), SizeA: ea.Size, SizeB: eb.Size,
					Diffable: ea.Kind == cas.KindFile && eb.Kind == cas.KindFile && ea.Size <= maxDiffed && eb.Size <= maxDiffed}
				add(&cmp.Changed, &cmp.NChanged, ch)
				if ch.Diffable && (shownDiff(ch.Path) || ch.Path == want) {
					diffs = append(diffs, ch)
				}
			}
			i++
			j++
		}
	}
	for _, ch := range diffs {
		ea, _ := findEntry(a, ch.Path)
		eb, _ := findEntry(b, ch.Path)
		ta, err := server.ReadVersionFile(q.ctx(), c.in, ea, maxDiffed)
		if err != nil {
			return nil, err
		}
		tb, err := server.ReadVersionFile(q.ctx(), c.in, eb, maxDiffed)
		if err != nil {
			return nil, err
		}
		d := "(binary content differs)"
		if isText(ta) && isText(tb) {
			d = udiff.Unified("a/"+ch.Path, "b/"+ch.Path, string(ta), string(tb))
		}
		cmp.Diffs = append(cmp.Diffs, textDiff{Path: ch.Path, Diff: d})
	}
	return cmp, nil
}
