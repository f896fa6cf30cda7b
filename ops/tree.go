package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/formats"
)

// StoreTree stores the directory dir as one tree and returns what was stored.
func StoreTree(ctx context.Context, in *Instance, dir string, p cas.Progress) (*cas.IngestResult, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, Errorf(KindNotFound, "", "store %s: %w", dir, formats.UnwrapPathErr(err))
	}
	if !fi.IsDir() {
		return nil, Errorf(KindUsage, "give a directory", "store %s: not a directory", dir)
	}
	return cas.Ingest(ctx, in.Store, []cas.Input{{Src: dir}}, cas.IngestOptions{Progress: p})
}

// ExtractTree writes the stored tree h into dir, which must be missing or empty, and
// returns what it holds.
func ExtractTree(ctx context.Context, in *Instance, h cas.Hash, dir string, p cas.Progress) (cas.Totals, error) {
	m, err := cas.OpenManifest(ctx, in.Chunks, h)
	if errors.Is(err, cas.ErrNotFound) {
		return cas.Totals{}, Errorf(KindNotFound, "swcli store put prints the tree's hash", "no tree %s in %s", h, in.Root)
	}
	if err != nil {
		return cas.Totals{}, err
	}
	defer m.Close()
	if err := cas.MaterializeStream(ctx, in.Chunks, m, dir, cas.MaterializeOptions{Progress: p}); err != nil {
		if errors.Is(err, cas.ErrNotEmpty) {
			return cas.Totals{}, Errorf(KindExists, "choose an empty or new directory", "%w", err)
		}
		return cas.Totals{}, err
	}
	return m.Totals(), nil
}

// FsckReport is what Fsck found.
type FsckReport struct {
	Chunks, Bytes int64
	Packs         []cas.PackProblem // packs missing or shorter than the index says
	Problems      []FsckProblem     // each bad or lost chunk, with what uses it
	SizeLies      []string          // files whose manifest size is not their chunks' sum
}

