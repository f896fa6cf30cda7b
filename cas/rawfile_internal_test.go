package cas

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// readSized tells a file of the stated size from one that grew or shrank since its stat.
func TestReadSizedNoticesChange(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name       string
		held, said int
	}{{"same", 10, 10}, {"empty", 0, 0}, {"grew", 10, 5}, {"shrank", 3, 5}, {"grew from empty", 4, 0}} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, make([]byte, c.held), 0o644); err != nil {
			t.Fatal(err)
		}
		fd, err := openRaw(p, syscall.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			t.Fatal(err)
		}
		n, err := rawFile(fd).readSized(make([]byte, c.said+1), c.said)
		rawFile(fd).Close()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if want := min(c.held, c.said+1); n != want {
			t.Errorf("%s: read %d bytes of a file of %d said to be %d, want %d", c.name, n, c.held, c.said, want)
		}
		if (n == c.said) != (c.held == c.said) {
			t.Errorf("%s: a file of %d said to be %d reads as unchanged: %v", c.name, c.held, c.said, n == c.said)
		}
	}
}
