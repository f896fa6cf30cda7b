package cas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The ingest pipeline compresses new chunks in groups rather than one by one: a 3 KiB .py
// file has little context of its own, and zstd at its fastest level over 1-2 MiB stores less
// than its default level over single chunks, in two thirds of the time (DESIGN.md). Small
// chunks and larger ones (mostly of one large file) are gathered apart. The content of a
// group is
//
//	uvarint(count) uvarint(len)×count  chunk bytes…
//
// stored as one zstd frame in a pack entry named by groupName. Each chunk keeps its own
// index entry (EncGroup, with its offset in the content), so reads, existence checks and
// garbage collection still work per chunk.
const (
	// GroupMax: chunks under this size are grouped.
	GroupMax = 64 << 10
	// groupTarget: a group of small chunks is closed once its content reaches this size.
	groupTarget = 1 << 20
	// largeGroupTarget: the same for groups of larger chunks (those of one large file
	// mostly).
	largeGroupTarget = 2 << 20
)

// MaxGroupContent bounds a group's content: what a store accepts from elsewhere, and what
// reading one of its own groups may inflate to. Ingest makes groups of at most
// largeGroupTarget plus one chunk and the table.
const MaxGroupContent = 4 << 20

// groupHeadroom: a worker gathers a group's chunks after this much room, and the table is
// written into it when the group closes, so the content is compressed where it lies.
const groupHeadroom = 16 << 10

// groupContent lays out a group's content: buf is groupHeadroom bytes of room, then the
// chunks (of the sizes given) back to back. The table goes into the room (or, when it does
// not fit, the content is built in scratch, and copied is true). It returns the content and
// each chunk's offset.
func groupContent(buf []byte, sizes []int64, scratch []byte) (content []byte, offs []int64, copied bool) {
	hdr := binary.AppendUvarint(make([]byte, 0, 10+3*len(sizes)), uint64(len(sizes)))
	for _, n := range sizes {
		hdr = binary.AppendUvarint(hdr, uint64(n))
	}
	offs = make([]int64, len(sizes))
	off := int64(len(hdr))
	for i, n := range sizes {
		offs[i] = off
		off += int64(n)
	}
	if len(hdr) <= groupHeadroom {
		content = buf[groupHeadroom-len(hdr):]
		copy(content, hdr)
		return content, offs, false
	}
	return append(append(scratch[:0], hdr...), buf[groupHeadroom:]...), offs, true
}

// groupName is the name of a group's pack entry: the blake3 of a label and the hashes of
// its chunks, which reading the entry back checks along with every chunk.
func groupName(hs []Hash) Hash {
	b := make([]byte, 0, 16+len(hs)*HashSize)
	b = append(b, "swcli group v1\x00"...)
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return Sum(b)
}

// parseGroup returns the offsets and sizes of the chunks in a group's content.
func parseGroup(b []byte) (offs, sizes []int64, err error) {
	d := reader{b: b}
	n := d.uvarint()
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("group of %d chunks in %d bytes", n, len(b))
	}
	sizes = make([]int64, n)
	var total uint64
	for i := range sizes {
		l := d.uvarint()
		if l > uint64(len(b)) {
			return nil, nil, fmt.Errorf("malformed group")
		}
		sizes[i] = int64(l)
		total += l
	}
	if d.err != nil || total != uint64(len(d.b)) {
		return nil, nil, fmt.Errorf("malformed group")
	}
	offs = make([]int64, n)
	at := int64(len(b) - len(d.b)) // the table's length: the chunks follow it
	for i, l := range sizes {
		offs[i] = at
		at += l
	}
	return offs, sizes, nil
}

// groupCache keeps recently decompressed groups: files written one after another mostly
// come from the same few groups. Readers get copies of chunks, never the cached content,
// so an evicted group's buffer is decoded into again: the buffers it holds, cached and
// free, are bounded together, and a group is decompressed into the buffer of the one it
// evicts (new memory costs page faults, ~12 µs a page here: an extract spent as long
// faulting fresh buffers in as decoding). Concurrent reads of one group decompress it
// once: an extract's writers mostly ask for neighbouring files' chunks at the same time
// (ml-v1 decompressed 1.5 × its groups' content before).
type groupCache struct {
	mu      sync.Mutex
	items   map[[2]uint64][]byte
	order   [][2]uint64
	bytes   int                         // capacity of the buffers held: cached, free, being decompressed into
	loading map[[2]uint64]chan struct{} // groups being decompressed, closed when done
	free    [][]byte                    // buffers for the next groups
	frames  [][]byte                    // buffers for groups' compressed frames
}