// sizeLies finds the files of live versions whose size in the manifest is not the sum of
// their chunks' sizes (extract refuses them as it writes; fsck names them).
func sizeLies(ctx context.Context, in *Instance) ([]string, error) {
	vs, err := in.Ledger.AllVersions()
	if err != nil {
		return nil, err
	}
	type file struct {
		v *ledger.Version
		e cas.Entry
	}
	var files []file
	need := map[cas.Hash]int64{}
	for _, v := range vs {
		if v.Status != ledger.StatusLive {
			continue
		}
		m, err := cas.LoadManifest(ctx, in.Chunks, v.Manifest)
		if err != nil {
			continue // a lost manifest is reported as a lost chunk
		}
		for _, e := range m.Entries {
			if e.Kind != cas.KindFile {
				continue
			}
			files = append(files, file{v, e})
			for _, h := range e.Chunks {
				need[h] = -1
			}
		}
	}
	if len(need) == 0 {
		return nil, nil
	}
	if err := in.Chunks.Walk(ctx, func(ci cas.ChunkInfo) error {
		if _, ok := need[ci.Hash]; ok {
			need[ci.Hash] = ci.Size
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		var sum int64
		known := true
		for _, h := range f.e.Chunks {
			n := need[h]
			if n < 0 {
				known = false // a lost chunk: reported as such
				break
			}
			sum += n
		}
		if known && sum != f.e.Size {
			out = append(out, fmt.Sprintf("%s/runtime/%s/version/%s: %s says %d bytes, its chunks hold %d",
				f.v.Project, f.v.Runtime, f.v.ID, f.e.Path, f.e.Size, sum))
		}
	}
	return out, nil
}

// FsckProblem is a chunk that failed verification or whose pack is lost.
type FsckProblem struct {
	Hash   cas.Hash
	Reason string
	Uses   []ChunkUse // versions and paths that need it (none: garbage)
}

// ChunkUse is a file (or the manifest itself: Path "") of a version that uses a chunk.
type ChunkUse struct {
	Project, Runtime, Version, Path string
}

func (u ChunkUse) String() string {
	p := u.Path
	if p == "" {
		p = "(manifest)"
	}
	return fmt.Sprintf("%s/runtime/%s/version/%s: %s", u.Project, u.Runtime, u.Version, p)
}

// Fsck checks that every pack the index names is there, and re-hashes every stored chunk.
// Each bad or lost chunk is named with the versions and files that use it, and dropped
// from the index (cas.Local.Quarantine): a build or copy that has its content stores it
// again, which repairs the store.
func Fsck(ctx context.Context, in *Instance) (*FsckReport, error) {
	rep := &FsckReport{}
	reason := map[cas.Hash]string{}
	if in.Store != nil {
		packs, err := in.Store.CheckPacks(ctx)
		if err != nil {
			return nil, err
		}
		rep.Packs = packs
		for _, p := range packs {
			for _, h := range p.Chunks {
				reason[h] = fmt.Sprintf("its pack %016x %s", p.Pack, p.Reason)
			}
		}
	} else if c, ok := in.Chunks.(interface {
		CheckPacks(context.Context) (map[cas.Hash]string, error)
	}); ok {
		bad, err := c.CheckPacks(ctx)
		if err != nil {
			return nil, err
		}
		reason = bad
	}
	vr, err := cas.VerifyAll(ctx, skipLost{in.Chunks, reason})
	if err != nil {
		return nil, err
	}
	rep.Chunks, rep.Bytes = vr.Chunks, vr.Bytes
	lies, err := sizeLies(ctx, in)
	if err != nil {
		return nil, err
	}
	rep.SizeLies = lies
	for _, e := range vr.Corrupt {
		var ce *cas.CorruptError
		var ne *cas.NotFoundError
		switch {
		case errors.As(e, &ce):
			reason[ce.Hash] = ce.Reason
		case errors.As(e, &ne):
			reason[ne.Hash] = "not found"
		}
	}
	if len(reason) == 0 && len(lies) > 0 {
		return rep, &Error{Kind: KindCorrupt,
			Err:  fmt.Errorf("%d files whose manifest lies about their size; first: %s", len(lies), lies[0]),
			Hint: "remove the affected versions (-f) and copy or build them again from an intact source"}
	}
	if len(reason) == 0 {
		return rep, nil
	}
	uses, err := chunkUses(ctx, in, reason)
	if err != nil {
		return nil, err
	}
	var bad []cas.Hash
	for h, r := range reason {
		bad = append(bad, h)
		rep.Problems = append(rep.Problems, FsckProblem{Hash: h, Reason: r, Uses: uses[h]})
	}
	slices.SortFunc(rep.Problems, func(a, b FsckProblem) int { return a.Hash.Compare(b.Hash) })
	quarantine := in.Chunks.Delete // a store replicas share: dropped rows, sent again by a copy
	if in.Store != nil {
		quarantine = in.Store.Quarantine
	}
	if err := quarantine(ctx, bad); err != nil {
		return nil, fmt.Errorf("drop bad chunks from the index: %w", err)
	}
	first := rep.Problems[0]
	where := "no version uses it"
	if len(first.Uses) > 0 {
		where = "used by " + first.Uses[0].String()
		if n := len(first.Uses) - 1; n > 0 {
			where += fmt.Sprintf(" and %d more", n)
		}
	}
	return rep, &Error{Kind: KindCorrupt,
		Err:  fmt.Errorf("%d bad or lost chunks (%d packs lost or short); first: %s: %s, %s", len(rep.Problems), len(rep.Packs), first.Hash, first.Reason, where),
		Hint: "build or copy the affected versions again from an intact source: that stores the chunks again"}
}

// skipLost is a store whose Walk leaves out chunks already known lost (their packs are
// gone), so that VerifyAll does not read them.
type skipLost struct {
	ChunkStore
	lost map[cas.Hash]string
}

// GetInto and InPackOrder pass on cas.Local's fast paths (VerifyAll looks for them).
func (s skipLost) GetInto(ctx context.Context, h cas.Hash, dst []byte) ([]byte, error) {
	if l, ok := s.ChunkStore.(*cas.Local); ok {
		return l.GetInto(ctx, h, dst)
	}
	return s.Get(ctx, h)
}

func (s skipLost) InPackOrder(ctx context.Context, hs []cas.Hash) error {
	if l, ok := s.ChunkStore.(*cas.Local); ok {
		return l.InPackOrder(ctx, hs)
	}
	return nil
}

func (s skipLost) Walk(ctx context.Context, fn func(cas.ChunkInfo) error) error {
	return s.ChunkStore.Walk(ctx, func(ci cas.ChunkInfo) error {
		if _, ok := s.lost[ci.Hash]; ok {
			return nil
		}
		return fn(ci)
	})
}

// chunkUses finds, for each chunk of want, the versions (live or removed) and files that
// use it.
func chunkUses(ctx context.Context, in *Instance, want map[cas.Hash]string) (map[cas.Hash][]ChunkUse, error) {
	vs, err := in.Ledger.AllVersions()
	if err != nil {
		return nil, err
	}
	out := map[cas.Hash][]ChunkUse{}
	for _, v := range vs {
		use := ChunkUse{Project: v.Project, Runtime: v.Runtime, Version: v.ID}
		if _, ok := want[v.Manifest]; ok {
			out[v.Manifest] = append(out[v.Manifest], use)
			continue
		}
		m, err := cas.LoadManifest(ctx, in.Chunks, v.Manifest)
		if err != nil {
			continue // its manifest is reported on its own, or lost before this fsck
		}
		for _, e := range m.Entries {
			for _, h := range e.Chunks {
				if _, ok := want[h]; ok {
					u := use
					u.Path = e.Path
					out[h] = append(out[h], u)
				}
			}
		}
	}
	return out, nil
}

// GC deletes every chunk that no live or removed version uses (purged versions' chunks,
// and trees stored with 'swcli store put').
func GC(ctx context.Context, in *Instance) (cas.ReclaimReport, error) {
	if _, ok := in.Chunks.(Collector); ok {
		return CollectShared(ctx, in, DefaultGCGrace)
	}
	roots, err := in.Ledger.Manifests()
	if err != nil {
		return cas.ReclaimReport{}, err
	}
	return cas.Reclaim(ctx, in.Store, roots)
}

// DefaultGCGrace is how long a chunk the server said it has is kept by an online gc (and,
// on a store replicas share, how long a condemned chunk waits before it is deleted).
const DefaultGCGrace = 30 * time.Minute

// Collector is a store replicas share (cas.ObjectPacks over S3): gc in two steps a grace apart.
type Collector interface {
	Collect(ctx context.Context, keep func(cas.Hash) bool, grace time.Duration) (cas.ReclaimReport, error)
}

// CollectShared collects a store replicas share: it keeps every chunk of a live or
// removed version and every upload not yet committed (server_uploads), condemns the rest,
// and deletes what was condemned more than grace ago (cas.ObjectPacks.Collect).
//
// The uploads are read before the ledger: a commit appends its versions, then forgets the
// uploads they use, so a chunk whose upload row is gone at the first read is used by a
// version at the second. The other way round, a commit between the two reads had its new
// chunks condemned (answered as missing until a later gc kept them).
func CollectShared(ctx context.Context, in *Instance, grace time.Duration) (cas.ReclaimReport, error) {
	c := in.Chunks.(Collector)
	pending, err := PendingUploads(ctx, in)
	if err != nil {
		return cas.ReclaimReport{}, err
	}
	roots, err := in.Ledger.Manifests()
	if err != nil {
		return cas.ReclaimReport{}, err
	}
	live := map[cas.Hash]bool{}
	for _, root := range roots {
		m, err := cas.LoadManifest(ctx, in.Chunks, root)
		if err != nil {
			return cas.ReclaimReport{}, fmt.Errorf("gc: %w", err)
		}
		live[root] = true
		for _, h := range m.Chunks() {
			live[h] = true
		}
	}
	return c.Collect(ctx, func(h cas.Hash) bool { return live[h] || pending[h] }, grace)
}

// PendingUploads lists the chunks users of a server on PostgreSQL have sent and not yet
// committed (server_uploads): a gc of the store the replicas share keeps them.
func PendingUploads(ctx context.Context, in *Instance) (map[cas.Hash]bool, error) {
	if in.DB == nil {
		return map[cas.Hash]bool{}, nil
	}
	return QueryHashes(ctx, in, "SELECT DISTINCT hash FROM server_uploads")
}

// QueryHashes runs a query of the instance's database whose rows are hashes.
func QueryHashes(ctx context.Context, in *Instance, sql string, args ...any) (map[cas.Hash]bool, error) {
	rows, err := in.DB.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[cas.Hash]bool{}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		out[cas.Hash(b)] = true
	}
	return out, rows.Err()
}
