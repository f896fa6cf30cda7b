package cas

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// content of a fake group: distinct bytes per key, size n.
func fakeGroup(k int, n int) []byte {
	return bytes.Repeat([]byte{byte(k)}, n)
}

func TestGroupCacheDecompressesAGroupOnceForConcurrentReaders(t *testing.T) {
	var c groupCache
	var decodes atomic.Int32
	decode := func(buffer func(int) []byte) ([]byte, error) {
		decodes.Add(1)
		time.Sleep(20 * time.Millisecond) // long enough for every reader to ask meanwhile
		return append(buffer(1<<20), fakeGroup(7, 1<<20)...), nil
	}
	var g errgroup.Group
	for i := range 8 {
		g.Go(func() error {
			got, err := c.chunk([2]uint64{1, 0}, int64(i*100), 100, nil, decode)
			if err == nil && !bytes.Equal(got, fakeGroup(7, 100)) {
				err = fmt.Errorf("reader %d got other bytes", i)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := decodes.Load(); n != 1 {
		t.Fatalf("8 concurrent readers of one group decompressed it %d times, want 1", n)
	}
}

func TestGroupCacheKeepsTheGroupsBeingRead(t *testing.T) {
	var c groupCache
	decodes := map[uint64]int{}
	buffers := map[*byte]bool{} // the distinct buffers decompressed into
	read := func(k uint64) {
		t.Helper()
		_, err := c.chunk([2]uint64{k, 0}, 0, 10, nil, func(buffer func(int) []byte) ([]byte, error) {
			decodes[k]++
			b := append(buffer(2<<20), fakeGroup(int(k), 2<<20)...)
			buffers[&b[0]] = true
			return b, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Group 0 is read between every new group, well past the cache's size in new groups.
	for k := uint64(1); k <= 3*groupCacheBytes/(2<<20); k++ {
		read(0)
		read(k)
	}
	if decodes[0] != 1 {
		t.Fatalf("a group read all along was decompressed %d times, want 1 (evicted while in use)", decodes[0])
	}
	if c.bytes > groupCacheBytes {
		t.Fatalf("cache holds %d bytes, bound %d", c.bytes, groupCacheBytes)
	}
	if most := groupCacheBytes / bufferClass(2<<20); len(buffers) > most {
		t.Fatalf("%d groups decompressed into %d buffers, want at most %d (the cache's room): evicted ones not reused",
			len(decodes), len(buffers), most)
	}
}

// fillGroup reads group k of n bytes through c, decompressing it if it is not cached,
// and returns the buffer it was decompressed into (nil if it was cached).
func fillGroup(t *testing.T, c *groupCache, k uint64, n int) []byte {
	t.Helper()
	var got []byte
	if _, err := c.chunk([2]uint64{k, 0}, 0, 1, nil, func(buffer func(int) []byte) ([]byte, error) {
		got = append(buffer(n), fakeGroup(int(k), n)...)
		return got, nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestGroupCacheDecompressesIntoTheBufferOfTheGroupItEvicts(t *testing.T) {
	var c groupCache
	fill := func(k uint64, n int) []byte { t.Helper(); return fillGroup(t, &c, k, n) }
	small, large := 1<<20, 2<<20
	first := fill(1, small)
	for k := uint64(2); c.bytes+bufferClass(small) <= groupCacheBytes; k++ {
		fill(k, small)
	}
	held := c.bytes
	if b := fill(100, small); !sameArray(b, first) {
		t.Fatal("a full cache decompressed a group into new memory, not the buffer of the group least recently used")
	}
	if _, ok := c.items[[2]uint64{1, 0}]; ok || c.bytes != held {
		t.Fatalf("after the evicting read: group 1 cached %v, %d bytes held, want evicted and %d", ok, c.bytes, held)
	}
	// A larger group than the free buffers: those too small give way, the bound holds.
	fill(101, large)
	if c.bytes > groupCacheBytes {
		t.Fatalf("cache holds %d bytes, bound %d", c.bytes, groupCacheBytes)
	}
}

// Groups come in two sizes: a full cache decompresses a large group into the buffer of
// the least recently used large one, and keeps the small groups read before it (it does
// not drop their buffers for being too small and make a new one).
func TestGroupCacheEvictsAGroupOfTheSameSize(t *testing.T) {
	var c groupCache
	fill := func(k uint64, n int) []byte { t.Helper(); return fillGroup(t, &c, k, n) }
	small, large := 1<<20, 2<<20
	var firstLarge []byte
	for k := uint64(1); c.bytes+bufferClass(large) <= groupCacheBytes; k++ {
		if k%2 == 1 {
			fill(k, small)
		} else if b := fill(k, large); firstLarge == nil {
			firstLarge = b
		}
	}
	cached := len(c.items)
	if b := fill(100, large); !sameArray(b, firstLarge) {
		t.Fatal("a large group was not decompressed into the buffer of the least recently used large group")
	}
	if _, ok := c.items[[2]uint64{1, 0}]; !ok || len(c.items) != cached {
		t.Fatalf("small group 1 cached %v, %d groups cached (want it kept, %d)", ok, len(c.items), cached)
	}
}

func TestGroupCacheReusesEvictedBuffersThatFit(t *testing.T) {
	var c groupCache
	c.free = [][]byte{make([]byte, 0, 100), make([]byte, 0, 3000), make([]byte, 0, 2000)}
	c.bytes = 5100
	if b := c.buffer(1500); cap(b) != 2000 {
		t.Fatalf("buffer for 1500 bytes has room for %d, want the smallest that fits (2000)", cap(b))
	}
	if b := c.buffer(5000); cap(b) != bufferClass(5000) || len(c.free) != 2 || c.bytes != 5100+bufferClass(5000) {
		t.Fatalf("buffer for 5000 bytes: room for %d, %d left free, %d bytes held; want a new one of %d, 2 left, %d held",
			cap(b), len(c.free), c.bytes, bufferClass(5000), 5100+bufferClass(5000))
	}
}

func TestGroupCacheHandsOutCopies(t *testing.T) {
	var c groupCache
	decode := func(buffer func(int) []byte) ([]byte, error) { return append(buffer(1000), fakeGroup(3, 1000)...), nil }
	got, err := c.chunk([2]uint64{1, 0}, 0, 10, nil, decode)
	if err != nil {
		t.Fatal(err)
	}
	clear(got) // a reader scribbling on its chunk
	again, err := c.chunk([2]uint64{1, 0}, 0, 10, make([]byte, 0, 64), decode)
	if err != nil || !bytes.Equal(again, fakeGroup(3, 10)) {
		t.Fatalf("second read: %v %v: the cached group was changed through a reader's copy", again, err)
	}
	if _, err := c.chunk([2]uint64{1, 0}, 995, 10, nil, decode); !errors.Is(err, errOutsideGroup) {
		t.Fatalf("chunk past the group's end: %v, want errOutsideGroup", err)
	}
	if _, err := c.chunk([2]uint64{1, 0}, -1, 10, nil, decode); !errors.Is(err, errOutsideGroup) {
		t.Fatalf("chunk at a negative offset: %v, want errOutsideGroup", err)
	}
}

func TestGroupCacheFailedDecompressionIsNotCached(t *testing.T) {
	var c groupCache
	bad := errors.New("zstd: corrupt")
	if _, err := c.chunk([2]uint64{1, 0}, 0, 10, nil, func(buffer func(int) []byte) ([]byte, error) { return nil, bad }); !errors.Is(err, bad) {
		t.Fatalf("got %v, want the decoder's error", err)
	}
	got, err := c.chunk([2]uint64{1, 0}, 0, 10, nil, func(buffer func(int) []byte) ([]byte, error) { return append(buffer(100), fakeGroup(5, 100)...), nil })
	if err != nil || !bytes.Equal(got, fakeGroup(5, 10)) {
		t.Fatalf("after a failed decompression: %v %v", got, err)
	}
	if len(c.loading) != 0 {
		t.Fatalf("%d groups still marked as loading", len(c.loading))
	}
	// A failed decompression's buffer is given back and decompressed into next.
	var failed []byte
	c.chunk([2]uint64{2, 0}, 0, 10, nil, func(buffer func(int) []byte) ([]byte, error) {
		failed = buffer(100)
		return nil, bad
	})
	if b := c.buffer(100); !sameArray(b, failed) {
		t.Fatal("a failed decompression's buffer was not reused")
	}
}

func TestReadPlanCountsAGroupsReadsDown(t *testing.T) {
	var p readPlan
	g := loc{enc: EncGroup, pack: 3, off: 100, inner: 10}
	other := loc{enc: EncGroup, pack: 3, off: 100, inner: 500} // another chunk of the group
	p.add(g)
	p.add(other)
	p.add(loc{enc: EncZstd, pack: 3, off: 100}) // not in a group: not counted
	if p.done(g) {
		t.Fatal("the group's first of two reads was called its last")
	}
	if !p.done(other) {
		t.Fatal("the group's second of two reads was not called its last")
	}
	if p.done(g) || p.done(loc{enc: EncZstd, pack: 3, off: 100}) {
		t.Fatal("a read nobody planned was called a group's last")
	}
}

func TestGroupCacheDropsAGroupItsReaderIsDoneWith(t *testing.T) {
	var c groupCache
	first := fillGroup(t, &c, 1, 1<<20)
	held := c.bytes
	c.drop([2]uint64{1, 0})
	if _, ok := c.items[[2]uint64{1, 0}]; ok {
		t.Fatal("a dropped group is still cached")
	}
	// The next group goes into the dropped one's buffer, not new memory.
	if b := fillGroup(t, &c, 2, 1<<20); !sameArray(b, first) || c.bytes != held {
		t.Fatalf("the group after a drop: same buffer %v, %d bytes held, want the dropped one's and %d", sameArray(b, first), c.bytes, held)
	}
	c.drop([2]uint64{9, 0}) // not cached: nothing happens
	if _, ok := c.items[[2]uint64{2, 0}]; !ok {
		t.Fatal("dropping a group not cached dropped another")
	}
}

// Frame buffers are kept for the next reads within their bound, the largest first, and a
// frame is read into the smallest kept buffer it fits.
func TestGroupCacheKeepsFrameBuffersWithinTheirBound(t *testing.T) {
	var c groupCache
	kept := func() (n int) {
		for _, f := range c.frames {
			n += cap(f)
		}
		return n
	}
	var out [][]byte
	for i := range 40 { // frames of 0.6 to 2.6 MB, as a long extract meets them
		out = append(out, c.frame(int64(600<<10+(i%5)*500<<10)))
	}
	for _, b := range out {
		c.putFrame(b)
		if k := kept(); k > groupCacheFrameBytes {
			t.Fatalf("%d bytes of frames kept, bound %d", k, groupCacheFrameBytes)
		}
	}
	if len(c.frames) == 0 {
		t.Fatal("no frame kept")
	}
	small := c.frame(100 << 10)
	for _, f := range c.frames {
		if cap(f) < cap(small) {
			t.Fatalf("a 100 KiB frame got a %d-byte buffer while one of %d was kept", cap(small), cap(f))
		}
	}
	big := c.frame(2600 << 10)
	if cap(big) < 2600<<10 {
		t.Fatalf("a 2.6 MB frame in %d bytes", cap(big))
	}
}
