package cas

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Files read and written by ingest, materialise and the walk are used through their
// descriptors as the kernel gives them. os.OpenFile on Linux makes a regular file
// non-blocking, tries to register it with the poller (which refuses regular files) and
// makes it blocking again: five system calls beside the open, more than reading a small
// file takes, and ~11k files a tree.

// openRaw opens path (O_CLOEXEC added) and returns its descriptor.
func openRaw(path string, flag int, perm uint32) (int, error) {
	var fd int
	err := ignoringEINTR(func() error {
		var err error
		fd, err = unix.Open(path, flag|unix.O_CLOEXEC, perm)
		return err
	})
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// rawFile reads a file by its descriptor: an io.Reader and io.Seeker.
type rawFile int

func (f rawFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(int(f), p)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// readSized reads a file said to hold size bytes into buf (len(buf) > size) and returns
// how many it holds: size, or another count if it changed. A read that stops exactly at
// size is taken as the end, without a second read to hear it: for a file that grows at
// that moment a second read would only move the moment (one read call per small file
// instead of two, 11k fewer for ml-v1).
func (f rawFile) readSized(buf []byte, size int) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err == io.EOF || (err == nil && n == size) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (f rawFile) Seek(off int64, whence int) (int64, error) {
	return unix.Seek(int(f), off, whence)
}

func (f rawFile) Close() error { return unix.Close(int(f)) }

// writeAll writes b to fd, however many writes it takes.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b = b[n:]
	}
	return nil
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
