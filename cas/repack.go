package cas

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Garbage collection's part in the store: deleting chunks and rewriting packs. Invariants:
//
//   - It runs only while the store is held exclusively (LocalOptions.Exclusive): no other
//     process reads a pack that gc deletes, or writes a chunk that gc counts as garbage.
//   - A pack is deleted only after every live chunk it held is durable and indexed in
//     another pack, and the index no longer names it.

// repackBelow: a pack whose live bytes fall under this share of its size is rewritten.
const repackBelow = 0.5

// ErrNotExclusive is returned by Delete on a store opened without LocalOptions.Exclusive.
var ErrNotExclusive = errors.New("deleting chunks needs the store opened exclusively")

// Delete implements Deleter. Packs left with no live chunk are removed; packs left mostly
// garbage have their live chunks rewritten to a new pack and are then removed.
func (s *Local) Delete(ctx context.Context, hs []Hash) error {
	if !s.exclusive {
		return ErrNotExclusive
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if err := s.Flush(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.dropReuseLocked() // they may be among the packs deleted below
	s.mu.Unlock()
	if err := s.idx.load(ctx); err != nil {
		return err
	}
	if err := s.idx.deleteChunks(ctx, hs); err != nil {
		return err
	}
	// Live bytes per pack, from the index.
	live := map[uint64]int64{}
	byPack := map[uint64][]Hash{}
	where := s.idx.snapshot()
	counted := map[[2]int64]bool{} // a group's bytes count once, however many chunks live in it
	for h, l := range where {
		if k := [2]int64{int64(l.pack), l.off}; !counted[k] {
			counted[k] = true
			live[l.pack] += entryHeader + l.stored
		}
		byPack[l.pack] = append(byPack[l.pack], h)
	}
	var dead []uint64
	for n, size := range s.idx.packSizes() {
		switch {
		case live[n] == 0:
			dead = append(dead, n)
		case float64(live[n]) < repackBelow*float64(size):
			hs := byPack[n]
			slices.SortFunc(hs, func(a, b Hash) int { return cmpLoc(where[a], where[b]) })
			for _, h := range hs {
				r, err := s.getSealedRaw(h, where[h])
				if err != nil {
					return err
				}
				if _, err := s.append(h, r, true); err != nil {
					return err
				}
			}
			dead = append(dead, n)
		}
	}
	// Live chunks moved out of the dead packs are durable and re-indexed before the packs go.
	if err := s.Flush(ctx); err != nil {
		return err
	}
	for _, n := range dead {
		s.files.drop(n)
		if err := os.Remove(s.packPath(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return s.idx.deletePacks(ctx, dead)
}

// getSealedRaw reads and verifies a chunk of a sealed pack.
func (s *Local) getSealedRaw(h Hash, l loc) (Raw, error) {
	r, err := s.rawAt(h, l)
	if err != nil {
		return Raw{}, fmt.Errorf("repack %s: %w", h, err)
	}
	if _, err := Decode(h, r, nil); err != nil {
		return Raw{}, err
	}
	return r, nil
}

// cmpLoc orders chunks as they lie in the packs, so that reading in this order reads each
// group once.
func cmpLoc(a, b loc) int {
	switch {
	case a.pack != b.pack:
		return cmp.Compare(a.pack, b.pack)
	case a.off != b.off:
		return cmp.Compare(a.off, b.off)
	}
	return cmp.Compare(a.inner, b.inner)
}

// InPackOrder sorts hashes the way they lie in the packs (unknown ones last): reading
// many chunks in this order decompresses each group once.
func (s *Local) InPackOrder(ctx context.Context, hs []Hash) error {
	locs, oks, err := s.locate(ctx, hs)
	if err != nil {
		return err
	}
	at := make(map[Hash]loc, len(hs))
	for i, h := range hs {
		if oks[i] {
			at[h] = locs[i]
		} else {
			at[h] = loc{pack: ^uint64(0)}
		}
	}
	slices.SortStableFunc(hs, func(a, b Hash) int { return cmpLoc(at[a], at[b]) })
	return nil
}
