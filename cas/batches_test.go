package cas

import (
	"fmt"
	"path"
	"testing"
)

func TestFileBatchesKeepADirectorysFilesTogether(t *testing.T) {
	m := &Manifest{}
	add := func(p string, k Kind, size int64) {
		m.Entries = append(m.Entries, Entry{Path: p, Kind: k, Mode: 0o644, Size: size})
	}
	add("a", KindDir, 0)
	add("a/x.py", KindFile, 10)
	add("a/sub", KindDir, 0)
	add("a/sub/y.py", KindFile, 10)
	add("a/z.py", KindFile, 10)
	add("big", KindDir, 0)
	for i := range 300 { // more files than a batch holds
		add(fmt.Sprintf("big/f%03d", i), KindFile, 1)
	}
	add("huge", KindDir, 0)
	for i := range 3 { // more bytes than a batch holds
		add(fmt.Sprintf("huge/h%d", i), KindFile, batchBytes/2+1)
	}
	add("link", KindLink, 0)
	add("top.txt", KindFile, 5)

	seen := map[string]bool{}
	last := map[string]string{} // a directory's last file written
	var bt batcher
	var batches [][]*Entry
	for i := range m.Entries {
		if e := &m.Entries[i]; e.Kind == KindFile {
			if b := bt.add(e); b != nil {
				batches = append(batches, b)
			}
		}
	}
	batches = append(batches, bt.flush())
	for _, b := range batches {
		if len(b) == 0 || len(b) > batchFiles {
			t.Fatalf("batch of %d files", len(b))
		}
		var size int64
		for _, e := range b {
			if e.Kind != KindFile {
				t.Fatalf("%s (%s) in a batch of files", e.Path, e.Kind)
			}
			if d := path.Dir(e.Path); d != path.Dir(b[0].Path) {
				t.Fatalf("batch mixes %s with %s", e.Path, b[0].Path)
			}
			if seen[e.Path] {
				t.Fatalf("%s batched twice", e.Path)
			}
			seen[e.Path] = true
			if p := last[path.Dir(e.Path)]; p > e.Path {
				t.Fatalf("%s written after %s: out of the manifest's order", e.Path, p)
			}
			last[path.Dir(e.Path)] = e.Path
			size += e.Size
		}
		if size > batchBytes && len(b) > 1 {
			t.Fatalf("batch of %d bytes in %d files", size, len(b))
		}
	}
	if want := 3 + 300 + 3 + 1; len(seen) != want {
		t.Fatalf("%d files batched, want %d", len(seen), want)
	}
}

func TestWindowSortsByPlaceAndFills(t *testing.T) {
	var w window
	at := func(pack uint64, off, inner int64) *loc { return &loc{pack: pack, off: off, inner: inner} }
	files := []struct {
		path string
		at   *loc
	}{
		{"a/1", at(2, 10, 0)},
		{"a/2", at(1, 50, 7)},
		{"a/3", nil}, // an empty file, or one the store cannot place: first
		{"b/1", at(1, 50, 3)},
		{"b/2", at(2, 10, 0)}, // the same place as a/1: after it, as in the tree
		{"b/3", at(1, 20, 0)},
	}
	locs := map[Hash]loc{}
	for _, f := range files {
		e := &Entry{Path: f.path, Kind: KindFile, Size: 1}
		if f.at != nil {
			h := Sum([]byte(f.path))
			e.Chunks = []Hash{h, Sum([]byte("second chunk, not the file's place"))}
			locs[h] = *f.at
		}
		if w.add(e) {
			t.Fatal("a window of six files is full")
		}
	}
	var got []string
	for _, e := range w.sorted(locs) {
		got = append(got, e.Path)
	}
	want := []string{"a/3", "b/3", "b/1", "a/2", "a/1", "b/2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sorted %v, want %v", got, want)
	}
	if len(w.sorted(locs)) != 0 {
		t.Fatal("sorted does not empty the window")
	}
	for i := range windowFiles - 1 {
		if w.add(&Entry{Path: fmt.Sprint(i), Kind: KindFile}) {
			t.Fatalf("full at %d files", i+1)
		}
	}
	if !w.add(&Entry{Path: "last", Kind: KindFile}) {
		t.Fatalf("not full at %d files", windowFiles)
	}
	if got := w.sorted(nil); got[0].Path != "0" || got[len(got)-1].Path != "last" {
		t.Fatal("a window without locations is not kept in the tree's order")
	}
	if !w.add(&Entry{Path: "big", Kind: KindFile, Size: windowBytes}) {
		t.Fatal("not full at windowBytes")
	}
	w.sorted(nil)
	if w.add(&Entry{Path: "many", Kind: KindFile, Chunks: make([]Hash, windowChunks-1)}) {
		t.Fatalf("full at %d chunks", windowChunks-1)
	}
	if !w.add(&Entry{Path: "one more", Kind: KindFile, Chunks: make([]Hash, 1)}) {
		t.Fatalf("not full at windowChunks (%d)", windowChunks)
	}
	w.sorted(nil)
	if w.add(&Entry{Path: "after", Kind: KindFile, Chunks: make([]Hash, 1)}) {
		t.Fatal("sorted does not empty the window's chunk count")
	}
}

// A local store finds a window's chunks, so its extracts are sorted by place.
var _ windowReader = (*Local)(nil)
