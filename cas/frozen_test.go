package cas_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swcli/swcli/cas"
)

// testdata/v1store is a store written by store format v1: two packs (one with a group of
// small chunks, one with a large file's chunks), the pebble index, and a manifest. It is
// frozen: this test must keep reading it. A change that breaks it is a new format version
// (keys.go's indexSchema, pack.go's magic), with the fixture of the old one kept beside.
// SWCLI_WRITE_FIXTURES=1 writes it again, for a new version only.

// frozenV1Tree is the fixture's tree: the same files stored today must name the same tree.
const frozenV1Tree = "blake3:849fa40761a0574da5b8b1e18f99dd478b89e8e285cc5ac61cf46f7905ef6bcd"

// frozenFiles is what the fixture's tree holds.
func frozenFiles() map[string][]byte {
	big := make([]byte, 700<<10) // more than one chunk
	x := uint32(1)
	for i := range big {
		x = x*1664525 + 1013904223
		big[i] = byte(x >> 24)
	}
	return map[string][]byte{
		"runtime.yaml":                  []byte("name: frozen\nmode: venv\n"),
		"dependencies/requirements.txt": []byte("numpy==1.26.4\n"),
		"files/a/b/small.txt":           bytes.Repeat([]byte("small file\n"), 40),
		"files/big.bin":                 big,
	}
}

func TestWriteV1Fixtures(t *testing.T) {
	if os.Getenv("SWCLI_WRITE_FIXTURES") == "" {
		t.Skip("writes testdata/v1store; only for a new format version")
	}
	out := filepath.Join("testdata", "v1store")
	os.RemoveAll(out)
	src := t.TempDir()
	for p, b := range frozenFiles() {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), b, 0o644)
	}
	s, err := cas.OpenLocal(out)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cas.Ingest(context.Background(), s, []cas.Input{{Src: src}}, cas.IngestOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	extra := []byte("a chunk of its own, in a second pack")
	if err := s.Put(context.Background(), cas.Sum(extra), extra); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(out, "lock"))
	os.Remove(filepath.Join(out, "index.lock"))
	os.Remove(filepath.Join(out, "index", "LOCK"))
	os.WriteFile(filepath.Join(out, "TREE"), []byte(res.Hash.String()+"\n"), 0o644)
	t.Logf("tree %s", res.Hash)
}

// copyTree copies a fixture, so that opening it (which writes) leaves testdata alone.
func copyTree(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

func TestFrozenV1StoreStillReads(t *testing.T) {
	fixture := filepath.Join("testdata", "v1store")
	treeText, err := os.ReadFile(filepath.Join(fixture, "TREE"))
	if err != nil {
		t.Fatalf("the v1 store fixture is missing: %v", err)
	}
	tree, err := cas.ParseHash(strings.TrimSpace(string(treeText)))
	if err != nil || tree.String() != frozenV1Tree {
		t.Fatalf("fixture tree %s (%v), want %s", treeText, err, frozenV1Tree)
	}
	src := t.TempDir()
	for p, b := range frozenFiles() {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), b, 0o644)
	}
	fresh := openLocal(t, t.TempDir())
	if res, err := cas.Ingest(context.Background(), fresh, []cas.Input{{Src: src}}, cas.IngestOptions{}); err != nil || res.Hash.String() != frozenV1Tree {
		t.Fatalf("the same files stored today: %v (%v), want tree %s: a changed tree hash is a new format version", res.Hash, err, frozenV1Tree)
	}
	packs, _ := filepath.Glob(filepath.Join(fixture, "packs", "*.pack"))
	if len(packs) != 2 {
		t.Fatalf("fixture has %d packs, want 2", len(packs))
	}
	ctx := context.Background()
	for _, mode := range []cas.LocalOptions{{}, {Exclusive: true}} {
		t.Run(fmt.Sprintf("exclusive=%v", mode.Exclusive), func(t *testing.T) {
			s, err := cas.OpenLocalWith(ctx, copyTree(t, fixture), mode)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			m, err := cas.LoadManifest(ctx, s, tree)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "out")
			if err := cas.Materialize(ctx, s, m, dir, cas.MaterializeOptions{}); err != nil {
				t.Fatal(err)
			}
			for p, want := range frozenFiles() {
				got, err := os.ReadFile(filepath.Join(dir, p))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s: %d bytes, %v; want %d bytes", p, len(got), err, len(want))
				}
			}
			rep, err := cas.VerifyAll(ctx, s)
			if err != nil || len(rep.Corrupt) != 0 || rep.Chunks < 5 {
				t.Fatalf("verify: %d chunks, %v, %v", rep.Chunks, rep.Corrupt, err)
			}
		})
	}
}
