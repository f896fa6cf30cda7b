package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ingested stores the tree at src in a new store under dir and closes it, returning the
// store's path, the tree's name and its chunks.
func ingested(t *testing.T, dir, src string) (string, Hash, []Hash) {
	t.Helper()
	ctx := context.Background()
	store := filepath.Join(dir, "store")
	s, err := OpenLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Ingest(ctx, s, []Input{{Src: src}}, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadManifest(ctx, s, res.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return store, res.Hash, m.Chunks()
}

// An extract reads only what its tree names: it finds the chunks of a window of files in
// the index's database and never loads the working copy of the whole store's index.
func TestMaterializeDoesNotLoadTheStoresIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	want := map[string][]byte{}
	for i := range 40 {
		p := fmt.Sprintf("d%d/f%d", i%3, i)
		data := bytes.Repeat([]byte(p), 1+i*4000) // small files and files of many chunks
		want[p] = data
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store, tree, _ := ingested(t, dir, src)
	s, err := OpenLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := OpenManifest(ctx, s, tree)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := MaterializeStream(ctx, s, m, out, MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	for p, data := range want {
		got, err := os.ReadFile(filepath.Join(out, p))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes (%v), want %d", p, len(got), err, len(data))
		}
	}
	if s.idx.isLoaded() {
		t.Fatal("opening and materialising a tree loaded the store's whole index")
	}

	// A chunk the store lacks is named, as when the index is loaded.
	lost := Sum([]byte("a chunk nobody stored"))
	e := Entry{Path: "lost", Kind: KindFile, Size: 21, Mode: 0o644, Chunks: []Hash{lost}}
	s2, err := StreamOf(&Manifest{Entries: []Entry{e}})
	if err != nil {
		t.Fatal(err)
	}
	err = MaterializeStream(ctx, s, s2, filepath.Join(dir, "out2"), MaterializeOptions{})
	if !errors.Is(err, ErrNotFound) || !bytes.Contains([]byte(err.Error()), []byte(lost.String())) {
		t.Fatalf("materialising a lost chunk: %v, want not found naming %s", err, lost)
	}
}

// Copying one tree out of a store reads the index for that tree's chunks only, as
// extract does: Transfer and Missing leave the working copy unloaded, and answer as a
// loaded one would.
func TestTransferAndMissingDoNotLoadTheStoresIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprint(i)), bytes.Repeat([]byte{byte(i)}, 1+i*9000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store, tree, chunks := ingested(t, dir, src)
	hs := append([]Hash{tree}, chunks...)
	s, err := OpenLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lost := Sum([]byte("not stored"))
	missing, err := s.Missing(ctx, append([]Hash{lost}, hs...))
	if err != nil || len(missing) != 1 || missing[0] != lost {
		t.Fatalf("Missing: %v (%v), want only %s", missing, err, lost)
	}
	got := map[Hash]bool{}
	err = s.Transfer(ctx, hs, func(_ int, h Hash, r Raw) error {
		if r.Enc == EncGroup {
			g, err := VerifyGroup(h, r)
			if err != nil {
				return err
			}
			for _, c := range g.Chunks() {
				got[c] = true
			}
			return nil
		}
		if _, err := Decode(h, r, nil); err != nil {
			return err
		}
		got[h] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if !got[h] {
			t.Fatalf("Transfer did not send %s", h)
		}
	}
	if s.idx.isLoaded() {
		t.Fatal("Missing and Transfer of one tree loaded the store's whole index")
	}
	if err := s.Transfer(ctx, []Hash{lost}, func(int, Hash, Raw) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Transfer of a chunk not stored: %v, want not found", err)
	}
}

// A file gets its manifest's permission bits exactly, whatever the umask: created with
// them when the umask leaves them whole, else chmod'ed after.
func TestMaterializeGivesExactModesUnderAnyUmask(t *testing.T) {
	ctx := context.Background()
	modes := []uint32{0o644, 0o755, 0o600, 0o444, 0o777, 0o640, 0o700, 0o4755}
	dir := t.TempDir()
	s, err := OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var m Manifest
	for i, mode := range modes {
		data := []byte(fmt.Sprintf("file %d", i))
		h := Sum(data)
		if err := s.Put(ctx, h, data); err != nil {
			t.Fatal(err)
		}
		m.Entries = append(m.Entries, Entry{Path: fmt.Sprintf("f%d", i), Kind: KindFile, Mode: mode, Size: int64(len(data)), Chunks: []Hash{h}})
	}
	// Directories, each holding a file: made with their mode, or set at the end (those
	// that would not let a non-root user in, or that the umask would cut).
	dirModes := []uint32{0o755, 0o700, 0o555, 0o711, 0o777, 0o2755, 0o500, 0o750}
	for i, mode := range dirModes {
		data := []byte(fmt.Sprintf("in d%d", i))
		h := Sum(data)
		if err := s.Put(ctx, h, data); err != nil {
			t.Fatal(err)
		}
		d := fmt.Sprintf("d%d", i)
		m.Entries = append(m.Entries, Entry{Path: d, Kind: KindDir, Mode: mode},
			Entry{Path: d + "/f", Kind: KindFile, Mode: 0o644, Size: int64(len(data)), Chunks: []Hash{h}})
	}
	slices.SortFunc(m.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	for _, umask := range []int{0o022, 0o077, 0o027, 0} {
		t.Run(fmt.Sprintf("umask %03o", umask), func(t *testing.T) {
			old := syscall.Umask(umask)
			defer syscall.Umask(old)
			if got := readUmask(); got != uint32(umask) {
				t.Fatalf("readUmask %03o, want %03o", got, umask)
			}
			out := filepath.Join(dir, fmt.Sprintf("out-%03o", umask))
			if err := Materialize(ctx, s, &m, out, MaterializeOptions{}); err != nil {
				t.Fatal(err)
			}
			for i, mode := range modes {
				fi, err := os.Lstat(filepath.Join(out, fmt.Sprintf("f%d", i)))
				if err != nil {
					t.Fatal(err)
				}
				if got, want := uint32(fi.Mode().Perm()), mode&0o777; got != want || fi.Mode()&os.ModeSetuid != 0 {
					t.Fatalf("f%d: mode %v, want %03o (no setuid)", i, fi.Mode(), want)
				}
			}
			for i, mode := range dirModes {
				d := filepath.Join(out, fmt.Sprintf("d%d", i))
				fi, err := os.Lstat(d)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := uint32(fi.Mode().Perm()), mode&0o777; !fi.IsDir() || got != want || fi.Mode()&os.ModeSetgid != 0 {
					t.Fatalf("d%d: mode %v, want a directory %03o (no setgid)", i, fi.Mode(), want)
				}
				if b, err := os.ReadFile(filepath.Join(d, "f")); err != nil || string(b) != fmt.Sprintf("in d%d", i) {
					t.Fatalf("d%d/f: %q, %v", i, b, err)
				}
			}
			// Let the temporary directory's removal in (a read-only directory stops it).
			filepath.WalkDir(out, func(p string, de fs.DirEntry, err error) error {
				if err == nil && de.IsDir() {
					os.Chmod(p, 0o755)
				}
				return nil
			})
		})
	}
}

// warmLog records the groups a prefetch warms, by their chunk.
type warmLog struct {
	mu     sync.Mutex
	warmed []Hash
}

func (w *warmLog) warm(h Hash, _ loc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warmed = append(w.warmed, h)
}

func (w *warmLog) got() []Hash {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.warmed)
}

// A window's prefetch decompresses its groups in the order its files read them, at most
// prefetchAhead beyond the furthest a writer has asked for, skips those already being
// read, and ends after the last.
func TestPrefetchStaysAFewGroupsAheadOfItsReaders(t *testing.T) {
	var files []*Entry
	locs := map[Hash]loc{}
	var hs []Hash
	for i := range 10 {
		h := Sum([]byte{byte(i)})
		hs = append(hs, h)
		locs[h] = loc{pack: 1, off: int64(i) * 100, enc: EncGroup}
		files = append(files, &Entry{Path: fmt.Sprintf("f%d", i), Kind: KindFile, Size: 1, Chunks: []Hash{h}})
	}
	files = append(files, &Entry{Path: "again", Kind: KindFile, Size: 1, Chunks: []Hash{hs[0]}}) // group 0 once
	p := newPrefetch(files, locs)
	if len(p.groups) != 10 {
		t.Fatalf("%d groups listed, want 10", len(p.groups))
	}
	var w warmLog
	done := make(chan struct{})
	go func() { p.run(context.Background(), &w); close(done) }()
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(w.got()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("warmed %d groups, want %d", len(w.got()), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(prefetchAhead)
	time.Sleep(20 * time.Millisecond)
	if got := w.got(); !slices.Equal(got, hs[:prefetchAhead]) {
		t.Fatalf("before any read: warmed %d groups, want the first %d", len(got), prefetchAhead)
	}
	p.reach(locs[hs[5]]) // a writer at group 5: 2 to 5 are being read, 6 and 7 come next
	waitFor(4)
	time.Sleep(20 * time.Millisecond)
	if got, want := w.got(), []Hash{hs[0], hs[1], hs[6], hs[7]}; !slices.Equal(got, want) {
		t.Fatalf("after a read of group 5: warmed %v, want groups 0, 1, 6, 7", len(got))
	}
	p.reach(locs[hs[9]])
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the prefetch did not end after the last group was read")
	}
	if n := len(w.got()); n != 4 {
		t.Fatalf("warmed %d groups in all, want 4 (8 and 9 were being read)", n)
	}
}
