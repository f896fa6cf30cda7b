package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

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
	store := filepath.Join(dir, "store")
	s, err := OpenLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Ingest(ctx, s, []Input{{Src: src}}, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := OpenManifest(ctx, s, res.Hash)
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
