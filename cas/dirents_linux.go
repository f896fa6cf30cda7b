//go:build linux && (amd64 || arm64)

package cas

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// eachEntry reads the directory open as fd (under, ending in a slash, names it in errors)
// with getdents into buf and, for each entry but "." and "..", lstats it into st and calls
// fn with its name. The name is where getdents put it, NUL-terminated, which is what
// fstatat takes: no string is made of it (one per name from ParseDirent, another for the
// system call, ~22k for ml-v1, most of a rebuild's garbage). It is valid only during the
// call: buf is read into again.
func eachEntry(fd int, under string, buf *[]byte, st *unix.Stat_t, fn func(name string) error) error {
	if len(*buf) == 0 {
		*buf = make([]byte, 32<<10)
	}
	for {
		var n int
		err := ignoringEINTR(func() error {
			var err error
			n, err = unix.Getdents(fd, *buf)
			return err
		})
		if err != nil {
			return fmt.Errorf("walk %s: %w", dirName(under), err)
		}
		if n <= 0 {
			return nil
		}
		for b := (*buf)[:n]; len(b) > 0; {
			// struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16, d_type u8, d_name.
			if len(b) < direntName+1 {
				return fmt.Errorf("walk %s: a directory entry cut short", dirName(under))
			}
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen <= direntName || reclen > len(b) {
				return fmt.Errorf("walk %s: a directory entry of %d bytes", dirName(under), reclen)
			}
			z := b[direntName:reclen]
			b = b[reclen:]
			end := 0
			for end < len(z) && z[end] != 0 {
				end++
			}
			if end == len(z) || end == 0 {
				return fmt.Errorf("walk %s: a directory entry without a name", dirName(under))
			}
			if z[0] == '.' && (end == 1 || (end == 2 && z[1] == '.')) {
				continue
			}
			name := unsafe.String(&z[0], end)
			if err := ignoringEINTR(func() error { return fstatatZ(fd, &z[0], st) }); err != nil {
				return fmt.Errorf("stat %s%s: %w", under, name, err)
			}
			if err := fn(name); err != nil {
				return err
			}
		}
	}
}

// direntName is where a linux_dirent64's name begins.
const direntName = 19

// fstatatZ lstats the NUL-terminated name at p in the directory open as fd.
func fstatatZ(fd int, p *byte, st *unix.Stat_t) error {
	_, _, errno := unix.Syscall6(sysFstatat, uintptr(fd), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
