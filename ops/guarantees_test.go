package ops_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/formats"
)

// bundle stores a tree made of files (path -> content) and links (path -> target) as a
// version of runtime name, the way a hostile server or bundle could hand it over.
func bundle(t *testing.T, in *ops.Instance, name string, files, links map[string]string, modes map[string]os.FileMode) *ledger.Version {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		if err := os.Symlink(target, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	for p, m := range modes {
		if err := os.Chmod(filepath.Join(dir, p), m); err != nil {
			t.Fatal(err)
		}
	}
	res, err := cas.Ingest(ctx, in.Store, []cas.Input{{Src: dir}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return recordBuilt(t, in, name, res)
}

// A bundle whose paths that restore writes are links (to files and directories outside
// the extraction) is refused, and nothing outside changes.
func TestRestoreNeverWritesThroughBundleLinks(t *testing.T) {
	in := openInstance(t, t.TempDir())
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	os.MkdirAll(filepath.Join(outside, "venv", "bin"), 0o755)
	os.WriteFile(victim, []byte("keep me\n"), 0o644)
	os.WriteFile(filepath.Join(outside, "venv", "pyvenv.cfg"), []byte("home = /keep\n"), 0o644)
	os.WriteFile(filepath.Join(outside, "venv", "bin", "activate"), []byte("VIRTUAL_ENV=/old\n"), 0o644)
	venvFiles := map[string]string{
		"runtime.yaml": "name: evil\nmode: venv\n", "export/venv/pyvenv.cfg": "home = /usr/bin\nversion = 3.11.2\n",
		"export/venv/bin/activate": "VIRTUAL_ENV=/old\n",
	}
	cases := map[string]struct {
		files map[string]string
		links map[string]string
	}{
		"activate.host":          {venvFiles, map[string]string{"activate.host": victim}},
		"export/venv":            {map[string]string{"runtime.yaml": "name: evil\n"}, map[string]string{"export/venv": filepath.Join(outside, "venv")}},
		"export/venv/bin":        {map[string]string{"runtime.yaml": "name: evil\n", "export/venv/pyvenv.cfg": "home = /x\n"}, map[string]string{"export/venv/bin": filepath.Join(outside, "venv", "bin")}},
		"export/venv/pyvenv.cfg": {map[string]string{"runtime.yaml": "name: evil\n", "export/venv/bin/activate": "x\n"}, map[string]string{"export/venv/pyvenv.cfg": filepath.Join(outside, "venv", "pyvenv.cfg")}},
		"runtime.yaml":           {map[string]string{"x": "y"}, map[string]string{"runtime.yaml": victim}},
		"venv":                   {map[string]string{"runtime.yaml": "name: evil\n"}, map[string]string{"venv": filepath.Join(outside, "venv")}},
	}
	i := 0
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			i++
			v := bundle(t, in, "evil"+string(rune('a'+i)), c.files, c.links, nil)
			res, err := ops.Extract(ctx, in, "self", v.Runtime, v.ID, filepath.Join(t.TempDir(), "x"), false, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = formats.Restore(ctx, formats.RestoreRequest{Dir: res.Dir})
			if ops.KindOf(err) != ops.KindCorrupt {
				t.Fatalf("restore of a bundle with a link at %s: %v, want it refused", name, err)
			}
			if b, _ := os.ReadFile(victim); string(b) != "keep me\n" {
				t.Fatalf("a file outside was rewritten: %q", b)
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "venv", "pyvenv.cfg")); string(b) != "home = /keep\n" {
				t.Fatalf("a venv outside was rewritten: %q", b)
			}
		})
	}
}

