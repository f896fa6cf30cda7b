package ops

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Work temporaries: private directories in an instance's root (ROOT/KIND-*.tmp, mode 0700)
// that a command fills and removes. The command holds an flock on the file held inside for
// as long as it lives, so a directory whose lock nobody holds was left by a process that is
// gone (a kill -9, a power cut): the next command that opens the root, or gc, removes it.

// workTempKinds are the temporaries a root may hold.
var workTempKinds = []string{"import"}

// heldName is the lock file inside a work temporary.
const heldName = ".held"

// staleUnheld is how old a work temporary without its lock file must be before it is
// taken for a leftover (its maker may be between mkdir and lock).
const staleUnheld = time.Minute

// WorkTemp is one work temporary.
type WorkTemp struct {
	Dir  string
	held *os.File
}

// NewWorkTemp makes a work temporary of kind in root, held by this process.
func NewWorkTemp(root, kind string) (*WorkTemp, error) {
	dir, err := os.MkdirTemp(root, kind+"-*.tmp")
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, heldName), os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.RemoveAll(dir)
		return nil, err
	}
	return &WorkTemp{Dir: dir, held: f}, nil
}

// Remove removes the temporary and everything in it.
func (w *WorkTemp) Remove() {
	os.RemoveAll(w.Dir)
	w.held.Close()
}

// SweepWorkTemps removes the work temporaries of root that no living process holds, and
// returns how many it removed. Errors are left for the next sweep (a read-only or full
// disk must not stop a command that only reads).
func SweepWorkTemps(root string) int {
	removed := 0
	for _, kind := range workTempKinds {
		matches, _ := filepath.Glob(filepath.Join(root, kind+"-*.tmp"))
		for _, m := range matches {
			if fi, err := os.Lstat(m); err != nil || !fi.IsDir() {
				continue
			}
			if !unheld(m) {
				continue
			}
			if os.RemoveAll(m) == nil {
				removed++
			}
		}
	}
	return removed
}

// unheld reports whether the work temporary dir is held by no process.
func unheld(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, heldName), os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		fi, err := os.Lstat(dir)
		return err == nil && time.Since(fi.ModTime()) > staleUnheld
	}
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false
	}
	return true // the lock goes with f
}
