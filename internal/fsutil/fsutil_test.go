package fsutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

func TestProcessGone(t *testing.T) {
	if ProcessGone(os.Getpid()) {
		t.Fatal("this process is gone")
	}
	if ProcessGone(0) || ProcessGone(-1) {
		t.Fatal("pids 0 and -1 are not processes that are gone")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("needs true(1)")
	}
	if !ProcessGone(cmd.Process.Pid) {
		t.Fatalf("pid %d of a process that ended and was reaped is not gone", cmd.Process.Pid)
	}
}

func TestNoSpaceIsENOSPC(t *testing.T) {
	var err error = &ErrNoSpace{Dir: "/x", Free: 3}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatal("ErrNoSpace is not ENOSPC")
	}
	if n, err := Free(t.TempDir()); err != nil || n <= 0 {
		t.Fatalf("free space of a temporary directory: %d %v", n, err)
	}
	if err := CheckFree(t.TempDir()); err != nil {
		t.Skipf("the temporary directory's disk is nearly full: %v", err)
	}
}

func TestSyncDir(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o644)
	if err := SyncDir(d); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(filepath.Join(d, "missing")); err == nil {
		t.Fatal("SyncDir of a missing directory worked")
	}
}

// WriteFileAtomic replaces a file whole, with the mode asked, and leaves no temporary.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "new" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%q %v", b, fi.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left %d files", len(ents))
	}
	if err := WriteFileAtomic(filepath.Join(dir, "no", "such"), nil, 0o600); err == nil {
		t.Fatal("a file in a missing directory was written")
	}
}

func TestCreateSynced(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := CreateSynced(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateSynced(p, []byte("two"), 0o600); err == nil {
		t.Fatal("CreateSynced replaced a file that exists")
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Fatalf("the file holds %q", b)
	}
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := CreateSynced(link, []byte("x"), 0o600); err == nil {
		t.Fatal("CreateSynced wrote through a link")
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Fatalf("a file was made through the link: %v", err)
	}
}
