package cas

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
)

// Small chunks compress poorly one by one (a 3 KiB .py file has little context), so the
// ingest pipeline compresses them in groups: the content of a group is
//
//	uvarint(count) uvarint(len)×count  chunk bytes…
//
// stored as one zstd frame in a pack entry whose hash is the blake3 of that content. Each
// chunk keeps its own index entry (EncGroup, with its offset in the content), so reads,
// existence checks and garbage collection still work per chunk.
const (
	// GroupMax: chunks under this size are grouped.
	GroupMax = 64 << 10
	// groupTarget: a group is closed once its content reaches this size.
	groupTarget = 512 << 10
)

// groupContent lays out chunks as a group's content and returns each chunk's offset.
func groupContent(chunks [][]byte) ([]byte, []int64) {
	n := 10
	for _, c := range chunks {
		n += len(c) + 4
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(chunks)))
	for _, c := range chunks {
		b = binary.AppendUvarint(b, uint64(len(c)))
	}
	offs := make([]int64, len(chunks))
	for i, c := range chunks {
		offs[i] = int64(len(b))
		b = append(b, c...)
	}
	return b, offs
}

// parseGroup returns the chunks of a group's content.
func parseGroup(b []byte) ([][]byte, error) {
	d := reader{b: b}
	n := d.uvarint()
	if n > uint64(len(b)) {
		return nil, fmt.Errorf("group of %d chunks in %d bytes", n, len(b))
	}
	lens := make([]uint64, n)
	for i := range lens {
		lens[i] = d.uvarint()
	}
	out := make([][]byte, n)
	for i, l := range lens {
		out[i] = d.bytes(l)
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, fmt.Errorf("malformed group")
	}
	return out, nil
}

// groupCache keeps recently decompressed groups: files written one after another mostly
// come from the same few groups.
type groupCache struct {
	mu    sync.Mutex
	items map[[2]uint64][]byte
	order [][2]uint64
}

const groupCacheSize = 64

func (c *groupCache) get(k [2]uint64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.items[k]
	return b, ok
}

func (c *groupCache) put(k [2]uint64, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = map[[2]uint64][]byte{}
	}
	if _, ok := c.items[k]; ok {
		return
	}
	if len(c.order) >= groupCacheSize {
		delete(c.items, c.order[0])
		c.order = c.order[1:]
	}
	c.items[k] = b
	c.order = append(c.order, k)
}

// groupChunk returns the content of a grouped chunk, verified.
func (s *Local) groupChunk(h Hash, l loc) ([]byte, error) {
	key := [2]uint64{l.pack, uint64(l.off)}
	content, ok := s.groups.get(key)
	if !ok {
		stored := make([]byte, l.stored)
		if err := s.readAt(h, l, stored); err != nil {
			return nil, err
		}
		_, dec := codecs()
		var err error
		content, err = dec.DecodeAll(stored, nil)
		if err != nil {
			return nil, &CorruptError{Hash: h, Reason: "group: zstd: " + err.Error()}
		}
		s.groups.put(key, content)
	}
	if l.inner < 0 || l.inner+l.size > int64(len(content)) {
		return nil, &CorruptError{Hash: h, Reason: "outside its group"}
	}
	data := content[l.inner : l.inner+l.size]
	if Sum(data) != h {
		return nil, &CorruptError{Hash: h, Reason: "content does not match its hash"}
	}
	return data, nil
}

// PutGroup stores small chunks compressed together, skipping those the store has. It
// reports which were new.
func (s *Local) PutGroup(ctx context.Context, hs []Hash, chunks [][]byte) ([]bool, int64, error) {
	content, offs := groupContent(chunks)
	enc, _ := codecs()
	stored := enc.EncodeAll(content, nil)
	s.mu.Lock()
	isNew := make([]bool, len(hs))
	any := false
	for i, h := range hs {
		isNew[i] = !s.presentLocked(h)
		any = any || isNew[i]
	}
	if !any {
		s.mu.Unlock()
		return isNew, 0, nil
	}
	off, err := s.writeEntryLocked(Sum(content), Raw{Enc: EncGroup, Len: int64(len(content)), Data: stored})
	if err != nil {
		s.mu.Unlock()
		return nil, 0, err
	}
	for i, h := range hs {
		if isNew[i] {
			s.pending[h] = loc{pack: s.curNum, off: off, stored: int64(len(stored)), size: int64(len(chunks[i])), enc: EncGroup, inner: offs[i]}
		}
	}
	var sp *sealedPack
	if s.curOff >= packTarget {
		sp, err = s.detachLocked()
	}
	s.mu.Unlock()
	if sp != nil {
		err = s.seal(sp)
	}
	return isNew, int64(len(stored)), err
}
