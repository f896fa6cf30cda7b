package cas_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swcli/swcli/cas"
)

// smallTree writes n small, compressible files: what ingest stores in groups.
func smallTree(t *testing.T, n int) string {
	dir := t.TempDir()
	for i := range n {
		body := fmt.Sprintf("# module %d\n", i)
		for j := range 40 {
			body += fmt.Sprintf("def f%d_%d(x):\n    return x * %d\n", i, j, j)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("m%04d.py", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestGroupedChunks(t *testing.T) {
	ctx := context.Background()
	src := smallTree(t, 600)
	// And large files, whose chunks are grouped too (up to 2 MiB a group).
	for i := range 3 {
		var body []byte
		for j := 0; len(body) < 3<<20; j++ {
			body = fmt.Appendf(body, "line %d of file %d\n", j, i)
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("lib%d.so", i)), body, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dirA := t.TempDir()
	a := openLocal(t, dirA)
	res, err := cas.Ingest(ctx, a, []cas.Input{{Src: src}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.NewStored*5 > res.NewBytes {
		t.Fatalf("600 similar small files stored %d bytes of %d: not compressed together", res.NewStored, res.NewBytes)
	}
	m := manifestOf(t, a, res.Hash)
	chunks := m.Chunks()

	// Each grouped chunk leaves the store on its own, verified, and enters another.
	b := openLocal(t, t.TempDir())
	for _, h := range chunks {
		r, err := a.GetRaw(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if r.Enc == cas.EncGroup {
			t.Fatalf("GetRaw of %s answered a group", h)
		}
		if err := b.PutRaw(ctx, h, r); err != nil {
			t.Fatal(err)
		}
	}

	// A pack of groups that an index does not know is re-indexed at open.
	dirC := t.TempDir()
	c, err := cas.OpenLocal(dirC)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	packs, _ := filepath.Glob(filepath.Join(dirA, "packs", "*.pack"))
	for i, p := range packs {
		data, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(dirC, "packs", fmt.Sprintf("%016x.pack", 100+i)), data, 0o644)
	}
	c = openLocal(t, dirC)
	if miss, err := c.Missing(ctx, chunks); err != nil || len(miss) != 0 {
		t.Fatalf("after re-indexing packs of groups: %d missing, %v", len(miss), err)
	}
	out := filepath.Join(t.TempDir(), "o")
	if err := cas.Materialize(ctx, c, m, out, cas.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}

	// Deleting most chunks of the groups keeps the rest readable.
	if err := a.Delete(ctx, chunks[:500]); err != nil {
		t.Fatal(err)
	}
	for _, h := range chunks[500:] {
		if _, err := a.Get(ctx, h); err != nil {
			t.Fatalf("survivor of a repacked group: %v", err)
		}
	}
	rep, err := cas.VerifyAll(ctx, a)
	if err != nil || len(rep.Corrupt) > 0 {
		t.Fatalf("verify after delete: %v %v", rep.Corrupt, err)
	}
}

// Transfer sends a group whole when every chunk of it is asked for, and chunk by chunk
// otherwise; the receiver verifies groups before storing them.
func TestTransferGroups(t *testing.T) {
	ctx := context.Background()
	a := openLocal(t, t.TempDir())
	res, err := cas.Ingest(ctx, a, []cas.Input{{Src: smallTree(t, 300)}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := manifestOf(t, a, res.Hash)
	chunks := m.Chunks()
	// move transfers hs from a to b and checks that exactly hs arrived.
	var scratch []byte // the receiver checks every group in one buffer, as a server does
	move := func(hs []cas.Hash, b *cas.Local) (groups, single int) {
		t.Helper()
		asked := map[cas.Hash]bool{}
		for _, h := range hs {
			asked[h] = true
		}
		got := map[cas.Hash]bool{}
		err := a.Transfer(ctx, hs, func(_ int, h cas.Hash, r cas.Raw) error {
			if r.Enc != cas.EncGroup {
				single++
				got[h] = true
				return b.PutRaw(ctx, h, r)
			}
			groups++
			g, next, err := cas.CheckGroup(h, r, scratch)
			if err != nil {
				return err
			}
			scratch = next
			if r.Count != len(g.Chunks()) {
				t.Errorf("group of %d chunks sent with count %d", len(g.Chunks()), r.Count)
			}
			for _, c := range g.Chunks() {
				if !asked[c] {
					t.Errorf("a group sent whole holds %s, which was not asked for", c)
				}
				got[c] = true
			}
			_, err = b.PutGroup(ctx, g)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(asked) {
			t.Fatalf("%d chunks asked for, %d sent", len(asked), len(got))
		}
		if miss, err := b.Missing(ctx, hs); err != nil || len(miss) > 0 {
			t.Fatalf("after the transfer the receiver lacks %d chunks (%v)", len(miss), err)
		}
		return groups, single
	}

	b := openLocal(t, t.TempDir())
	if groups, single := move(chunks, b); groups == 0 || single != 0 {
		t.Fatalf("all chunks of a tree asked for: %d groups and %d single chunks sent", groups, single)
	}
	out := filepath.Join(t.TempDir(), "o")
	if err := cas.Materialize(ctx, b, m, out, cas.MaterializeOptions{}); err != nil {
		t.Fatalf("materialise from the receiving store: %v", err)
	}

	// Every other chunk: groups are not whole (but for one of a single chunk), so chunks go
	// on their own.
	c := openLocal(t, t.TempDir())
	var half []cas.Hash
	for i, h := range chunks {
		if i%2 == 0 {
			half = append(half, h)
		}
	}
	if _, single := move(half, c); single < len(half)-4 {
		t.Fatalf("every other chunk asked for: %d of %d sent on their own", single, len(half))
	}

	// A group whose bytes or name do not match is refused, naming it.
	checked := false
	a.Transfer(ctx, chunks, func(_ int, h cas.Hash, r cas.Raw) error {
		if r.Enc != cas.EncGroup {
			return nil
		}
		checked = true
		if _, err := cas.VerifyGroup(cas.Sum([]byte("another name")), r); !errors.Is(err, cas.ErrCorrupt) {
			t.Fatalf("a group under a wrong name: %v", err)
		}
		bad := r
		bad.Data = append([]byte{}, r.Data...)
		bad.Data[len(bad.Data)/2] ^= 0xff
		if _, err := cas.VerifyGroup(h, bad); !errors.Is(err, cas.ErrCorrupt) || !strings.Contains(err.Error(), h.String()) {
			t.Fatalf("a garbled group: %v", err)
		}
		// Checked in a buffer that holds the good group's content, it is refused all the same.
		_, scratch, _ = cas.CheckGroup(h, r, scratch)
		if _, _, err := cas.CheckGroup(h, bad, scratch); !errors.Is(err, cas.ErrCorrupt) {
			t.Fatalf("a garbled group checked in a used buffer: %v", err)
		}
		return errors.New("stop")
	})
	if !checked {
		t.Fatal("no group went whole to check a garbled copy of")
	}
}

// Content that repeats across a tree is stored once, however the workers meet it: files of
// 30 contents, each written 20 times, ingested by 8 workers, take the room of 30.
func TestIngestStoresRepeatedContentOnce(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	const distinct, copies, size = 30, 20, 48 << 10 // under GroupMax: grouped
	for i := range distinct {
		body := make([]byte, size)
		r := rand.New(rand.NewPCG(uint64(i), 7))
		for j := range body { // incompressible, so that a second copy shows in the packs
			body[j] = byte(r.Uint32())
		}
		for c := range copies {
			p := filepath.Join(src, fmt.Sprintf("d%02d", c), fmt.Sprintf("f%02d.bin", i))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	s := openLocal(t, dir)
	res, err := cas.Ingest(ctx, s, []cas.Input{{Src: src}}, cas.IngestOptions{Workers: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.NewChunks != distinct {
		t.Fatalf("%d new chunks for %d contents", res.NewChunks, distinct)
	}
	var packs int64
	files, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			packs += fi.Size()
		}
	}
	if limit := int64(distinct*size + len(manifestOf(t, s, res.Hash).Encode()) + 16<<10); packs > limit {
		t.Fatalf("packs hold %d bytes for %d of content (and the manifest): some content twice", packs, distinct*size)
	}
}
