package cas

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// An unchanged re-ingest by a new process answers from the stat and blob caches alone: the
// index's working copy (a map of every chunk) is never loaded, and the stat cache is never
// opened for writing (which makes a new log and manifest).
func TestUnchangedIngestLeavesTheIndexUnloaded(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	for i, name := range []string{"a", "b/c", "b/d/e"} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte{byte(i), 'x'}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir, cache := t.TempDir(), t.TempDir()
	inputs := []Input{{Src: src, Dest: "t"}, {Data: []byte("lock\n"), Dest: "lock"}}
	var loaded, wrote []bool
	for range 3 {
		s, err := OpenLocalWith(ctx, dir, LocalOptions{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Ingest(ctx, s, inputs, IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		loaded = append(loaded, s.idx.isLoaded())
		s.cacheMu.RLock()
		wrote = append(wrote, s.cacheRW)
		s.cacheMu.RUnlock()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if !loaded[0] || loaded[1] || loaded[2] {
		t.Fatalf("index loaded by the first, second, third ingest: %v; want only the first", loaded)
	}
	if !wrote[0] || wrote[1] || wrote[2] {
		t.Fatalf("stat cache opened for writing by the first, second, third ingest: %v; want only the first", wrote)
	}
}
