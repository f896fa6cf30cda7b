package cli_test

import (
	"archive/tar"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountSmall mounts a tmpfs of size bytes (root only) and unmounts it when the test ends.
func mountSmall(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("needs to mount a small tmpfs (root, CAP_SYS_ADMIN): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<16)
	for {
		if _, err := f.Write(buf); err != nil {
			return p
		}
	}
}

// On a disk that is already full, every command either works (reads) or fails with one
// line and exit code 11 (writes), in bounded time, without a panic; once space is back
// the store and ledger verify and writes work. A disk that fills during a write fails the
// same way and leaves the store consistent.
func TestFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a file system; CI runs it")
	}
	// Room for the store's fixed cost: pebble preallocates 4.4 MiB (1.1 × its memtable) for
	// a database's log once a second write reaches it, so the ledger, the index and the stat
	// cache may hold 13.2 MiB between them whatever their data; the test needs 8 MiB more.
	disk := mountSmall(t, "24m")
	p := newProcEnv(t)
	p.root = filepath.Join(disk, "root")
	for i, e := range p.env {
		if strings.HasPrefix(e, "SWCLI_ROOT=") {
			p.env[i] = "SWCLI_ROOT=" + p.root
		}
	}
	src := filepath.Join(p.dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("hello\n"), 0o644)
	tree := strings.TrimSpace(p.must("store", "put", src))
	p.must("project", "create", "team")
	filler := fill(t, disk)

	reads := [][]string{{"project", "list"}, {"runtime", "list"}, {"ledger", "log"}, {"ledger", "verify"},
		{"ledger", "export"}, {"fsck"}, {"store", "get", tree, "OUT"}}
	outs := 0
	outDir := func(args []string) []string {
		if args[len(args)-1] == "OUT" {
			outs++
			args = append(args[:len(args)-1:len(args)-1], filepath.Join(p.dir, "out", strings.Repeat("x", outs)))
		}
		return args
	}
	writes := [][]string{{"project", "create", "more"}, {"gc"}, {"runtime", "tag", "nosuch", "x"}}
	for _, args := range append(reads, writes...) {
		args = outDir(args)
		r := p.swcli(time.Minute, args...)
		if r.hung || strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
			t.Fatalf("swcli %s on a full disk: exit %d, hung %v\n%s", strings.Join(args, " "), r.code, r.hung, r.stderr)
		}
		if r.code != 0 && r.code != 11 && r.code != 3 {
			t.Fatalf("swcli %s on a full disk: exit %d, want 0 or 11\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
		if r.code != 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
			t.Fatalf("swcli %s: more than an error line and a hint:\n%s", strings.Join(args, " "), r.stderr)
		}
	}
	for _, args := range reads {
		args = outDir(args)
		if r := p.swcli(time.Minute, args...); r.code != 0 {
			t.Fatalf("read-only swcli %s on a full disk: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if r := p.swcli(time.Minute, "project", "create", "more"); r.code != 11 || !strings.Contains(r.stderr, "no space left") {
		t.Fatalf("a write on a full disk: exit %d\n%s", r.code, r.stderr)
	}

	// Space back, then a disk that fills during a write.
	os.Remove(filler)
	p.must("project", "create", "more")
	var st syscall.Statfs_t
	syscall.Statfs(disk, &st)
	big := filepath.Join(p.dir, "big")
	os.MkdirAll(big, 0o755)
	noise := make([]byte, int64(st.Bavail)*int64(st.Bsize)+(4<<20)) // more than fits
	rand.Read(noise)
	os.WriteFile(filepath.Join(big, "noise.bin"), noise, 0o644)
	if r := p.swcli(time.Minute, "store", "put", big); r.code != 11 || r.hung || strings.Contains(r.stderr, "panic") {
		t.Fatalf("a write that fills the disk: exit %d\n%s", r.code, r.stderr)
	}
	// What a failed build leaves may need recovery, which writes (a complete pack the
	// index does not know is re-indexed: here one copied from another store): reads work
	// all the same, on the disk still full and after space is freed (issue 25).
	other := filepath.Join(p.dir, "other")
	os.MkdirAll(filepath.Join(p.dir, "o"), 0o755)
	os.WriteFile(filepath.Join(p.dir, "o", "f"), noise[:1<<20], 0o644)
	p.must("--root", other, "store", "put", filepath.Join(p.dir, "o"))
	packs, _ := filepath.Glob(filepath.Join(other, "store", "packs", "*.pack"))
	if len(packs) == 0 {
		t.Fatal("the other store has no pack")
	}
	orphan, _ := os.ReadFile(packs[0])
	if err := os.WriteFile(filepath.Join(p.root, "store", "packs", "7fffffffffffff00.pack"), orphan, 0o644); err != nil {
		t.Fatal(err)
	}
	filler = fill(t, disk)
	for _, args := range reads {
		if r := p.swcli(time.Minute, outDir(args)...); r.code != 0 {
			t.Fatalf("read-only swcli %s after a write filled the disk: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	// An import on a full disk is the disk's failure (11), not the bundle's (6).
	swrt := filepath.Join(p.dir, "x.swrt")
	if r := p.swcli(time.Minute, "runtime", "export", "nosuch", "-o", swrt); r.code == 0 {
		t.Fatal("export of no runtime worked")
	}
	writeSwrt(t, swrt, noise[:8<<20])
	if r := p.swcli(time.Minute, "runtime", "import", swrt); r.code != 11 || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
		t.Fatalf("import on a full disk: exit %d, want 11\n%s", r.code, r.stderr)
	}
	if m, _ := filepath.Glob(filepath.Join(p.root, "import-*")); len(m) != 0 {
		t.Fatalf("import left %v", m)
	}
	os.Remove(filler)
	for _, args := range reads {
		if r := p.swcli(time.Minute, outDir(args)...); r.code != 0 {
			t.Fatalf("read-only swcli %s once space is back: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	p.must("ledger", "verify")
	p.must("fsck")
	p.must("project", "create", "after")
}

// writeSwrt writes a .swrt holding a runtime.yaml and one file of data.
func writeSwrt(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		body []byte
	}{{"runtime.yaml", []byte("name: full\n")}, {"files/data.bin", data}} {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg})
		tw.Write(e.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}
