//go:build !linux || !(amd64 || arm64)

package cas

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// eachEntry reads the directory open as fd (under, ending in a slash, names it in errors)
// and, for each entry but "." and "..", lstats it into st and calls fn with its name.
func eachEntry(fd int, under string, buf *[]byte, st *unix.Stat_t, fn func(name string) error) error {
	names, err := readNames(fd, buf)
	if err != nil {
		return fmt.Errorf("walk %s: %w", dirName(under), err)
	}
	for _, name := range names {
		if err := statAt(fd, name, st); err != nil {
			return fmt.Errorf("stat %s%s: %w", under, name, err)
		}
		if err := fn(name); err != nil {
			return err
		}
	}
	return nil
}
