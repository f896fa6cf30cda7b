package cas

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The tree cache hands back the last tree only when the walk finds on disk what the last
// ingest of the same inputs found, in the same epoch: any change below sends the ingest
// the usual way, which makes the tree a store without caches makes, and the ingest after
// it is vouched for again.
func TestTreeCacheVouchesOnlyForWhatItSaw(t *testing.T) {
	ctx := context.Background()
	dir, cache, wd := t.TempDir(), t.TempDir(), t.TempDir()
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(wd, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("env/a.py", "print('a')\n")
	write("env/sub/b.py", "print('b')\n")
	write("requirements.txt", "numpy\n")
	if err := os.Symlink("a.py", filepath.Join(wd, "env/link")); err != nil {
		t.Fatal(err)
	}
	yaml := []byte("name: demo\n")
	inputs := func() []Input {
		return []Input{
			{Data: yaml, Dest: "runtime.yaml"},
			{Src: filepath.Join(wd, "env"), Dest: "export/env"},
			{Src: filepath.Join(wd, "requirements.txt"), Dest: "dependencies/requirements.txt"},
		}
	}
	ingestIn := func(dir, cache string, in []Input) *IngestResult {
		t.Helper()
		s, err := OpenLocalWith(ctx, dir, LocalOptions{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		res, err := Ingest(ctx, s, in, IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// fresh is the tree of the inputs as they are, made by a store without caches.
	fresh := func() Hash { return ingestIn(t.TempDir(), "", inputs()).Hash }

	if r := ingestIn(dir, cache, inputs()); r.Reused {
		t.Fatal("a first ingest was vouched for")
	}
	want := fresh()
	if r := ingestIn(dir, cache, inputs()); !r.Reused || r.Hash != want || r.BytesRead != 0 || r.Files != 4 || r.Links != 1 {
		t.Fatalf("unchanged: reused %v, tree %s (want %s), read %d, %d files", r.Reused, r.Hash, want, r.BytesRead, r.Files)
	}
	a := filepath.Join(wd, "env/a.py")
	fi, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what   string
		change func()
	}{
		{"same size, times put back", func() {
			write("env/a.py", "print('A')\n")
			os.Chtimes(a, fi.ModTime(), fi.ModTime())
		}},
		{"a file added", func() { write("env/sub/c.py", "c\n") }},
		{"a file removed", func() { os.Remove(filepath.Join(wd, "env/sub/c.py")) }},
		{"a mode changed", func() { os.Chmod(a, 0o755) }},
		{"a link's target", func() {
			os.Remove(filepath.Join(wd, "env/link"))
			os.Symlink("sub/b.py", filepath.Join(wd, "env/link"))
		}},
		{"a directory renamed", func() { os.Rename(filepath.Join(wd, "env/sub"), filepath.Join(wd, "env/sub2")) }},
		{"a single-file input", func() { write("requirements.txt", "numpy==2\n") }},
		{"content held in memory", func() { yaml = []byte("name: demo2\n") }},
		{"the store's epoch", func() {
			s, err := OpenLocalWith(ctx, dir, LocalOptions{CacheDir: cache})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.idx.newEpoch(); err != nil {
				t.Fatal(err)
			}
			s.Close()
		}},
	} {
		c.change()
		want := fresh()
		if r := ingestIn(dir, cache, inputs()); r.Reused || r.Hash != want {
			t.Fatalf("%s: reused %v, tree %s (want %s)", c.what, r.Reused, r.Hash, want)
		}
		if r := ingestIn(dir, cache, inputs()); !r.Reused || r.Hash != want {
			t.Fatalf("%s, then unchanged: reused %v, tree %s (want %s)", c.what, r.Reused, r.Hash, want)
		}
	}
	// Content made during the ingest (a lock) is known only at its end: never vouched for.
	later := append(inputs(), Input{Dest: "lock.txt", Later: func() ([]byte, error) { return []byte("x==1\n"), nil }})
	ingestIn(dir, cache, later)
	if r := ingestIn(dir, cache, later); r.Reused {
		t.Fatal("an ingest with content made later was vouched for")
	}
}

// A tree cache entry is read back as written; bytes that are not one (cut short, or with
// more after it) are no entry, and never a panic.
func TestTreeEntryEncoding(t *testing.T) {
	te := treeEntry{epoch: epoch{1, 2, 3}, tree: Sum([]byte("t")), totals: Totals{Files: 3, Dirs: 2, Links: 1, Size: 1 << 40},
		skipped: []string{"/w/sock", "/w/fifo"}}
	te.sum.add([]byte("a"))
	te.sum.add([]byte("b"))
	b := te.encode()
	got, ok := decodeTreeEntry(b)
	if !ok || got.epoch != te.epoch || got.tree != te.tree || got.sum != te.sum || got.totals != te.totals ||
		len(got.skipped) != 2 || got.skipped[1] != "/w/fifo" {
		t.Fatalf("read back %+v (%v), wrote %+v", got, ok, te)
	}
	for n := range len(b) {
		if _, ok := decodeTreeEntry(b[:n]); ok {
			t.Fatalf("%d of %d bytes read as an entry", n, len(b))
		}
	}
	if _, ok := decodeTreeEntry(append(b, 0)); ok {
		t.Fatal("an entry with a byte after it was read")
	}
}

// Walked comes once for a tree the cache vouches for (beside its walk, for a small tree),
// and for a tree it then finds changed, Unwalked undoes it before Walked comes again: a
// build holds the ledger for its event from one Walked to its end, never twice, never
// through the usual ingest.
func TestTreeCacheWalkedOnce(t *testing.T) {
	ctx := context.Background()
	dir, cache, wd := t.TempDir(), t.TempDir(), t.TempDir()
	f := filepath.Join(wd, "a.py")
	if err := os.WriteFile(f, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inputs := []Input{{Src: wd, Dest: "export/env"}}
	ingest := func() (r *IngestResult, walked, unwalked int, order string) {
		t.Helper()
		s, err := OpenLocalWith(ctx, dir, LocalOptions{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		r, err = Ingest(ctx, s, inputs, IngestOptions{
			Walked:   func() { walked++; order += "w" },
			Unwalked: func() { unwalked++; order += "u" },
		})
		if err != nil {
			t.Fatal(err)
		}
		return r, walked, unwalked, order
	}
	if _, w, u, _ := ingest(); w != 1 || u != 0 {
		t.Fatalf("first ingest: Walked %d, Unwalked %d times", w, u)
	}
	if r, w, u, _ := ingest(); !r.Reused || w != 1 || u != 0 {
		t.Fatalf("unchanged: reused %v, Walked %d, Unwalked %d times", r.Reused, w, u)
	}
	if err := os.WriteFile(f, []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, _, _, order := ingest(); r.Reused || order != "wuw" {
		t.Fatalf("changed: reused %v, calls %q (want wuw)", r.Reused, order)
	}
}

// A file changed as an ingest begins may change again without its stat changing (a
// filesystem's clock that ticks coarsely): the ingest stores it but vouches for it neither
// in the stat cache nor in the tree cache, and the next ingest reads it again. Once the
// file is older than that, the ingest after the next is vouched for whole.
func TestRecentFilesAreReadAgain(t *testing.T) {
	ctx := context.Background()
	dir, cache, wd := t.TempDir(), t.TempDir(), t.TempDir()
	files := map[string]string{"old.py": "print('old')\n", "new.py": "print('new')\n"}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(wd, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	size := int64(len(files["old.py"]) + len(files["new.py"]))
	ingest := func() *IngestResult {
		t.Helper()
		s, err := OpenLocalWith(ctx, dir, LocalOptions{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		res, err := Ingest(ctx, s, []Input{{Src: wd, Dest: "env"}}, IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	restore := ShiftFSClock(-time.Hour) // as if every file here had changed as the ingest began
	defer restore()
	first := ingest()
	for i := range 2 {
		if r := ingest(); r.Reused || r.BytesRead != size || r.Hash != first.Hash {
			t.Fatalf("ingest %d after a recent change: reused %v, read %d of %d bytes, same tree %v", i+2, r.Reused, r.BytesRead, size, r.Hash == first.Hash)
		}
	}
	ShiftFSClock(time.Hour) // the files are old now
	if r := ingest(); r.Reused || r.BytesRead != size {
		t.Fatalf("first ingest of old files: reused %v, read %d of %d bytes", r.Reused, r.BytesRead, size)
	}
	if r := ingest(); !r.Reused || r.BytesRead != 0 || r.Hash != first.Hash {
		t.Fatalf("unchanged old files: reused %v, read %d bytes", r.Reused, r.BytesRead)
	}
}

// Racy judges a stamp by the tick it falls in, and a stamp in whole seconds (a filesystem
// that stamps in seconds or two) by the 2 s before.
func TestRacyStamps(t *testing.T) {
	const now = int64(1_700_000_000_123_456_789)
	for _, c := range []struct {
		ts   int64
		racy bool
	}{
		{now - 1, false}, {now, true}, {now + 5e6, true},
		{1_700_000_000e9, true}, {1_699_999_999e9, true}, {1_699_999_998e9, false},
	} {
		if got := Racy(c.ts, now); got != c.racy {
			t.Errorf("Racy(%d, %d) = %v, want %v", c.ts, now, got, c.racy)
		}
	}
}

// A directory's sum binds its entries to its paths: the same two entries in two
// directories, the other way round, sum differently (on disk a rename changes a file's
// ctime as well, but the sum does not rest on that).
func TestDirectorySumsBindEntriesToTheirDirectory(t *testing.T) {
	x, y := fileStat{size: 1, mtime: 1, ctime: 1, ino: 1}, fileStat{size: 1, mtime: 1, ctime: 1, ino: 2}
	sum := func(inA, inB fileStat) walkSum {
		var lw listWalker
		lw.add(recFile, "f", 0o644, &inA, "")
		lw.endDir("/w/a/", "a")
		lw.add(recFile, "f", 0o644, &inB, "")
		lw.endDir("/w/b/", "b")
		return lw.sum
	}
	if sum(x, y) == sum(y, x) {
		t.Fatal("a/f and b/f swapped: the same sum")
	}
	// The order entries are read in does not matter; their names do.
	var ab, ba, renamed listWalker
	ab.add(recFile, "a", 0o644, &x, "")
	ab.add(recFile, "b", 0o644, &y, "")
	ab.endDir("/w/", "")
	ba.add(recFile, "b", 0o644, &y, "")
	ba.add(recFile, "a", 0o644, &x, "")
	ba.endDir("/w/", "")
	renamed.add(recFile, "a", 0o644, &y, "")
	renamed.add(recFile, "b", 0o644, &x, "")
	renamed.endDir("/w/", "")
	if ab.sum != ba.sum || ab.sum == renamed.sum {
		t.Fatalf("read in another order: same sum %v (want true); names swapped: same sum %v (want false)", ab.sum == ba.sum, ab.sum == renamed.sum)
	}
}
