package cas

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

// bigTree is a valid manifest whose encoding is over a MiB even compressed (a chunk hash
// per file does not compress), so that a store keeps it compressed and OpenManifest
// streams it.
func bigTree(files int) *Manifest {
	m := &Manifest{}
	r := rand.New(rand.NewPCG(1, 2))
	for d := range files/1000 + 1 {
		m.Entries = append(m.Entries, Entry{Path: fmt.Sprintf("d%03d", d), Kind: KindDir, Mode: 0o755})
		for f := range min(1000, files-d*1000) {
			var h Hash
			for i := range h {
				h[i] = byte(r.Uint32())
			}
			m.Entries = append(m.Entries, Entry{Path: fmt.Sprintf("d%03d/f%04d.py", d, f), Kind: KindFile, Mode: 0o644, Size: 100, Chunks: []Hash{h}})
		}
	}
	m.Entries = append(m.Entries, Entry{Path: "link", Kind: KindLink, Mode: 0o777, Target: "d000"})
	return m
}

// storedBigTree stores bigTree(40000) in a new local store, its pack sealed (closed with
// the test).
func storedBigTree(t *testing.T) (*Local, *Manifest, Hash) {
	t.Helper()
	ctx := context.Background()
	s, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m := bigTree(40000)
	b := m.Encode()
	h := Sum(b)
	if err := s.Put(ctx, h, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return s, m, h
}

func TestManifestStreamGivesTheStoredTree(t *testing.T) {
	ctx := context.Background()
	s, m, h := storedBigTree(t)
	raw, err := s.GetRaw(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Enc != EncZstd || len(raw.Data) < streamMin {
		t.Fatalf("stored as %d in %d bytes: the test wants a compressed manifest over %d", raw.Enc, len(raw.Data), streamMin)
	}
	ms, err := OpenManifest(ctx, s, h)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	if ms.raw.Data != nil || ms.stored == nil {
		t.Fatalf("the stream holds %d bytes of the manifest, to be read from its pack", len(ms.raw.Data))
	}
	if ms.Totals() != m.Totals() {
		t.Errorf("totals %+v, want %+v", ms.Totals(), m.Totals())
	}
	for range 2 { // each walk gives the whole tree again
		var got []Entry
		if err := ms.Each(func(e *Entry) error { got = append(got, *e); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, m.Entries, entryEqual) {
			t.Fatalf("walked %d entries, not the %d stored", len(got), len(m.Entries))
		}
	}
}

// A manifest read from its pack for each walk is checked again by each: bytes changed on
// disk since it was opened fail the walk as corrupt (after only entries that pass the
// rules). A pack deleted meanwhile (gc) is still read: its file is held until Close.
func TestManifestStreamChecksEveryWalkOfItsPack(t *testing.T) {
	ctx := context.Background()
	s, m, h := storedBigTree(t)
	ms, err := OpenManifest(ctx, s, h)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	locs, err := s.locateAll(ctx, []Hash{h})
	if err != nil {
		t.Fatal(err)
	}
	l := locs[h]
	pack := s.packPath(l.pack)
	f, err := os.OpenFile(pack, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := l.off + l.stored*3/4
	one := make([]byte, 1)
	if _, err := f.ReadAt(one, at); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 0x40
	if _, err := f.WriteAt(one, at); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var v validator
	v.kinds = map[string]Kind{}
	err = ms.Each(func(e *Entry) error {
		return v.next(e, len(e.Chunks), func(string) Kind { return 0 })
	})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("walk of changed bytes: %v, want ErrCorrupt", err)
	}
	one[0] ^= 0x40 // back as it was
	f, err = os.OpenFile(pack, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(one, at); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Remove(pack); err != nil {
		t.Fatal(err)
	}
	s.files.drop(l.pack)
	n := 0
	if err := ms.Each(func(*Entry) error { n++; return nil }); err != nil || n != len(m.Entries) {
		t.Fatalf("walk of a pack deleted since the manifest was opened: %d entries, %v", n, err)
	}
	held := fdsOf(t, pack)
	ms.Close()
	if n := fdsOf(t, pack); n != held-1 {
		t.Fatalf("%d descriptors of the deleted pack after Close, %d before: want the one held closed", n, held)
	}
}

// fdsOf counts this process's descriptors open on path (Linux's /proc).
func fdsOf(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.TrimSuffix(target, " (deleted)") == path {
			n++
		}
	}
	return n
}

// rawGetter answers GetRaw with fixed stored bytes: a store, or a server, that lies.
type rawGetter struct{ raw Raw }

func (g rawGetter) Get(ctx context.Context, h Hash) ([]byte, error) { return Decode(h, g.raw, nil) }
func (g rawGetter) GetRaw(ctx context.Context, h Hash) (Raw, error) { return g.raw, nil }
func (g rawGetter) PutRaw(ctx context.Context, h Hash, r Raw) error { return errors.New("read only") }

func TestManifestStreamRefusesWhatIsNotTheTree(t *testing.T) {
	ctx := context.Background()
	b := bigTree(40000).Encode()
	h := Sum(b)
	enc, _ := codecs()
	z := enc.EncodeAll(b, nil)
	flipped := slices.Clone(z)
	flipped[len(flipped)/2] ^= 1
	other := bigTree(39999).Encode()
	cases := map[string]Raw{
		"a flipped byte":        {Enc: EncZstd, Len: int64(len(b)), Data: flipped},
		"another tree":          {Enc: EncZstd, Len: int64(len(other)), Data: enc.EncodeAll(other, nil)},
		"a short length":        {Enc: EncZstd, Len: int64(len(b)) - 1, Data: z},
		"a long length":         {Enc: EncZstd, Len: int64(len(b)) + 1, Data: z},
		"an implausible length": {Enc: EncZstd, Len: MaxBlob + 1, Data: z},
		"raw bytes cut short":   {Enc: EncRaw, Len: int64(len(b)), Data: b[:len(b)-1]},
		"an unknown encoding":   {Enc: 7, Len: int64(len(b)), Data: z},
	}
	for name, raw := range cases {
		if _, err := OpenManifest(ctx, rawGetter{raw}, h); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	// A tree that breaks the rules, stored faithfully under its own hash.
	bad := &Manifest{Entries: []Entry{{Path: "a", Kind: KindFile, Mode: 0o644}, {Path: "a/b", Kind: KindFile, Mode: 0o644}}}
	bb := bad.Encode()
	_, err := OpenManifest(ctx, rawGetter{Raw{Enc: EncRaw, Len: int64(len(bb)), Data: bb}}, Sum(bb))
	if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), `"a/b" would be written through file "a"`) {
		t.Errorf("bad tree: %v", err)
	}
}

// The stream decodes as DecodeManifest does: the same entries, or an error for the same
// encodings, over many damaged ones.
func TestManifestStreamDecodesAsDecodeManifest(t *testing.T) {
	// One directory "a" whose mode 0o755 takes three bytes where two do.
	long := append([]byte(manifestMagic), 1, 1, 'a', byte(KindDir), 0xed, 0x83, 0x00, 0, 0, 0)
	if _, err := DecodeManifest(long); err == nil {
		t.Fatal("a non-minimal varint decoded")
	}
	if _, err := streamed(long); !errors.Is(err, ErrBadManifest) {
		t.Fatalf("a non-minimal varint streamed: %v", err)
	}
	b := bigTree(300).Encode()
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		c := slices.Clone(b)
		switch i % 3 {
		case 0:
			c[r.IntN(len(c))] ^= byte(1 << r.IntN(8))
		case 1:
			c = c[:r.IntN(len(c))]
		case 2:
			at := r.IntN(len(c))
			c = slices.Insert(c, at, byte(r.IntN(256)))
		}
		m, err := DecodeManifest(c)
		sm, serr := streamed(c)
		if (err == nil) != (serr == nil) {
			t.Fatalf("mutation %d: decoded whole: %v; as a stream: %v", i, err, serr)
		}
		if err == nil && !slices.EqualFunc(m.Entries, sm.Entries, entryEqual) {
			t.Fatalf("mutation %d: the stream gives other entries", i)
		}
	}
}
