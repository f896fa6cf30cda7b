package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Reads. Invariants:
//
//   - A chunk is found, in this order, in the open pack, in a pack being sealed, in the
//     working copy of the index, and last in the index database (index.fetch).
//   - Bytes are returned as stored by GetRaw (unverified); Get and GetInto verify the hash.
//   - A grouped chunk is read through the cache of decompressed groups (group.go), so
//     many chunks should be read in pack order (InPackOrder).
//   - Open pack files are shared by all readers of the process (packFiles) and closed by
//     Close or when gc deletes the pack.

// packFiles holds sealed packs open for reading: at most maxOpenPacks at once, the least
// recently used closed first, none while a read is using it. A store of 20k small packs
// (or fsck over it) needs no more files than that.
type packFiles struct {
	mu   sync.Mutex
	m    map[uint64]*packFile
	tick uint64
}

type packFile struct {
	f      *os.File
	refs   int    // reads using it now
	used   uint64 // tick of the last use
	closed bool   // dropped while in use: closed by the last release
}

// maxOpenPacks bounds the pack files one store keeps open.
const maxOpenPacks = 256

// acquire returns the open file of pack n; release must be called when done with it.
func (p *packFiles) acquire(n uint64, path string) (*os.File, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[uint64]*packFile{}
	}
	pf := p.m[n]
	if pf == nil {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		p.evictLocked()
		pf = &packFile{f: f}
		p.m[n] = pf
	}
	p.tick++
	pf.refs++
	pf.used = p.tick
	return pf.f, func() { p.release(pf) }, nil
}

func (p *packFiles) release(pf *packFile) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pf.refs--
	if pf.refs == 0 && pf.closed {
		pf.f.Close()
	}
}

// evictLocked closes the least recently used idle files while at the bound.
func (p *packFiles) evictLocked() {
	for len(p.m) >= maxOpenPacks {
		var victim uint64
		var oldest *packFile
		for n, pf := range p.m {
			if pf.refs == 0 && (oldest == nil || pf.used < oldest.used) {
				victim, oldest = n, pf
			}
		}
		if oldest == nil {
			return // every one is being read: go over the bound for a moment
		}
		oldest.f.Close()
		delete(p.m, victim)
	}
}

// drop closes pack n's file (gc deletes the pack), once no read uses it.
func (p *packFiles) drop(n uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pf := p.m[n]; pf != nil {
		delete(p.m, n)
		if pf.refs == 0 {
			pf.f.Close()
		} else {
			pf.closed = true
		}
	}
}

func (p *packFiles) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n, pf := range p.m {
		pf.f.Close()
		delete(p.m, n)
	}
}

// open reports how many pack files are open (tests).
func (p *packFiles) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

// lookup returns where h is stored.
func (s *Local) lookup(ctx context.Context, h Hash) (loc, bool, error) {
	if l, ok, err := s.locateKnown(ctx, h); err != nil || ok {
		return l, ok, err
	}
	found, err := s.idx.fetch(ctx, []Hash{h})
	if err != nil {
		return loc{}, false, err
	}
	l, ok := found[h]
	return l, ok, nil
}

// locateKnown finds h without asking the index database.
func (s *Local) locateKnown(ctx context.Context, h Hash) (loc, bool, error) {
	s.mu.Lock()
	l, ok := s.unindexedLocked(h)
	s.mu.Unlock()
	if ok {
		return l, true, nil
	}
	if err := s.idx.load(ctx); err != nil {
		return loc{}, false, err
	}
	l, ok = s.idx.get(h)
	return l, ok, nil
}