// groupCacheBytes bounds the buffers the cache holds (groups are 1-2.5 MiB). It was
// 32 MiB, of which an extract, its groups dropped after their last read (readPlan), used
// 20-23; Materialize's prefetch, two groups ahead, filled it to the bound, and at 24 MiB
// the extract's peak is what it was without the prefetch.
const groupCacheBytes = 24 << 20

// groupCacheFrameBytes bounds the frame buffers kept for reuse: about one per reader
// decompressing at once (frames are 0.3-1.5 MB mostly). Eight buffers were kept, the
// largest ones when there were more: over a long extract they came to be the eight
// largest frames of the tree (9.6 MB at ml-v1 ×10 against 5.8 at ml-v1, heap profiles).
const groupCacheFrameBytes = 4 << 20

// errOutsideGroup: a chunk's place does not lie inside its group's content.
var errOutsideGroup = errors.New("outside its group")

// chunk copies size bytes at inner of group k into dst (its capacity reused), decompressing
// the group with decode unless it is cached. decode asks buffer for room for the group's
// content (once at most) and returns the content, in that buffer if it had room. The copy
// is not verified.
func (c *groupCache) chunk(k [2]uint64, inner, size int64, dst []byte, decode func(buffer func(n int) []byte) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	for {
		if b, ok := c.items[k]; ok {
			defer c.mu.Unlock()
			c.touchLocked(k)
			return copyChunk(b, inner, size, dst)
		}
		wait, ok := c.loading[k]
		if !ok {
			break
		}
		c.mu.Unlock()
		<-wait // cached now, or its decoding failed and this reader tries itself
		c.mu.Lock()
	}
	done := make(chan struct{})
	if c.loading == nil {
		c.loading = map[[2]uint64]chan struct{}{}
	}
	c.loading[k] = done
	c.mu.Unlock()

	var given []byte
	content, err := decode(func(n int) []byte {
		given = c.buffer(n)
		return given
	})

	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.loading, k)
	close(done)
	if given != nil && (err != nil || !sameArray(content, given)) {
		c.free = append(c.free, given) // not cached: for the next group
	}
	if err != nil {
		c.trimLocked()
		return nil, err
	}
	if !sameArray(content, given) { // decode made room of its own
		c.bytes += cap(content)
	}
	out, err := copyChunk(content, inner, size, dst)
	c.putLocked(k, content)
	return out, err
}

// sameArray reports whether a and b are slices of one array from its start.
func sameArray(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && &a[:cap(a)][0] == &b[:cap(b)][0]
}

// buffer returns a buffer with room for n bytes to decompress a group into: the smallest
// free one that fits; else a new one of n's class while the cache has room for it; else,
// the cache being full, the buffer of the group least recently used among those whose
// buffer fits (groups come in two sizes: a group evicts one of its own kind); else free
// buffers, then groups least recently used, give way to a new one. Only when every
// buffer is being decompressed into does the cache make one past its bound.
func (c *groupCache) buffer(n int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if b, ok := takeSmallest(&c.free, n); ok {
			return b[:0]
		}
		class := bufferClass(n)
		if c.bytes+class <= groupCacheBytes {
			c.bytes += class
			return make([]byte, 0, class)
		}
		for i, k := range c.order {
			if cap(c.items[k]) >= n {
				return c.takeLocked(i)[:0]
			}
		}
		switch {
		case len(c.free) > 0:
			c.bytes -= cap(c.free[len(c.free)-1])
			c.free = c.free[:len(c.free)-1]
		case len(c.order) > 0:
			c.evictLocked()
		default:
			c.bytes += class
			return make([]byte, 0, class)
		}
	}
}

// frame returns a buffer of n bytes for a group's compressed frame, to be given back with
// putFrame: the smallest kept one it fits in, else a new one.
func (c *groupCache) frame(n int64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := takeSmallest(&c.frames, int(n)); ok {
		return b[:n]
	}
	return make([]byte, n, max(n, MaxChunk+MaxChunk/8))
}

// takeSmallest takes out of bufs the smallest buffer with room for n bytes, if any.
func takeSmallest(bufs *[][]byte, n int) ([]byte, bool) {
	best := -1
	for i, b := range *bufs {
		if cap(b) >= n && (best < 0 || cap(b) < cap((*bufs)[best])) {
			best = i
		}
	}
	if best < 0 {
		return nil, false
	}
	b := (*bufs)[best]
	*bufs = slices.Delete(*bufs, best, best+1)
	return b, true
}

