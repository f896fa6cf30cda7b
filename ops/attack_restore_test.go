package ops_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/formats"
)

// Attacks on restore and activate (issue 25): restore never follows a link of the bundle
// out (not even to make a directory), never starts bundle code without consent, and the
// activation commands it prints and writes quote every path.

// hostPythonVersion is the major.minor of python3 on PATH (what a relocated venv finds).
func hostPythonVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])").Output()
	if err != nil {
		t.Skip("needs python3")
	}
	return strings.TrimSpace(string(out))
}

func bundledVenv(t *testing.T, yml string, extra map[string]string) map[string]string {
	v := hostPythonVersion(t)
	files := map[string]string{
		"runtime.yaml":             yml,
		"export/venv/pyvenv.cfg":   "home = /usr/bin\nversion = " + v + "\n",
		"export/venv/bin/activate": "VIRTUAL_ENV=\"/old/venv\"\n",
	}
	for k, c := range extra {
		files[k] = c
	}
	return files
}

func TestRestoreFilesStayInside(t *testing.T) {
	in := openInstance(t, t.TempDir())
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("host secret\n"), 0o600)
	yml := func(src, dest string) string {
		return "name: evil\nmode: venv\ndependencies:\n  - files:\n      - src: " + src + "\n        dest: " + dest + "\n"
	}
	cases := map[string]struct {
		files map[string]string
		links map[string]string
	}{
		// dest through a link of the bundled venv: MkdirAll made etc/sub outside first.
		"dest through a venv link": {
			bundledVenv(t, yml("a.txt", "etc/sub/a.txt"), map[string]string{"files/a.txt": "mine\n"}),
			map[string]string{"export/venv/etc": outside}},
		// a directory placed through a link of the bundled venv.
		"directory through a venv link": {
			bundledVenv(t, yml("d", "etc/sub"), map[string]string{"files/d/a.txt": "mine\n", "files/d/e/b.txt": "mine\n"}),
			map[string]string{"export/venv/etc": outside}},
		// src through a link of the bundle: a host file was copied into the environment.
		"src through a bundle link": {
			bundledVenv(t, yml("lnk/secret", "got"), nil),
			map[string]string{"files/lnk": outside}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			v := bundle(t, in, "evil"+strings.ReplaceAll(name, " ", ""), c.files, c.links, nil)
			res, err := ops.Extract(ctx, in, "self", v.Runtime, v.ID, filepath.Join(t.TempDir(), "x"), false, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = formats.Restore(ctx, formats.RestoreRequest{Dir: res.Dir})
			if err == nil || ops.KindOf(err) != ops.KindCorrupt || strings.Contains(err.Error(), "\n") {
				t.Fatalf("restore: %v (kind %v), want one line of kind corrupt", err, ops.KindOf(err))
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 1 {
				t.Fatalf("restore wrote outside: %v", ents)
			}
			if b, err := os.ReadFile(filepath.Join(res.Dir, "export", "venv", "got")); err == nil {
				t.Fatalf("a host file was copied into the environment: %q", b)
			}
		})
	}
}

// A venv's bin/python that is a relative link to a script of the bundle: after relocation
// it named the script still, and restore's pip ran it. The interpreter is always the host's.
func TestRestoreRunsNoBundleInterpreter(t *testing.T) {
	in := openInstance(t, t.TempDir())
	marker := filepath.Join(t.TempDir(), "ran")
	script := "#!/bin/sh\necho pwned > " + marker + "\n"
	yml := "name: evil\nmode: venv\ndependencies:\n  - wheels:\n      - dummy-1.0-py3-none-any.whl\n"
	for _, name := range []string{"python", "python3"} {
		t.Run(name, func(t *testing.T) {
			files := bundledVenv(t, yml, map[string]string{"export/venv/evil.sh": script, "wheels/dummy-1.0-py3-none-any.whl": "x"})
			v := bundle(t, in, "evil"+name, files, map[string]string{"export/venv/bin/" + name: "../evil.sh"},
				map[string]os.FileMode{"export/venv/evil.sh": 0o755})
			res, err := ops.Extract(ctx, in, "self", v.Runtime, v.ID, filepath.Join(t.TempDir(), "x"), false, nil)
			if err != nil {
				t.Fatal(err)
			}
			formats.Restore(ctx, formats.RestoreRequest{Dir: res.Dir}) // the wheel is no wheel: pip fails
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("restore ran a script of the bundle as the interpreter")
			}
			target, err := os.Readlink(filepath.Join(res.Dir, "export", "venv", "bin", name))
			if err != nil || !filepath.IsAbs(target) || strings.HasPrefix(target, res.Dir) {
				t.Fatalf("bin/%s -> %q (%v), want the host's interpreter", name, target, err)
			}
		})
	}
}

// The activation command of a runtime under a path with a space activates that path; one
// under a path with quotes and $(…) is refused or activates it: sh runs no injected command.
func TestActivateQuotesPaths(t *testing.T) {
	in := openInstance(t, t.TempDir())
	marker := filepath.Join(t.TempDir(), "injected")
	v := bundle(t, in, "quoted", bundledVenv(t, "name: quoted\nmode: venv\n", nil), nil, nil)
	for _, dir := range []string{"a b", `a b'$(touch ` + marker + `)'"`, `x$(touch ` + marker + `)`} {
		parent := filepath.Join(t.TempDir(), dir)
		res, err := ops.Extract(ctx, in, "self", v.Runtime, v.ID, filepath.Join(parent, "rt"), false, nil)
		if err != nil {
			t.Fatal(err)
		}
		rr, err := formats.Restore(ctx, formats.RestoreRequest{Dir: res.Dir})
		if err != nil && dir == "a b" {
			t.Fatal(err)
		}
		if err != nil {
			if ops.KindOf(err) != ops.KindUsage || strings.Contains(err.Error(), "\n") {
				t.Fatalf("restore under %q: %v, want one line of kind usage", dir, err)
			}
			continue
		}
		for _, script := range []string{rr.ActivateHost, rr.ActivateSW} {
			// What the script prints is eval'ed; the bundled activate script here only sets
			// VIRTUAL_ENV, so the shell prints it.
			out, err := exec.Command("sh", "-c", `eval "$(sh "$1")" && printf '%s' "$VIRTUAL_ENV"`, "sh", script).CombinedOutput()
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("%s under %q ran an injected command", filepath.Base(script), dir)
			}
			if err != nil {
				t.Fatalf("eval of %s: %v\n%s", filepath.Base(script), err, out)
			}
			if want := filepath.Join(res.Dir, "export", "venv"); string(out) != want {
				t.Fatalf("%s activated %q, want %q", filepath.Base(script), out, want)
			}
		}
	}
}
