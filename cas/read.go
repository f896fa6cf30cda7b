package cas

import (
	"bytes"
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

// packFiles holds the sealed packs open for reading.
type packFiles struct {
	mu sync.RWMutex
	m  map[uint64]*os.File
}

func (p *packFiles) get(n uint64, path string) (*os.File, error) {
	p.mu.RLock()
	f := p.m[n]
	p.mu.RUnlock()
	if f != nil {
		return f, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.m[n]; f != nil {
		return f, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if p.m == nil {
		p.m = map[uint64]*os.File{}
	}
	p.m[n] = f
	return f, nil
}

func (p *packFiles) put(n uint64, f *os.File) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[uint64]*os.File{}
	}
	if old := p.m[n]; old != nil {
		old.Close()
	}
	p.m[n] = f
}

// drop closes the pack's file, if open.
func (p *packFiles) drop(n uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.m[n]; f != nil {
		f.Close()
		delete(p.m, n)
	}
}

func (p *packFiles) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n, f := range p.m {
		f.Close()
		delete(p.m, n)
	}
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

// locate finds many chunks, asking the database once for those the working copy lacks.
// A chunk not found at all has ok false in its place.
func (s *Local) locate(ctx context.Context, hs []Hash) ([]loc, []bool, error) {
	locs := make([]loc, len(hs))
	oks := make([]bool, len(hs))
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
		data, err := s.groupChunk(h, l)
		if err != nil {
			return Raw{}, err
		}
		r := Encode(data, nil)
		if r.Enc == EncRaw {
			r.Data = bytes.Clone(data)
		}
		return r, nil
	}
	data := make([]byte, l.stored)
	if err := s.readAt(h, l, data); err != nil {
		return Raw{}, err
	}
	return Raw{Enc: l.enc, Len: l.size, Data: data}, nil
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
	f, err := s.files.get(l.pack, s.packPath(l.pack))
	if err != nil {
		return fmt.Errorf("read chunk %s: %w", h, err)
	}
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
	if l.enc == EncGroup {
		data, err := s.groupChunk(h, l)
		if err != nil {
			return nil, err
		}
		return append(dst[:0], data...), nil
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