// putFrame keeps a frame buffer for the next group read, within groupCacheFrameBytes:
// the largest ones, which serve any frame the smaller would.
func (c *groupCache) putFrame(b []byte) {
	if cap(b) > MaxGroupContent {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := 0
	for _, f := range c.frames {
		kept += cap(f)
	}
	for kept+cap(b) > groupCacheFrameBytes && len(c.frames) > 0 {
		smallest := 0
		for i, f := range c.frames {
			if cap(f) < cap(c.frames[smallest]) {
				smallest = i
			}
		}
		if cap(c.frames[smallest]) >= cap(b) {
			return // b is the smallest: let go
		}
		kept -= cap(c.frames[smallest])
		c.frames = slices.Delete(c.frames, smallest, smallest+1)
	}
	if kept+cap(b) <= groupCacheFrameBytes {
		c.frames = append(c.frames, b)
	}
}

// bufferClass rounds a new buffer up to the largest group of its kind that ingest makes
// (small chunks' groups, larger chunks' groups), so that an evicted buffer fits the next
// group of the same kind.
func bufferClass(n int) int {
	for _, c := range []int{groupHeadroom + groupTarget + MaxChunk, groupHeadroom + largeGroupTarget + MaxChunk} {
		if n <= c {
			return c
		}
	}
	return n
}

func copyChunk(content []byte, inner, size int64, dst []byte) ([]byte, error) {
	if inner < 0 || size < 0 || inner+size > int64(len(content)) {
		return nil, errOutsideGroup
	}
	return append(dst[:0], content[inner:inner+size]...), nil
}

// touchLocked moves k to the back of the eviction order: a group still being read stays
// (first in, first out evicted groups that the next files needed, and each went through
// zstd again).
func (c *groupCache) touchLocked(k [2]uint64) {
	if n := len(c.order); n > 0 && c.order[n-1] == k {
		return
	}
	if i := slices.Index(c.order, k); i >= 0 {
		c.order = append(slices.Delete(c.order, i, i+1), k)
	}
}

// putLocked caches group k's content b (counted already), evicting the groups least
// recently used (and dropping free buffers first) while the cache holds more than its
// bound.
func (c *groupCache) putLocked(k [2]uint64, b []byte) {
	if c.items == nil {
		c.items = map[[2]uint64][]byte{}
	}
	if _, ok := c.items[k]; ok {
		c.free = append(c.free, b)
	} else {
		c.items[k] = b
		c.order = append(c.order, k)
	}
	c.trimLocked()
}

// drop moves group k out of the cache, its buffer to the free ones: a reader has read
// what it wanted of it (readPlan).
func (c *groupCache) drop(k [2]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.order, k); i >= 0 {
		c.free = append(c.free, c.takeLocked(i))
	}
}

// readPlan counts the reads of each group a reader of many chunks (Materialize) has still
// to make: once a group's are made it is dropped from the cache at once, its buffer free
// for the next group, rather than kept until it is the least recently used, while the
// cache, full, gives up groups that still have reads to come. (The buffers stay: memory
// is the cache's bound as before; fewer groups are decompressed twice.)
type readPlan struct {
	mu   sync.Mutex
	left map[[2]uint64]int
}

