// Package fsutil holds the file-system checks the stores share.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// MinFree is the space a store wants free before it opens a database for writing: pebble
// writes a new MANIFEST and WAL when it opens, and fails hard (not with an error) when it
// cannot.
const MinFree = 2 << 20

// ErrNoSpace is what a store returns instead of opening for writing on a full disk.
type ErrNoSpace struct {
	Dir  string
	Free int64
}

func (e *ErrNoSpace) Error() string {
	return fmt.Sprintf("no space left on the device of %s (%d bytes free)", e.Dir, e.Free)
}

// Unwrap makes errors.Is(err, syscall.ENOSPC) hold.
func (e *ErrNoSpace) Unwrap() error { return syscall.ENOSPC }

// Free returns the bytes an unprivileged writer may still use on dir's file system.
func Free(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// CheckFree returns an *ErrNoSpace when dir's file system has less than MinFree free.
// A file system that cannot say is taken to have room.
func CheckFree(dir string) error {
	n, err := Free(dir)
	if err != nil || n >= MinFree {
		return nil
	}
	return &ErrNoSpace{Dir: dir, Free: n}
}

// ProcessGone reports whether no process has the given pid (it was killed, or ended): what
// makes a temporary file named after its process safe to remove.
func ProcessGone(pid int) bool {
	return pid > 0 && pid != os.Getpid() && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// SyncDir makes a directory's entries (a rename, a new file) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// CreateSynced writes b to a new file at path (O_EXCL|O_NOFOLLOW: never one that exists,
// never through a link), synced. A file it could not write whole is removed.
func CreateSynced(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// WriteFileAtomic replaces path with b: written to a new file of a random name beside it
// (O_EXCL: nothing planted there is written through), synced, given perm, then renamed
// over path. Readers see the old content or the new, never a part.
func WriteFileAtomic(path string, b []byte, perm os.FileMode) error {
	t, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(t.Name())
	if _, err := t.Write(b); err != nil {
		t.Close()
		return err
	}
	if err := t.Chmod(perm); err != nil {
		t.Close()
		return err
	}
	if err := t.Sync(); err != nil {
		t.Close()
		return err
	}
	if err := t.Close(); err != nil {
		return err
	}
	return os.Rename(t.Name(), path)
}

// OpenFunc opens a file as os.OpenFile does; (*os.Root).OpenFile is one too, confined to
// its root.
type OpenFunc func(name string, flag int, perm os.FileMode) (*os.File, error)

// CopyRegular copies the regular file src (opened with open) to dest (created with create,
// flag os.O_EXCL for a new file or os.O_TRUNC to replace one, with src's permission bits),
// following a link at neither. what names src in the error when it is not a regular file.
func CopyRegular(open OpenFunc, src string, create OpenFunc, dest string, flag int, what string) error {
	in, err := open(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", what)
	}
	out, err := create(dest, os.O_WRONLY|os.O_CREATE|flag|syscall.O_NOFOLLOW, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
