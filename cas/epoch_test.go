package cas_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
)

// reopen opens the store in dir with its stat cache in cache, closed at the end of the test
// or by the caller: each open is a new process's view (no working copy of the index yet).
func reopen(t *testing.T, dir, cache string, exclusive bool) *cas.Local {
	t.Helper()
	s, err := cas.OpenLocalWith(context.Background(), dir, cas.LocalOptions{Exclusive: exclusive, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ingestOnce(t *testing.T, dir, cache string, inputs []cas.Input) *cas.IngestResult {
	t.Helper()
	s := reopen(t, dir, cache, false)
	res, err := cas.Ingest(context.Background(), s, inputs, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return res
}

// wholeTree fails the test unless every chunk the tree names is in the store.
func wholeTree(t *testing.T, dir, cache string, tree cas.Hash) {
	t.Helper()
	ctx := context.Background()
	s := reopen(t, dir, cache, false)
	m, err := cas.LoadManifest(ctx, s, tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range m.Entries {
		for _, h := range e.Chunks {
			if ok, err := s.Has(ctx, h); err != nil || !ok {
				t.Fatalf("%s: chunk %s is not in the store (%v)", e.Path, h, err)
			}
		}
	}
	s.Close()
}

// A later process trusts the stat cache without the index only while no chunk left the
// store since the entry was written: a quarantined chunk is read and stored again.
func TestIngestAfterQuarantineStoresTheChunkAgain(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	dir, cache := t.TempDir(), t.TempDir()
	yaml := []byte("name: quarantined\n")
	inputs := []cas.Input{{Src: src, Dest: "tree"}, {Data: yaml, Dest: "runtime.yaml"}}
	r1 := ingestOnce(t, dir, cache, inputs)
	if r2 := ingestOnce(t, dir, cache, inputs); r2.BytesRead != 0 || r2.NewChunks != 0 || r2.Hash != r1.Hash {
		t.Fatalf("unchanged re-ingest read %d bytes, added %d chunks", r2.BytesRead, r2.NewChunks)
	}
	pip, err := os.ReadFile(filepath.Join(src, "venv/bin/pip"))
	if err != nil {
		t.Fatal(err)
	}
	s := reopen(t, dir, cache, false)
	if err := s.Quarantine(ctx, []cas.Hash{cas.Sum(pip), cas.Sum(yaml)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r3 := ingestOnce(t, dir, cache, inputs)
	if r3.BytesRead != int64(len(pip)) || r3.NewChunks != 2 || r3.Hash != r1.Hash {
		t.Fatalf("after two chunks were quarantined: read %d bytes (want %d), %d new chunks (want 2)", r3.BytesRead, len(pip), r3.NewChunks)
	}
	wholeTree(t, dir, cache, r3.Hash)
	if r4 := ingestOnce(t, dir, cache, inputs); r4.BytesRead != 0 || r4.NewChunks != 0 {
		t.Fatalf("re-ingest after the repair read %d bytes, added %d chunks", r4.BytesRead, r4.NewChunks)
	}
}

// A store removed and made again in the same place trusts nothing a cache kept beside it
// says about the old one.
func TestIngestIntoAStoreMadeAgainReadsEverything(t *testing.T) {
	src := sampleTree(t)
	base, cache := t.TempDir(), t.TempDir()
	dir := filepath.Join(base, "store")
	inputs := []cas.Input{{Src: src}, {Data: []byte("name: again\n"), Dest: "meta.yaml"}}
	r1 := ingestOnce(t, dir, cache, inputs)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	r2 := ingestOnce(t, dir, cache, inputs)
	if r2.BytesRead != r1.BytesRead || r2.NewChunks != r1.NewChunks {
		t.Fatalf("into the new store: read %d bytes and added %d chunks, the first ingest %d and %d", r2.BytesRead, r2.NewChunks, r1.BytesRead, r1.NewChunks)
	}
	wholeTree(t, dir, cache, r2.Hash)
}

// gc's Delete and a damaged epoch file both make the cache's entries checked again.
func TestIngestAfterGCOrADamagedEpoch(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	dir, cache := t.TempDir(), t.TempDir()
	inputs := []cas.Input{{Src: src}}
	r1 := ingestOnce(t, dir, cache, inputs)
	pip, err := os.ReadFile(filepath.Join(src, "venv/bin/pip"))
	if err != nil {
		t.Fatal(err)
	}
	s := reopen(t, dir, cache, true)
	if err := s.Delete(ctx, []cas.Hash{cas.Sum(pip)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if r2 := ingestOnce(t, dir, cache, inputs); r2.BytesRead != int64(len(pip)) || r2.NewChunks != 1 || r2.Hash != r1.Hash {
		t.Fatalf("after gc deleted a chunk: read %d bytes, %d new chunks", r2.BytesRead, r2.NewChunks)
	}
	wholeTree(t, dir, cache, r1.Hash)
	// A torn epoch file is replaced: entries are checked against the index (all there).
	if err := os.WriteFile(filepath.Join(dir, "epoch"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r3 := ingestOnce(t, dir, cache, inputs); r3.BytesRead != 0 || r3.NewChunks != 0 {
		t.Fatalf("after the epoch file was damaged: read %d bytes, %d new chunks", r3.BytesRead, r3.NewChunks)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "epoch")); err != nil || len(b) != 8 {
		t.Fatalf("epoch file after the ingest: %q, %v", b, err)
	}
}

// Whatever lies at STORE/epoch, a link, a pipe or a large file, an ingest neither follows
// it nor waits on it nor reads it whole: the caches are checked against the index, and a
// new token takes its place.
func TestIngestWithAHostileEpochFile(t *testing.T) {
	src := sampleTree(t)
	for _, plant := range []func(path string) error{
		func(path string) error { return os.Symlink("/dev/zero", path) },
		func(path string) error { return syscall.Mkfifo(path, 0o644) },
		func(path string) error { return os.WriteFile(path, make([]byte, 1<<20), 0o644) },
	} {
		dir, cache := t.TempDir(), t.TempDir()
		r1 := ingestOnce(t, dir, cache, []cas.Input{{Src: src}})
		path := filepath.Join(dir, "epoch")
		os.Remove(path)
		if err := plant(path); err != nil {
			t.Fatal(err)
		}
		// In a goroutine of its own (it may hang), so nothing there calls t.Fatal.
		type result struct {
			res *cas.IngestResult
			err error
		}
		done := make(chan result, 1)
		go func() {
			s, err := cas.OpenLocalWith(context.Background(), dir, cas.LocalOptions{CacheDir: cache})
			if err != nil {
				done <- result{nil, err}
				return
			}
			res, err := cas.Ingest(context.Background(), s, []cas.Input{{Src: src}}, cas.IngestOptions{})
			done <- result{res, errors.Join(err, s.Close())}
		}()
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatal(r.err)
			}
			r2 := r.res
			if r2.Hash != r1.Hash || r2.NewChunks != 0 {
				t.Fatalf("re-ingest beside a planted epoch: tree %v, %d new chunks", r2.Hash == r1.Hash, r2.NewChunks)
			}
			if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() || fi.Size() != 8 {
				t.Fatalf("the planted epoch was not replaced by a token: %v, %v", fi, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("an ingest waited on the epoch file")
		}
	}
}

// A token a crashed process was making (epoch.<hex>.tmp) goes at the next open that has
// the store to itself.
func TestRecoveryRemovesAnUnfinishedEpochToken(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir, "", true)
	s.Close()
	left := filepath.Join(dir, "epoch.0123456789abcdef.tmp")
	if err := os.WriteFile(left, []byte("12345678"), 0o644); err != nil {
		t.Fatal(err)
	}
	reopen(t, dir, "", true).Close()
	if _, err := os.Lstat(left); !os.IsNotExist(err) {
		t.Fatalf("the unfinished token is still there: %v", err)
	}
}
