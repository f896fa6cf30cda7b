package cas_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/swcli/swcli/cas"
)

// A snapshot of the stat cache loaded ahead of an ingest (a build prefetches its workdir's
// while the ledger opens) is only a cache: a file changed after it was loaded is read
// again, the others are not, and a prefetch of another directory leaves the ingest to load
// its own.
func TestPrefetchedStatsAreCheckedAgainstTheFiles(t *testing.T) {
	dir, cache, wd := t.TempDir(), t.TempDir(), t.TempDir()
	write := func(rel, data string) {
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
	inputs := []cas.Input{
		{Src: filepath.Join(wd, "env"), Dest: "export/env"},
		{Src: filepath.Join(wd, "requirements.txt"), Dest: "dependencies/requirements.txt"},
	}
	r1 := ingestOnce(t, dir, cache, inputs)

	ingestAfter := func(prefetch string) *cas.IngestResult {
		t.Helper()
		s := reopen(t, dir, cache, false)
		s.PrefetchStats([]string{prefetch})
		res, err := cas.Ingest(context.Background(), s, inputs, cas.IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return res
	}
	if r := ingestAfter(wd); r.BytesRead != 0 || r.Hash != r1.Hash {
		t.Fatalf("unchanged tree after a prefetch: read %d bytes, tree %s (want 0, %s)", r.BytesRead, r.Hash, r1.Hash)
	}

	s := reopen(t, dir, cache, false)
	s.PrefetchStats([]string{wd})
	changed := "print('a, changed')\n"
	write("env/a.py", changed) // after the prefetch began: its entry may be the old one
	r2, err := cas.Ingest(context.Background(), s, inputs, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if r2.BytesRead != int64(len(changed)) || r2.Hash == r1.Hash {
		t.Fatalf("a file changed after the prefetch: read %d bytes (want %d), tree changed %v", r2.BytesRead, len(changed), r2.Hash != r1.Hash)
	}
	if r := ingestAfter(t.TempDir()); r.BytesRead != 0 || r.Hash != r2.Hash {
		t.Fatalf("after a prefetch of another directory: read %d bytes, tree %s (want 0, %s)", r.BytesRead, r.Hash, r2.Hash)
	}
}
