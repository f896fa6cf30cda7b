package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// treeOf returns a valid manifest of n files spread over directories, some with chunks.
func treeOf(n int) *Manifest {
	m := &Manifest{}
	dirs := []string{"a", "a/b", "a-c", "z"}
	for _, d := range dirs {
		m.Entries = append(m.Entries, Entry{Path: d, Kind: KindDir, Mode: 0o755})
	}
	for i := range n {
		e := Entry{Path: fmt.Sprintf("%s/f%05d.py", dirs[i%len(dirs)], i), Kind: KindFile, Mode: 0o644}
		if i%3 != 0 {
			e.Size = int64(i)
			for j := range 1 + i%4 {
				e.Chunks = append(e.Chunks, Sum([]byte{byte(i), byte(i >> 8), byte(j)}))
			}
		}
		m.Entries = append(m.Entries, e)
	}
	m.Entries = append(m.Entries, Entry{Path: "a/b/link", Kind: KindLink, Mode: 0o777, Target: "../f00001.py"})
	slices.SortFunc(m.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return m
}

// sorted feeds m's entries to a treeSort in a shuffled order, with a memory limit of limit
// bytes, and returns what it encodes. Its sum, made without the bytes, must be theirs, with
// the same totals, or the same error.
func sorted(t *testing.T, m *Manifest, limit int, seed uint64) ([]byte, Totals, error) {
	t.Helper()
	ts := newTreeSort(t.TempDir())
	ts.sp.limit = limit
	defer ts.close()
	order := rand.New(rand.NewPCG(seed, 1)).Perm(len(m.Entries))
	for _, i := range order {
		if err := ts.add(&m.Entries[i]); err != nil {
			return nil, Totals{}, err
		}
	}
	h, sumTot, sumErr := ts.sum()
	enc, tot, err := ts.encode()
	switch {
	case (sumErr == nil) != (err == nil) || err != nil && sumErr.Error() != err.Error():
		t.Fatalf("limit %d: sum says %v, encode %v", limit, sumErr, err)
	case err == nil && (h != Sum(enc) || sumTot != tot):
		t.Fatalf("limit %d: sum %s %+v, encode's bytes hash to %s %+v", limit, h, sumTot, Sum(enc), tot)
	}
	return enc, tot, sumErr
}

// Entries given in any order, held in memory or spilled to disk in runs, encode to the
// bytes of the manifest sorted in memory: a tree keeps its name however it was walked.
func TestTreeSortEncodesAsTheManifest(t *testing.T) {
	m := treeOf(5000) // past sortSplit: halves sorted at once
	want := m.Encode()
	for _, limit := range []int{1 << 30, 64 << 10, 4 << 10, 1} {
		got, tot, err := sorted(t, m, limit, uint64(limit))
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("limit %d: %d bytes differ from the manifest's %d", limit, len(got), len(want))
		}
		if tot != m.Totals() {
			t.Fatalf("limit %d: totals %+v, want %+v", limit, tot, m.Totals())
		}
	}
}

// What Validate refuses, the sort refuses with the same words, spilled or not.
func TestTreeSortRefusesBadTrees(t *testing.T) {
	for _, c := range []struct {
		name string
		bad  func(m *Manifest)
		want string
	}{
		{"twice", func(m *Manifest) { m.Entries = append(m.Entries, m.Entries[7]) }, "twice"},
		{"no parent", func(m *Manifest) {
			m.Entries = append(m.Entries, Entry{Path: "q/x", Kind: KindFile, Mode: 0o644})
		}, "has no parent directory entry"},
		{"through a file", func(m *Manifest) {
			m.Entries = append(m.Entries, Entry{Path: "a/f00000.py/x", Kind: KindFile, Mode: 0o644})
		}, `would be written through file "a/f00000.py"`},
		{"through a link", func(m *Manifest) {
			m.Entries = append(m.Entries, Entry{Path: "a/b/link/x", Kind: KindFile, Mode: 0o644})
		}, `would be written through symlink "a/b/link"`},
		{"dir with content", func(m *Manifest) {
			m.Entries = append(m.Entries, Entry{Path: "a/d", Kind: KindDir, Size: 3})
		}, "directory \"a/d\" has content"},
	} {
		for _, limit := range []int{1 << 30, 2 << 10} {
			m := treeOf(500)
			c.bad(m)
			if _, _, err := sorted(t, m, limit, 7); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s, limit %d: %v, want %q", c.name, limit, err, c.want)
			}
		}
	}
}

// A tree whose manifest would pass MaxBlob fails as its entries are added, before the walk
// ends, with ErrTooLarge.
func TestTreeSortTooLarge(t *testing.T) {
	ts := newTreeSort(t.TempDir())
	defer ts.close()
	ts.sp.max = 10 << 10
	e := Entry{Path: strings.Repeat("p", 100), Kind: KindDir, Mode: 0o755}
	var err error
	for i := 0; err == nil && i < 1000; i++ {
		err = ts.add(&e)
	}
	if !errors.Is(err, ErrTooLarge) || ts.sp.count > 100 {
		t.Fatalf("after %d entries of 100 bytes against 10 KiB: %v, want ErrTooLarge", ts.sp.count, err)
	}
}

// A spill without an order gives its records back as they came, across runs; its file is
// gone from the directory while it is used.
func TestSpillKeepsOrderAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s := newSpill(dir, nil)
	s.limit = 100
	var want [][]byte
	for i := range 500 {
		rec := []byte(fmt.Sprintf("record %d %s", i, strings.Repeat("x", i%17)))
		want = append(want, rec)
		if err := s.add(len(rec), func(b []byte) []byte { return append(b, rec...) }); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.runs) < 10 {
		t.Fatalf("%d runs for 500 records at 100 bytes: the spill did not spill", len(s.runs))
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Fatalf("spill left %d names in its directory", len(names))
	}
	var got [][]byte
	if err := s.each(func(rec []byte) error { got = append(got, bytes.Clone(rec)); return nil }); err != nil {
		t.Fatal(err)
	}
	s.close()
	if len(got) != len(want) {
		t.Fatalf("%d records back of %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// An ingest whose entries and stat records spill to disk names the tree as one held in
// memory, and its stat records, read back from the spill, spare the next ingest every read.
func TestIngestSpilledMatchesHeld(t *testing.T) {
	src := t.TempDir()
	for i := range 400 {
		dir := filepath.Join(src, fmt.Sprintf("d%02d", i%13))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), []byte(strings.Repeat(fmt.Sprint(i), i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ingest := func(limit int) (*IngestResult, *IngestResult) {
		old := spillLimit
		spillLimit = limit
		defer func() { spillLimit = old }()
		dir := t.TempDir()
		s, err := OpenLocalWith(context.Background(), dir, LocalOptions{Exclusive: true, CacheDir: filepath.Join(dir, "statcache")})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		first, err := Ingest(context.Background(), s, []Input{{Src: src}}, IngestOptions{})
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		again, err := Ingest(context.Background(), s, []Input{{Src: src}}, IngestOptions{})
		if err != nil {
			t.Fatalf("limit %d, again: %v", limit, err)
		}
		return first, again
	}
	held, _ := ingest(1 << 30)
	spilled, again := ingest(512)
	if spilled.Hash != held.Hash || spilled.Totals != held.Totals {
		t.Fatalf("spilled: %s %+v; held: %s %+v", spilled.Hash, spilled.Totals, held.Hash, held.Totals)
	}
	if again.Hash != held.Hash || again.BytesRead != 0 {
		t.Fatalf("re-ingest after a spilled one: %s, %d bytes read; want %s and none", again.Hash, again.BytesRead, held.Hash)
	}
}
