package cas_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/cas/treecmp"
)

// sampleTree writes a tree with what venvs hold: nested dirs, executable scripts, an empty
// file, a multi-chunk file, a relative link, an absolute dangling link, a read-only dir.
func sampleTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "venv/bin"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "venv/lib/site"), 0o755))
	must(os.WriteFile(filepath.Join(root, "venv/bin/pip"), []byte("#!/usr/bin/python\nimport pip\n"), 0o755))
	must(os.WriteFile(filepath.Join(root, "venv/lib/site/empty.py"), nil, 0o644))
	must(os.WriteFile(filepath.Join(root, "venv/lib/site/big.so"), noise(9, 3<<20), 0o755))
	must(os.WriteFile(filepath.Join(root, "venv/lib/site/copy.so"), noise(9, 3<<20), 0o644))
	must(os.WriteFile(filepath.Join(root, "runtime.yaml"), []byte("name: t\n"), 0o600))
	must(os.Symlink("python3", filepath.Join(root, "venv/bin/python")))
	must(os.Symlink("/nonexistent/lib/libfoo.so", filepath.Join(root, "venv/lib/dangling.so")))
	must(os.MkdirAll(filepath.Join(root, "ro/inner"), 0o755))
	must(os.WriteFile(filepath.Join(root, "ro/inner/f"), []byte("x"), 0o444))
	must(os.Chmod(filepath.Join(root, "ro/inner"), 0o555))
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "ro/inner"), 0o755) })
	return root
}

func TestIngestMaterializeRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	s := openLocal(t, t.TempDir())
	res, err := cas.Ingest(ctx, s, []cas.Input{{Src: src}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 6 || res.Links != 2 {
		t.Fatalf("ingest counted %d files and %d links, want 6 and 2", res.Files, res.Links)
	}
	if res.NewBytes > 3<<20+1<<20 {
		t.Fatalf("two identical 3 MiB files stored %d new bytes: not deduplicated", res.NewBytes)
	}
	m, err := cas.LoadManifest(ctx, s, res.Hash)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := cas.Materialize(ctx, s, m, dst, cas.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dst, "ro/inner"), 0o755) })
	if diff := treecmp.Diff(src, dst); diff != "" {
		t.Fatalf("materialised tree differs:\n%s", diff)
	}
	if err := cas.Materialize(ctx, s, m, dst, cas.MaterializeOptions{}); !errors.Is(err, cas.ErrNotEmpty) {
		t.Fatalf("materialise into a non-empty dir: %v, want ErrNotEmpty", err)
	}
}

