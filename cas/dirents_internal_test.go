package cas

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// eachEntry gives every entry of a directory, whatever getdents cuts it into, each with its
// own lstat, and names nothing twice.
func TestEachEntryListsAndStatsEveryName(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 1500 { // ~100 KiB of entries: several getdents calls into 32 KiB
		name := strings.Repeat("n", 40) + string(rune('a'+i%26)) + filepath.Base(t.Name())[:4] + "é" + string(rune('0'+i%10)) + "_" + itoa(i)
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, i), 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	for _, name := range []string{".hidden", "..x", "sub"} {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "link")
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var buf []byte
	var st unix.Stat_t
	var got []string
	err = eachEntry(fd, dir+"/", &buf, &st, func(name string) error {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if int64(st.Size) != fi.Size() || uint32(st.Mode)&unix.S_IFMT != unixType(fi) {
			t.Errorf("%s: stat gave size %d mode %o, lstat %d %v", name, st.Size, st.Mode, fi.Size(), fi.Mode())
		}
		got = append(got, strings.Clone(name))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d names, want %d (first %q)", len(got), len(want), got[:min(3, len(got))])
	}

	// Names gone between the listing and their stat (all but the first, removed at the
	// first): the error names the path.
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		t.Fatal(err)
	}
	first := true
	err = eachEntry(fd, dir+"/", &buf, &st, func(name string) error {
		if first {
			first = false
			for _, n := range want {
				if n != name {
					os.RemoveAll(filepath.Join(dir, n))
				}
			}
		}
		return nil
	})
	if err == nil || !strings.HasPrefix(err.Error(), "stat "+dir+"/") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("entries removed while the directory was read: %v, want a stat error naming the path", err)
	}
}

func unixType(fi os.FileInfo) uint32 {
	switch {
	case fi.IsDir():
		return unix.S_IFDIR
	case fi.Mode()&os.ModeSymlink != 0:
		return unix.S_IFLNK
	default:
		return unix.S_IFREG
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
