package cas

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A prewalk is the tree cache's check, done earlier: an ingest that takes it finds the sum
// the check would and vouches for the tree with it, walking nothing itself; with a
// prewalk of something else, or one that failed, the ingest finds the tree as it is.
func TestPrewalkIsTheTreeCachesWalk(t *testing.T) {
	ctx := context.Background()
	dir, cache, wd := t.TempDir(), t.TempDir(), t.TempDir()
	env := filepath.Join(wd, "venv")
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(env, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bin/python", "#!/bin/sh\n")
	write("lib/site.py", "print('a')\n")
	write("lib/pkg/mod.py", "x = 1\n")
	if err := os.Symlink("site.py", filepath.Join(env, "lib/link")); err != nil {
		t.Fatal(err)
	}
	inputs := []Input{{Data: []byte("name: demo\n"), Dest: "runtime.yaml"}, {Src: env, Dest: "export/venv"}}
	ingest := func(p *Prewalk) *IngestResult {
		t.Helper()
		s, err := OpenLocalWith(ctx, dir, LocalOptions{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		r, err := Ingest(ctx, s, inputs, IngestOptions{Prewalk: p})
		if err != nil {
			t.Fatal(err)
		}
		if p != nil {
			select {
			case <-p.done:
			default:
				t.Fatal("the prewalk outlived the ingest")
			}
		}
		return r
	}
	// walked waits for a prewalk of root into dest to end.
	walked := func(root, dest string) *Prewalk {
		p := StartPrewalk(ctx, root, dest)
		<-p.done
		return p
	}

	first := ingest(StartPrewalk(ctx, env, "export/venv")) // nothing to check: stopped
	if first.Reused {
		t.Fatal("a first ingest was vouched for")
	}
	if r := ingest(walked(env, "export/venv")); !r.Reused || r.Hash != first.Hash {
		t.Fatalf("unchanged, with a prewalk: reused %v, tree %s, want the first tree %s", r.Reused, r.Hash, first.Hash)
	}

	// Taken: it found the tree as it was when it walked, before the change below.
	p := walked(env, "export/venv")
	write("lib/site.py", "print('b')\n")
	if r := ingest(p); !r.Reused || r.Hash != first.Hash {
		t.Fatalf("a prewalk made before a change: reused %v, want the tree it walked", r.Reused)
	}
	changed := ingest(nil)
	if changed.Reused || changed.Hash == first.Hash {
		t.Fatal("the ingest after it did not see the change")
	}

	// Another destination, another directory, a walk that failed.
	for _, p := range []*Prewalk{
		walked(env, "export/conda"),
		walked(filepath.Join(env, "lib"), "export/venv"),
		walked(filepath.Join(wd, "missing"), "export/venv"),
	} {
		write("lib/site.py", "print('"+p.root+p.dest+"')\n")
		if r := ingest(p); r.Reused || r.Hash == changed.Hash {
			t.Fatalf("with a prewalk of %s into %s, the change to %s was not seen", p.root, p.dest, env)
		}
		if r := ingest(nil); !r.Reused {
			t.Fatal("unchanged after it: not vouched for")
		}
	}
	var none *Prewalk
	none.Stop()
}