func TestIngestIdentityIgnoresMtimeAndPlace(t *testing.T) {
	ctx := context.Background()
	a := sampleTree(t)
	s := openLocal(t, t.TempDir())
	r1, err := cas.Ingest(ctx, s, []cas.Input{{Src: a}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(a, "runtime.yaml"), later, later); err != nil {
		t.Fatal(err)
	}
	b := sampleTree(t) // same content, another directory, another store
	s2 := openLocal(t, t.TempDir())
	r2, err := cas.Ingest(ctx, s2, []cas.Input{{Src: b}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r3, err := cas.Ingest(ctx, s, []cas.Input{{Src: a}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Hash != r2.Hash || r1.Hash != r3.Hash {
		t.Fatalf("same content gave trees %s, %s, %s", r1.Hash, r2.Hash, r3.Hash)
	}
	if err := os.Chmod(filepath.Join(a, "runtime.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	r4, err := cas.Ingest(ctx, s, []cas.Input{{Src: a}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r4.Hash == r1.Hash {
		t.Fatal("a mode change did not change the tree's hash")
	}
}

func TestIngestStatCacheReadsNothing(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	s := openLocal(t, t.TempDir())
	r1, err := cas.Ingest(ctx, s, []cas.Input{{Src: src}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r1.BytesRead == 0 {
		t.Fatal("first ingest read nothing")
	}
	r2, err := cas.Ingest(ctx, s, []cas.Input{{Src: src}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r2.BytesRead != 0 || r2.NewChunks != 0 || r2.Hash != r1.Hash {
		t.Fatalf("unchanged re-ingest read %d bytes and added %d chunks", r2.BytesRead, r2.NewChunks)
	}
	edited := []byte("#!/usr/bin/python\nimport pip  \n")
	if err := os.WriteFile(filepath.Join(src, "venv/bin/pip"), edited, 0o755); err != nil {
		t.Fatal(err)
	}
	r3, err := cas.Ingest(ctx, s, []cas.Input{{Src: src}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r3.BytesRead != int64(len(edited)) || r3.Hash == r1.Hash {
		t.Fatalf("after editing one %d-byte file: read %d bytes, tree changed %v", len(edited), r3.BytesRead, r3.Hash != r1.Hash)
	}
	// The same directory named with a trailing slash is the same files.
	r4, err := cas.Ingest(ctx, s, []cas.Input{{Src: src + "/"}}, cas.IngestOptions{})
	if err != nil || r4.BytesRead != 0 || r4.Hash != r3.Hash {
		t.Fatalf("re-ingest through %s/: read %d bytes, same tree %v, %v", src, r4.BytesRead, r4.Hash == r3.Hash, err)
	}
	// A cached file whose chunk left the store is read again, and its chunk stored again.
	gone := cas.Sum(edited)
	if err := s.Delete(ctx, []cas.Hash{gone}); err != nil {
		t.Fatal(err)
	}
	r5, err := cas.Ingest(ctx, s, []cas.Input{{Src: src}}, cas.IngestOptions{})
	if err != nil || r5.BytesRead != int64(len(edited)) || r5.NewChunks != 1 {
		t.Fatalf("after its chunk was deleted: read %d bytes, %d new chunks, %v", r5.BytesRead, r5.NewChunks, err)
	}
}

func TestIngestInputsAndDestinations(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	s := openLocal(t, t.TempDir())
	res, err := cas.Ingest(ctx, s, []cas.Input{
		{Data: []byte("name: x\n"), Dest: "runtime.yaml"},
		{Src: filepath.Join(src, "venv"), Dest: "export/venv"},
		{Src: filepath.Join(src, "venv/bin/pip"), Dest: "files/bin/pip"},
	}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range manifestOf(t, s, res.Hash).Entries {
		paths = append(paths, e.Path)
	}
	got := strings.Join(paths, " ")
	for _, want := range []string{"export export/venv export/venv/bin", "files files/bin files/bin/pip", "runtime.yaml"} {
		if !strings.Contains(got, want) {
			t.Fatalf("tree %q lacks %q", got, want)
		}
	}
}

func TestManifestRefusesEscapes(t *testing.T) {
	h := cas.Sum([]byte("x"))
	file := func(p string) cas.Entry {
		return cas.Entry{Path: p, Kind: cas.KindFile, Mode: 0o644, Size: 1, Chunks: []cas.Hash{h}}
	}
	cases := map[string][]cas.Entry{
		"absolute":        {file("/etc/passwd")},
		"dotdot":          {file("../evil")},
		"inner dotdot":    {{Path: "a", Kind: cas.KindDir, Mode: 0o755}, file("a/../../evil")},
		"through symlink": {{Path: "a", Kind: cas.KindLink, Mode: 0o777, Target: "/etc"}, file("a/passwd")},
		"no parent":       {file("missing/f")},
		"through file":    {{Path: "a", Kind: cas.KindDir, Mode: 0o755}, file("a/b"), file("a/b/c")},
		"unsorted":        {file("b"), file("a")},
		"duplicate":       {file("a"), file("a")},
	}
	for name, entries := range cases {
		m := &cas.Manifest{Entries: entries}
		if err := m.Validate(); !errors.Is(err, cas.ErrBadManifest) {
			t.Errorf("%s: validate gave %v, want ErrBadManifest", name, err)
		}
		dst := t.TempDir()
		s := openLocal(t, t.TempDir())
		if err := cas.Materialize(context.Background(), s, m, dst, cas.MaterializeOptions{}); err == nil {
			t.Errorf("%s: materialised", name)
		}
		if ents, _ := os.ReadDir(dst); len(ents) != 0 {
			t.Errorf("%s: wrote %d entries before refusing", name, len(ents))
		}
		if _, err := cas.DecodeManifest(m.Encode()); !errors.Is(err, cas.ErrBadManifest) {
			t.Errorf("%s: decode gave %v, want ErrBadManifest", name, err)
		}
	}
}

func TestManifestNamesWhatAParentIs(t *testing.T) {
	h := cas.Sum([]byte("x"))
	dir := cas.Entry{Path: "a", Kind: cas.KindDir, Mode: 0o755}
	cases := []struct {
		entries []cas.Entry
		want    string
	}{
		{[]cas.Entry{dir, {Path: "a/b", Kind: cas.KindFile, Mode: 0o644, Size: 1, Chunks: []cas.Hash{h}}, {Path: "a/b/c", Kind: cas.KindDir, Mode: 0o755}},
			`"a/b/c" would be written through file "a/b"`},
		{[]cas.Entry{dir, {Path: "a/l", Kind: cas.KindLink, Mode: 0o777, Target: "/tmp"}, {Path: "a/l/x", Kind: cas.KindDir, Mode: 0o755}},
			`"a/l/x" would be written through symlink "a/l"`},
		{[]cas.Entry{dir, {Path: "a/m/x", Kind: cas.KindDir, Mode: 0o755}},
			`"a/m/x" has no parent directory entry`},
	}
	for _, c := range cases {
		err := (&cas.Manifest{Entries: c.entries}).Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("validate: %v, want %s", err, c.want)
		}
	}
}

func TestMaterializeDetectsCorruptChunk(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	dir := t.TempDir()
	s := openLocal(t, dir)
	res, err := cas.Ingest(ctx, s, []cas.Input{{Src: src}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := manifestOf(t, s, res.Hash) // read before the packs are damaged
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	for _, p := range packs {
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 1
		os.WriteFile(p, b, 0o644)
	}
	err = cas.Materialize(ctx, s, m, filepath.Join(t.TempDir(), "o"), cas.MaterializeOptions{})
	if !errors.Is(err, cas.ErrCorrupt) {
		t.Fatalf("materialise from a corrupt pack: %v, want ErrCorrupt", err)
	}
}

// TestIngestRootSpelling: a directory given with a trailing slash, a "." or a ".." in its
// path, at the root of the tree or under a destination, stores the same tree as its clean
// spelling, and in-memory inputs given before and after it land where they say.
func TestIngestRootSpelling(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	s := openLocal(t, t.TempDir())
	tree := func(src, dest string) cas.Hash {
		t.Helper()
		res, err := cas.Ingest(ctx, s, []cas.Input{
			{Data: []byte("a\n"), Dest: "first.txt"},
			{Src: src, Dest: dest},
			{Data: []byte("b\n"), Dest: "z/last.txt"},
		}, cas.IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Hash
	}
	for _, dest := range []string{"", "export/venv"} {
		want := tree(src, dest)
		for _, spelling := range []string{src + "/", src + "/.", filepath.Join(src, "venv") + "/..", src + "//"} {
			if got := tree(spelling, dest); got != want {
				t.Errorf("Src %q, Dest %q: tree %s, want %s (as %q)", spelling, dest, got, want, src)
			}
		}
	}
}

// The total a progress bar is given before a build is what the build then stores.
func TestPlanInputsCountsWhatIngestStores(t *testing.T) {
	src := sampleTree(t)
	inputs := []cas.Input{
		{Src: src, Dest: "tree"},
		{Src: filepath.Join(src, "venv/bin/pip"), Dest: "files/pip"},
		{Data: []byte("name: x\n"), Dest: "meta.yaml"},
	}
	files, bytes := cas.PlanInputs(inputs)
	res, err := cas.Ingest(context.Background(), openLocal(t, t.TempDir()), inputs, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if files != res.Files || bytes != res.Size {
		t.Fatalf("planned %d files, %d bytes; ingest stored %d files, %d bytes", files, bytes, res.Files, res.Size)
	}
}