// locateAll finds many chunks for a reader of them (Materialize) without loading the
// index's working copy: in what this process has not indexed yet, in the working copy if
// it is loaded, and the rest in the database, in one window. Chunks not found are absent
// from the map. Reading only what a tree names, an extract then holds the locations of a
// window of its files, not the whole store's index (64 bytes a chunk of the store).
func (s *Local) locateAll(ctx context.Context, hs []Hash) (map[Hash]loc, error) {
	found := make(map[Hash]loc, len(hs))
	loaded := s.idx.isLoaded()
	unknown := make([]Hash, 0, len(hs))
	s.mu.Lock()
	for _, h := range hs {
		if l, ok := s.unindexedLocked(h); ok {
			found[h] = l
		} else {
			unknown = append(unknown, h)
		}
	}
	s.mu.Unlock()
	if loaded {
		rest := unknown[:0]
		for _, h := range unknown {
			if l, ok := s.idx.get(h); ok {
				found[h] = l
			} else {
				rest = append(rest, h)
			}
		}
		unknown = rest
	}
	if len(unknown) == 0 {
		return found, nil
	}
	if !loaded {
		if err := s.idx.find(ctx, unknown, found); err != nil {
			return nil, err
		}
		return found, nil
	}
	more, err := s.idx.fetch(ctx, unknown)
	if err != nil {
		return nil, err
	}
	for h, l := range more {
		found[h] = l
	}
	return found, nil
}

// locate finds many chunks, asking the database once for those the working copy lacks,
// or for all of them when the copy is not loaded (locateAll: a copy of one runtime out of
// a store of many reads the index for its own chunks only). A chunk not found at all has
// ok false in its place. The loaded copy is asked here, not through locateAll, so that a
// batch of the whole store (fsck's and gc's, after Walk loaded the copy) needs no map.
func (s *Local) locate(ctx context.Context, hs []Hash) ([]loc, []bool, error) {
	locs := make([]loc, len(hs))
	oks := make([]bool, len(hs))
	if !s.idx.isLoaded() {
		found, err := s.locateAll(ctx, hs)
		if err != nil {
			return nil, nil, err
		}
		for i, h := range hs {
			locs[i], oks[i] = found[h]
		}
		return locs, oks, nil
	}
	var unknown []Hash
	for i, h := range hs {
		l, ok, err := s.locateKnown(ctx, h)
		if err != nil {
			return nil, nil, err
		}
		locs[i], oks[i] = l, ok
		if !ok {
			unknown = append(unknown, h)
		}
	}
	if len(unknown) > 0 {
		found, err := s.idx.fetch(ctx, unknown)
		if err != nil {
			return nil, nil, err
		}
		for i, h := range hs {
			if l, ok := found[h]; ok && !oks[i] {
				locs[i], oks[i] = l, true
			}
		}
	}
	return locs, oks, nil
}

// presentLocked reports whether h is stored or being stored, as far as this process
// knows (s.mu held; the index's working copy is loaded).
func (s *Local) presentLocked(h Hash) bool {
	if _, ok := s.unindexedLocked(h); ok {
		return true
	}
	_, ok := s.idx.get(h)
	return ok
}

// unindexedLocked finds h among the chunks written but not yet indexed: in the open pack
// or a pack being sealed (s.mu held).
func (s *Local) unindexedLocked(h Hash) (loc, bool) {
	if l, ok := s.pending[h]; ok {
		return l, true
	}
	for _, sp := range s.sealing {
		if l, ok := sp.chunks[h]; ok {
			return l, true
		}
	}
	return loc{}, false
}

// GetRaw implements RawStore. The bytes are returned as stored, unverified; Get and PutRaw
// verify.
func (s *Local) GetRaw(ctx context.Context, h Hash) (Raw, error) {
	l, ok, err := s.lookup(ctx, h)
	if err != nil {
		return Raw{}, err
	}
	if !ok {
		return Raw{}, &NotFoundError{Hash: h}
	}
	return s.rawAt(h, l)
}

func (s *Local) rawAt(h Hash, l loc) (Raw, error) {
	if l.enc == EncGroup {
		data, err := s.groupChunk(h, l, nil) // a copy of its own
		if err != nil {
			return Raw{}, err
		}
		return Encode(data, nil), nil
	}
	data := make([]byte, l.stored)
	if err := s.readAt(h, l, data); err != nil {
		return Raw{}, err
	}
	return Raw{Enc: l.enc, Len: l.size, Data: data}, nil
}

