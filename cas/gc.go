package cas

import (
	"context"
	"errors"
	"fmt"
)

// Whole-store checks and garbage collection over any store: VerifyAll re-hashes every
// chunk, Reclaim deletes what no kept manifest names (the deleting itself, and its
// invariants, are the store's: repack.go for Local).

// packOrderer is a store that can sort hashes the way its chunks lie (Local).
type packOrderer interface {
	InPackOrder(ctx context.Context, hs []Hash) error
}

// VerifyReport is what VerifyAll found.
type VerifyReport struct {
	Chunks  int64
	Bytes   int64
	Corrupt []error // one per chunk that failed, each naming it
}

// VerifyAll reads every chunk of st and checks its hash. A bad chunk is reported in the
// result, not returned as an error; an error means the walk itself failed.
func VerifyAll(ctx context.Context, st interface {
	Walker
	Getter
}) (VerifyReport, error) {
	var r VerifyReport
	var buf []byte
	bg, fast := st.(bufGetter)
	var infos []ChunkInfo
	if err := st.Walk(ctx, func(ci ChunkInfo) error {
		infos = append(infos, ci)
		return nil
	}); err != nil {
		return r, err
	}
	if l, ok := st.(packOrderer); ok { // read each compressed group once
		hs := make([]Hash, len(infos))
		size := make(map[Hash]int64, len(infos))
		for i, ci := range infos {
			hs[i], size[ci.Hash] = ci.Hash, ci.Size
		}
		if err := l.InPackOrder(ctx, hs); err != nil {
			return r, err
		}
		for i, h := range hs {
			infos[i] = ChunkInfo{Hash: h, Size: size[h]}
		}
	}
	err := func(fn func(ChunkInfo) error) error {
		for i, ci := range infos {
			if i%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if err := fn(ci); err != nil {
				return err
			}
		}
		return nil
	}(func(ci ChunkInfo) error {
		var err error
		if fast {
			var data []byte
			data, err = bg.GetInto(ctx, ci.Hash, buf)
			if err == nil && cap(data) > cap(buf) {
				buf = data[:0]
			}
		} else {
			_, err = st.Get(ctx, ci.Hash)
		}
		r.Chunks++
		r.Bytes += ci.Size
		if err != nil {
			if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
				r.Corrupt = append(r.Corrupt, err)
				return nil
			}
			return err
		}
		return nil
	})
	return r, err
}

// ReclaimReport is what Reclaim removed.
type ReclaimReport struct {
	Live, Deleted int64
	DeletedBytes  int64 // content bytes
	// Condemned counts chunks no version uses that a later gc deletes once the grace has
	// passed (a store replicas share: S3.Collect).
	Condemned int64
}

// Reclaim deletes every chunk not reachable from the given manifests (the manifests
// themselves and the chunks they list). A root that cannot be read is an error and nothing
// is deleted: a manifest missing by mistake must not turn its whole tree into garbage.
func Reclaim(ctx context.Context, st Store, roots []Hash) (ReclaimReport, error) {
	return ReclaimKeeping(ctx, st, roots, nil)
}

// ReclaimKeeping is Reclaim that also keeps every chunk keep says to (chunks a running
// server has been sent or has promised, but no version uses yet).
func ReclaimKeeping(ctx context.Context, st Store, roots []Hash, keep func(Hash) bool) (ReclaimReport, error) {
	var r ReclaimReport
	if err := st.Flush(ctx); err != nil {
		return r, err
	}
	live := map[Hash]struct{}{}
	for _, root := range roots {
		m, err := LoadManifest(ctx, st, root)
		if err != nil {
			return r, fmt.Errorf("reclaim: %w", err)
		}
		live[root] = struct{}{}
		for _, e := range m.Entries {
			for _, h := range e.Chunks {
				live[h] = struct{}{}
			}
		}
	}
	var dead []Hash
	err := st.Walk(ctx, func(ci ChunkInfo) error {
		if _, ok := live[ci.Hash]; ok || (keep != nil && keep(ci.Hash)) {
			r.Live++
			return nil
		}
		dead = append(dead, ci.Hash)
		r.Deleted++
		r.DeletedBytes += ci.Size
		return nil
	})
	if err != nil {
		return r, err
	}
	if len(dead) == 0 {
		return r, nil
	}
	return r, st.Delete(ctx, dead)
}
