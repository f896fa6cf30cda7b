package cas

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Checks of the store against its files. Invariants:
//   - Every pack the index names exists under its final name and is at least as long as
//     the index records; a chunk in a pack that is not is lost, whatever the index says.
//   - Quarantine only drops index entries (no pack changes), so it is safe beside other
//     processes: a chunk dropped is stored again by the next build or copy that has it.

// PackProblem is a pack the index names that is missing or shorter than recorded.
type PackProblem struct {
	Pack   uint64
	Reason string
	Chunks []Hash // the chunks the index places in it
}

// CheckPacks stats every pack the index names, as of the working copy of the index.
func (s *Local) CheckPacks(ctx context.Context) ([]PackProblem, error) {
	if err := s.idx.load(ctx); err != nil {
		return nil, err
	}
	bad := map[uint64]*PackProblem{}
	var order []uint64
	for n, size := range s.idx.packSizes() {
		reason := ""
		fi, err := os.Stat(s.packPath(n))
		switch {
		case errors.Is(err, os.ErrNotExist):
			reason = "is missing"
		case err != nil:
			return nil, err
		case fi.Size() < size:
			reason = fmt.Sprintf("is %d bytes, the index records %d", fi.Size(), size)
		}
		if reason != "" {
			bad[n] = &PackProblem{Pack: n, Reason: reason}
			order = append(order, n)
		}
	}
	if len(bad) == 0 {
		return nil, nil
	}
	for h, l := range s.idx.snapshot() {
		if p := bad[l.pack]; p != nil {
			p.Chunks = append(p.Chunks, h)
		}
	}
	slices.Sort(order)
	out := make([]PackProblem, 0, len(order))
	for _, n := range order {
		slices.SortFunc(bad[n].Chunks, Hash.Compare)
		out = append(out, *bad[n])
	}
	return out, nil
}

// Absent returns the hashes of hs that the store cannot serve: not indexed, or indexed in
// a pack that is missing or too short. It is Missing that also looks at the pack files.
func (s *Local) Absent(ctx context.Context, hs []Hash) ([]Hash, error) {
	sorted := slices.Clone(hs)
	slices.SortFunc(sorted, Hash.Compare)
	sorted = slices.Compact(sorted)
	locs, oks, err := s.locate(ctx, sorted)
	if err != nil {
		return nil, err
	}
	packOK := map[uint64]bool{}
	sizes := s.idx.packSizes()
	var out []Hash
	for i, h := range sorted {
		if !oks[i] {
			out = append(out, h)
			continue
		}
		n := locs[i].pack
		ok, seen := packOK[n]
		if !seen {
			if size, sealed := sizes[n]; sealed {
				fi, err := os.Stat(s.packPath(n))
				ok = err == nil && fi.Size() >= size
			} else {
				ok = true // in this process's open or sealing pack
			}
			packOK[n] = ok
		}
		if !ok {
			out = append(out, h)
		}
	}
	return out, nil
}

// Quarantine drops chunks from the index (not from the packs): what fsck does with chunks
// that failed verification or whose pack is lost, so that the next build or copy that
// brings their content stores them again.
func (s *Local) Quarantine(ctx context.Context, hs []Hash) error {
	if len(hs) == 0 {
		return nil
	}
	if err := s.idx.load(ctx); err != nil {
		return err
	}
	return s.idx.deleteChunks(ctx, hs)
}