// inSealedPack reports whether the chunk at l is in a pack written whole (not the one
// being written or sealed): one whose file holdStored can read.
func (s *Local) inSealedPack(l loc) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return (s.cur == nil || l.pack != s.curNum) && s.sealing[l.pack] == nil
}

// holdStored opens the bytes as stored of the chunk at l, in its sealed pack, and keeps
// the pack's file open until release: they stay readable if the pack is deleted meanwhile
// (gc's repacking).
func (s *Local) holdStored(l loc) (*io.SectionReader, func(), error) {
	f, release, err := s.files.acquire(l.pack, s.packPath(l.pack))
	if err != nil {
		return nil, nil, err
	}
	return io.NewSectionReader(f, l.off, l.stored), release, nil
}

func (s *Local) readAt(h Hash, l loc, data []byte) error {
	s.mu.Lock()
	if s.cur != nil && l.pack == s.curNum {
		// Still in the open pack: flush buffered bytes and read the temp file.
		err := s.curBuf.Flush()
		if err == nil {
			_, err = s.cur.ReadAt(data, l.off)
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("read chunk %s: %w", h, err)
		}
		return nil
	}
	if sp := s.sealing[l.pack]; sp != nil {
		s.mu.Unlock()
		if _, err := sp.f.ReadAt(data, l.off); err != nil {
			return fmt.Errorf("read chunk %s: %w", h, err)
		}
		return nil
	}
	s.mu.Unlock()
	f, release, err := s.files.acquire(l.pack, s.packPath(l.pack))
	if err != nil {
		return fmt.Errorf("read chunk %s: %w", h, err)
	}
	defer release()
	if _, err := f.ReadAt(data, l.off); err != nil {
		if errors.Is(err, io.EOF) {
			return &CorruptError{Hash: h, Reason: fmt.Sprintf("pack %016x is truncated", l.pack)}
		}
		return fmt.Errorf("read chunk %s: %w", h, err)
	}
	return nil
}

// Get implements Getter.
func (s *Local) Get(ctx context.Context, h Hash) ([]byte, error) {
	return s.GetInto(ctx, h, nil)
}

// GetInto is Get that reuses dst's capacity for the content when it can.
func (s *Local) GetInto(ctx context.Context, h Hash, dst []byte) ([]byte, error) {
	l, ok, err := s.lookup(ctx, h)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &NotFoundError{Hash: h}
	}
	return s.getAt(h, l, dst)
}

// release drops the group of the chunk at l from the cache of decompressed groups: its
// reader has read all it wanted of it (readPlan).
func (s *Local) release(l loc) {
	if l.enc == EncGroup {
		s.groups.drop(groupKey(l))
	}
}

// getAt is GetInto of h stored at l.
func (s *Local) getAt(h Hash, l loc, dst []byte) ([]byte, error) {
	if l.enc == EncGroup {
		return s.groupChunk(h, l, dst)
	}
	if l.enc == EncRaw {
		if int64(cap(dst)) < l.stored {
			dst = make([]byte, l.stored)
		}
		dst = dst[:l.stored]
		if err := s.readAt(h, l, dst); err != nil {
			return nil, err
		}
		return Decode(h, Raw{Enc: l.enc, Len: l.size, Data: dst}, nil)
	}
	bp := s.getBuf()
	defer s.bufs.Put(bp)
	stored := *bp
	if int64(cap(stored)) < l.stored {
		stored = make([]byte, l.stored)
	}
	stored = stored[:l.stored]
	if err := s.readAt(h, l, stored); err != nil {
		return nil, err
	}
	return Decode(h, Raw{Enc: l.enc, Len: l.size, Data: stored}, dst)
}
