package formats

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The lock cache's key follows the venv's packages: the same for an unchanged venv,
// another once a package is added or removed or editable installs are asked for, and none
// at all while the venv has just changed (a change in the same tick of the filesystem's
// clock would leave every time and size as they were).
func TestLockKeyFollowsThePackages(t *testing.T) {
	env := t.TempDir()
	site := filepath.Join(env, "lib", "python3.11", "site-packages")
	write := func(rel, data string) {
		t.Helper()
		writeFile(t, filepath.Join(site, rel), data)
	}
	// stamp sets every time in the venv to at, directories after what they hold: an hour
	// ago (a venv left alone), or a minute ahead (as if changed as the key is made: a
	// stamp written just now may fall in the clock's last tick or not).
	old, recent := time.Now().Add(-time.Hour), time.Now().Add(time.Minute)
	stamp := func(at time.Time) {
		t.Helper()
		var paths []string
		filepath.WalkDir(env, func(p string, _ os.DirEntry, err error) error {
			paths = append(paths, p)
			return err
		})
		for i := len(paths) - 1; i >= 0; i-- {
			if err := os.Chtimes(paths[i], at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(env, "pyvenv.cfg"), []byte("home = /usr/bin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write("numpy-1.24.2.dist-info/METADATA", "Name: numpy\nVersion: 1.24.2\n")
	write("six-1.16.0.dist-info/METADATA", "Name: six\nVersion: 1.16.0\n")
	write("numpy/__init__.py", "")

	// settle returns the key of the venv as if just changed, then as if left alone since.
	settle := func(what string) string {
		t.Helper()
		stamp(recent)
		if k := LockKey(env, false); k != "" {
			t.Fatalf("%s, just now: key %q", what, k)
		}
		stamp(old)
		k := LockKey(env, false)
		if k == "" || LockKey(env, false) != k {
			t.Fatalf("%s, left alone: keys %q, then %q", what, k, LockKey(env, false))
		}
		return k
	}
	k1 := settle("a new venv")
	if LockKey(env, true) == k1 {
		t.Fatal("the key does not say whether editable installs are locked")
	}
	write("pandas-1.5.3.dist-info/METADATA", "Name: pandas\nVersion: 1.5.3\n")
	k2 := settle("after an install")
	if k2 == k1 {
		t.Fatalf("after an install: key %q as before", k2)
	}
	if err := os.RemoveAll(filepath.Join(site, "six-1.16.0.dist-info")); err != nil {
		t.Fatal(err)
	}
	k3 := settle("after a removal")
	if k3 == k2 || k3 == k1 {
		t.Fatalf("after a removal: key %q (before %q, %q)", k3, k2, k1)
	}
	// A package's own files are not part of the key: only its metadata says what pip
	// freeze would say.
	write("numpy/extra.py", "x = 1\n")
	if k := settle("after a change in a package's code"); k != k3 {
		t.Fatalf("a change inside a package's code changed the key: %q, then %q", k3, k)
	}
}