// add counts a read of the chunk at l to come.
func (p *readPlan) add(l loc) {
	if l.enc != EncGroup {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.left == nil {
		p.left = map[[2]uint64]int{}
	}
	p.left[groupKey(l)]++
}

// done counts a read of the chunk at l made, reporting whether it was its group's last.
func (p *readPlan) done(l loc) bool {
	if l.enc != EncGroup {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := groupKey(l)
	n, ok := p.left[k]
	if !ok {
		return false
	}
	if n <= 1 {
		delete(p.left, k)
		return true
	}
	p.left[k] = n - 1
	return false
}

func groupKey(l loc) [2]uint64 { return [2]uint64{l.pack, uint64(l.off)} }

// evictLocked moves the group least recently used out of the cache, its buffer to the
// free ones.
func (c *groupCache) evictLocked() {
	c.free = append(c.free, c.takeLocked(0))
}

// takeLocked takes the i-th group of the eviction order out of the cache and returns its
// buffer.
func (c *groupCache) takeLocked(i int) []byte {
	k := c.order[i]
	c.order = slices.Delete(c.order, i, i+1)
	b := c.items[k]
	delete(c.items, k)
	return b
}

// trimLocked drops free buffers, then groups least recently used, while the cache holds
// more than its bound (the group just cached stays).
func (c *groupCache) trimLocked() {
	for c.bytes > groupCacheBytes {
		switch {
		case len(c.free) > 0:
			c.bytes -= cap(c.free[0])
			c.free = c.free[1:]
		case len(c.order) > 1:
			c.evictLocked()
		default:
			return
		}
	}
}

// groupChunk returns the content of a grouped chunk, verified, in dst if it has room.
func (s *Local) groupChunk(h Hash, l loc, dst []byte) ([]byte, error) {
	data, err := s.groups.chunk(groupKey(l), l.inner, l.size, dst, s.decodeGroup(h, l))
	if errors.Is(err, errOutsideGroup) {
		return nil, &CorruptError{Hash: h, Reason: "outside its group"}
	}
	if err != nil {
		return nil, err
	}
	if Sum(data) != h {
		return nil, &CorruptError{Hash: h, Reason: "content does not match its hash"}
	}
	return data, nil
}

// warm decompresses the group of the chunk h at l into the cache unless it is there (or
// being decompressed): ahead of the reads of it (Materialize's prefetch). Its errors are
// the reads' to report.
func (s *Local) warm(h Hash, l loc) {
	if l.enc == EncGroup {
		s.groups.chunk(groupKey(l), l.inner, 0, nil, s.decodeGroup(h, l))
	}
}

// decodeGroup reads and decompresses the group of the chunk h at l, for the cache.
func (s *Local) decodeGroup(h Hash, l loc) func(buffer func(int) []byte) ([]byte, error) {
	return func(buffer func(int) []byte) ([]byte, error) {
		stored := s.groups.frame(l.stored)
		defer s.groups.putFrame(stored)
		if err := s.readAt(h, l, stored); err != nil {
			return nil, err
		}
		// The frame names its content's size (libzstd writes it): a buffer that DecodeAll
		// grows is garbage, and new memory costs more to fault in than to decompress into.
		var n int
		var hdr zstd.Header
		if hdr.Decode(stored) == nil && hdr.HasFCS && hdr.FrameContentSize <= MaxGroupContent {
			n = int(hdr.FrameContentSize)
		}
		codecs()
		content, err := storeDecoder.DecodeAll(stored, buffer(n))
		if err != nil {
			return nil, &CorruptError{Hash: h, Reason: "group: zstd: " + err.Error()}
		}
		return content, nil
	}
}

// groupBufs are a worker's buffers for building and compressing groups, reused.
type groupBufs struct{ content, stored []byte }

// putGroup stores chunks compressed together (their hashes and sizes; buf as groupContent
// takes it), unless the store has them all, and reports which were new.
func (s *Local) putGroup(hs []Hash, sizes []int64, buf []byte, bufs *groupBufs) ([]bool, int64, error) {
	content, offs, copied := groupContent(buf, sizes, bufs.content)
	if copied {
		bufs.content = content
	}
	stored := compressGroup(content, bufs.stored)
	bufs.stored = stored
	isNew, err := s.storeGroup(&Group{name: groupName(hs), raw: Raw{Enc: EncGroup, Len: int64(len(content)), Data: stored},
		hashes: hs, sizes: sizes, offs: offs})
	if err != nil || !slices.Contains(isNew, true) {
		return isNew, 0, err
	}
	return isNew, int64(len(stored)), nil
}

// storeGroup writes a group's entry unless the store has all its chunks, and indexes
// those it lacks, reporting which those were.
func (s *Local) storeGroup(g *Group) ([]bool, error) {
	s.mu.Lock()
	isNew := make([]bool, len(g.hashes))
	any := false
	for i, h := range g.hashes {
		isNew[i] = !s.presentLocked(h)
		any = any || isNew[i]
	}
	if !any {
		s.mu.Unlock()
		return isNew, nil
	}
	off, err := s.writeEntryLocked(g.name, Raw{Enc: EncGroup, Len: g.raw.Len, Data: g.raw.Data})
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	for i, h := range g.hashes {
		if isNew[i] {
			s.pending[h] = loc{pack: s.curNum, off: off, stored: int64(len(g.raw.Data)), size: g.sizes[i], enc: EncGroup, inner: g.offs[i]}
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
	return isNew, err
}