// An extraction is all or nothing: a partial tree (an interrupted extract) is never taken
// for a complete one, -f replaces only extractions and empty directories, and a cancelled
// extract leaves nothing at the target.
func TestExtractIsAllOrNothing(t *testing.T) {
	in := openInstance(t, t.TempDir())
	v1 := bundle(t, in, "app", map[string]string{"runtime.yaml": "name: app\n", "a/b.txt": "one"}, nil, nil)
	v2 := bundle(t, in, "app", map[string]string{"runtime.yaml": "name: app\n", "a/b.txt": "two"}, nil, nil)

	// A partial tree without the marker: neither kept nor replaced.
	partial := filepath.Join(t.TempDir(), "partial")
	os.MkdirAll(filepath.Join(partial, "a"), 0o755)
	os.WriteFile(filepath.Join(partial, "runtime.yaml"), []byte("name: app\n"), 0o644)
	for _, force := range []bool{false, true} {
		res, err := ops.Extract(ctx, in, "self", "app", v1.ID, partial, force, nil)
		if ops.KindOf(err) != ops.KindExists || (res != nil && res.Kept) {
			t.Fatalf("extract over a partial tree (force %v): %+v, %v; want it refused", force, res, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(partial, "runtime.yaml")); string(b) != "name: app\n" {
		t.Fatal("the partial tree was changed")
	}

	// A complete one is kept, refused for another version without -f, replaced with -f.
	dir := filepath.Join(t.TempDir(), "x")
	if res, err := ops.Extract(ctx, in, "self", "app", v1.ID, dir, false, nil); err != nil || res.Kept {
		t.Fatalf("first extract: %+v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ops.MarkerName)); err != nil {
		t.Fatalf("no marker: %v", err)
	}
	if res, err := ops.Extract(ctx, in, "self", "app", v1.ID, dir, false, nil); err != nil || !res.Kept {
		t.Fatalf("second extract: %+v %v, want kept", res, err)
	}
	if _, err := ops.Extract(ctx, in, "self", "app", v2.ID, dir, false, nil); ops.KindOf(err) != ops.KindExists {
		t.Fatalf("another version over an extraction without -f: %v", err)
	}
	if _, err := ops.Extract(ctx, in, "self", "app", v2.ID, dir, true, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a", "b.txt")); string(b) != "two" {
		t.Fatalf("after -f: %q", b)
	}
	// An empty directory is used.
	empty := t.TempDir()
	if _, err := ops.Extract(ctx, in, "self", "app", v1.ID, empty, false, nil); err != nil {
		t.Fatal(err)
	}
	// A cancelled extract leaves no target and no temporary sibling.
	c, cancel := context.WithCancel(ctx)
	cancel()
	gone := filepath.Join(t.TempDir(), "gone")
	if _, err := ops.Extract(c, in, "self", "app", v1.ID, gone, false, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled extract: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(gone)); len(ents) != 0 {
		t.Fatalf("a cancelled extract left %v", ents)
	}
}

// setuid, setgid and sticky bits recorded in a manifest are not applied.
func TestExtractDropsSetuidBits(t *testing.T) {
	in := openInstance(t, t.TempDir())
	v := bundle(t, in, "suid", map[string]string{"runtime.yaml": "name: suid\n", "bin/tool": "#!/bin/sh\n", "shared/f": "x"}, nil,
		map[string]os.FileMode{"bin/tool": 0o755 | os.ModeSetuid | os.ModeSetgid, "shared": 0o777 | os.ModeSticky})
	res, err := ops.Extract(ctx, in, "self", "suid", v.ID, filepath.Join(t.TempDir(), "x"), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{"bin/tool": 0o755, "shared": 0o777 | os.ModeDir} {
		fi, err := os.Stat(filepath.Join(res.Dir, p))
		if err != nil || fi.Mode() != want {
			t.Fatalf("%s: mode %v (%v), want %v", p, fi.Mode(), err, want)
		}
	}
}

// A deleted pack and a garbled chunk are found by fsck, which names the versions and files
// that use them, and by ledger verify; building the intact source again repairs the store.
func TestFsckFindsNamesAndRebuildRepairs(t *testing.T) {
	for _, damage := range []string{"delete a pack", "garble a chunk"} {
		t.Run(damage, func(t *testing.T) {
			root := t.TempDir()
			in := openInstance(t, root)
			files := map[string]string{"runtime.yaml": "name: app\n", "lib/data.bin": string(noiseBytes(300 << 10))}
			v := bundle(t, in, "app", files, nil, nil)
			if rep, err := ops.Fsck(ctx, in); err != nil || len(rep.Problems) != 0 {
				t.Fatalf("fsck of an intact store: %+v %v", rep, err)
			}
			packs, _ := filepath.Glob(filepath.Join(root, "store", "packs", "*.pack"))
			if len(packs) != 1 {
				t.Fatalf("%d packs", len(packs))
			}
			if damage == "delete a pack" {
				os.Remove(packs[0])
			} else {
				b, _ := os.ReadFile(packs[0])
				b[len(b)-1000] ^= 0xff // inside the large file's chunk, the last entry
				os.WriteFile(packs[0], b, 0o644)
			}
			in.Close()
			in = openInstance(t, root)
			rep, err := ops.Fsck(ctx, in)
			if ops.KindOf(err) != ops.KindCorrupt || rep == nil || len(rep.Problems) == 0 {
				t.Fatalf("fsck after %s: %+v %v", damage, rep, err)
			}
			if !strings.Contains(err.Error(), "self/runtime/app/version/"+v.ID) {
				t.Fatalf("fsck's error does not name the version: %v", err)
			}
			named := false
			for _, p := range rep.Problems {
				for _, u := range p.Uses {
					named = named || (u.Version == v.ID && (u.Path == "lib/data.bin" || u.Path == ""))
				}
			}
			if !named {
				t.Fatalf("no problem names lib/data.bin of %s: %+v", v.ID, rep.Problems)
			}
			vr, err := in.Ledger.Verify(ctx, in.Store)
			if err != nil || len(vr.Problems) == 0 || !strings.Contains(vr.Problems[0].Detail, v.ID) {
				t.Fatalf("ledger verify after %s: %v %v", damage, vr, err)
			}
			// The intact source, stored again, repairs what fsck found.
			bundle(t, in, "app", files, nil, nil)
			if rep, err := ops.Fsck(ctx, in); err != nil || len(rep.Problems) != 0 {
				t.Fatalf("fsck after the rebuild: %+v %v", rep, err)
			}
			if vr, err := in.Ledger.Verify(ctx, in.Store); err != nil || len(vr.Problems) != 0 {
				t.Fatalf("ledger verify after the rebuild: %v %v", vr.Problems, err)
			}
			res, err := ops.Extract(ctx, in, "self", "app", v.ID, filepath.Join(t.TempDir(), "x"), false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(res.Dir, "lib", "data.bin")); string(b) != files["lib/data.bin"] {
				t.Fatal("the repaired file differs")
			}
		})
	}
}

func noiseBytes(n int) []byte {
	b := make([]byte, n)
	x := uint64(88172645463325252)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}
