// Package corpus gives tests and benchmarks the realistic runtime workdirs that
// shared/corpus/make-corpus.sh builds, made once per process in a temporary directory.
package corpus

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

var (
	once sync.Once
	dir  string
	err  error
)

// Script finds make-corpus.sh: $SWCLI_CORPUS_SCRIPT, or shared/corpus beside the
// repository (the layout of a checkout and of CI).
func Script() (string, error) {
	if p := os.Getenv("SWCLI_CORPUS_SCRIPT"); p != "" {
		return p, nil
	}
	wd, _ := os.Getwd()
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "..", "shared", "corpus", "make-corpus.sh")
		if _, err := os.Stat(p); err == nil {
			return filepath.Clean(p), nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("make-corpus.sh not found: set SWCLI_CORPUS_SCRIPT")
		}
	}
}

// Dir returns a directory holding small, ml-v1 and ml-v2, building them on first use
// (about a minute) unless $SWCLI_CORPUS names a directory that has them already.
func Dir() (string, error) {
	once.Do(func() {
		if d := os.Getenv("SWCLI_CORPUS"); d != "" {
			if _, err = os.Stat(filepath.Join(d, "ml-v2")); err == nil {
				dir = d
				return
			}
		}
		var script string
		if script, err = Script(); err != nil {
			return
		}
		if dir, err = os.MkdirTemp("", "swcli-corpus-"); err != nil {
			return
		}
		// The script's `sort | head` pipeline runs under pipefail, and sort, killed by
		// SIGPIPE when head has had its lines first, fails the run now and then (exit 141).
		// That is a race, not a broken corpus: try again.
		for try := 0; try < 3; try++ {
			out, cerr := exec.Command("bash", script, dir, "all").CombinedOutput()
			if cerr == nil {
				err = nil
				return
			}
			err = fmt.Errorf("make-corpus.sh: %v\n%s", cerr, out)
			var ee *exec.ExitError
			if !errors.As(cerr, &ee) || ee.ExitCode() != 141 {
				return
			}
		}
	})
	return dir, err
}
