// Package treecmp compares two directory trees the way a user would: paths, kinds,
// permission bits, file contents and link targets (mtimes and owners aside). Tests and
// benchmarks use it to show that what went into a store comes back out.
package treecmp

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Diff returns a description of the first differences between trees a and b, or "".
func Diff(a, b string) string {
	ea, erra := list(a)
	eb, errb := list(b)
	if erra != nil || errb != nil {
		return fmt.Sprintf("list: %v %v", erra, errb)
	}
	var out []string
	for p, x := range ea {
		y, ok := eb[p]
		switch {
		case !ok:
			out = append(out, "only in first: "+p)
		case x.mode != y.mode:
			out = append(out, fmt.Sprintf("%s: mode %v vs %v", p, x.mode, y.mode))
		case x.target != y.target:
			out = append(out, fmt.Sprintf("%s: link %q vs %q", p, x.target, y.target))
		case x.mode.IsRegular() && !sameFile(filepath.Join(a, p), filepath.Join(b, p)):
			out = append(out, p+": contents differ")
		}
		if len(out) > 20 {
			break
		}
	}
	for p := range eb {
		if _, ok := ea[p]; !ok {
			out = append(out, "only in second: "+p)
		}
		if len(out) > 20 {
			break
		}
	}
	return strings.Join(out, "\n")
}

type info struct {
	mode   fs.FileMode
	target string
}

func list(root string) (map[string]info, error) {
	m := map[string]info{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil // the roots themselves may differ
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var target string
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ = os.Readlink(p)
		}
		m[rel] = info{mode: fi.Mode(), target: target}
		return nil
	})
	return m, err
}

func sameFile(a, b string) bool {
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
