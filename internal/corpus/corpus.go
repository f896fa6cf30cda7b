// Package corpus gives tests and benchmarks the realistic runtime workdirs that
// shared/corpus/make-corpus.sh builds, made once per machine and version of the script.
package corpus

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/swcli/swcli/internal/engines"
	"github.com/swcli/swcli/internal/flock"
	"github.com/zeebo/blake3"
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

// Dir returns a directory holding small, ml-v1 and ml-v2: $SWCLI_CORPUS if it names a
// directory that has them, else one under the temporary directory, keyed by the script's
// content and built there on first use (about a minute) by whichever test process gets
// there first, the others waiting. It stays for the next run: test processes used to
// build a corpus each in a directory of its own and leave 861 MB behind every time.
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
		dir, err = cached(script)
	})
	return dir, err
}

// complete marks a corpus that was built to the end.
const complete = ".complete"

func cached(script string) (string, error) {
	body, err := os.ReadFile(script)
	if err != nil {
		return "", err
	}
	sum := blake3.Sum256(body)
	d := filepath.Join(os.TempDir(), "swcli-test-corpus", hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(d, complete)); err == nil {
		return d, nil
	}
	if err := os.MkdirAll(filepath.Dir(d), 0o755); err != nil {
		return "", err
	}
	lock, err := flock.Acquire(context.Background(), d+".lock", flock.Options{})
	if err != nil {
		return "", err
	}
	defer lock.Release()
	if _, err := os.Stat(filepath.Join(d, complete)); err == nil {
		return d, nil // another process built it while this one waited
	}
	// What an interrupted build left (its reaper may still be removing it).
	for try := 0; ; try++ {
		err := os.RemoveAll(d)
		if err == nil {
			break
		}
		if try == 5 {
			return "", err
		}
		time.Sleep(time.Second)
	}
	if err := build(script, d); err != nil {
		return "", err
	}
	return d, os.WriteFile(filepath.Join(d, complete), nil, 0o644)
}

// build runs make-corpus.sh. Its `sort | head` pipeline runs under pipefail, and sort,
// killed by SIGPIPE when head has had its lines first, fails the run now and then (exit
// 141). That is a race, not a broken corpus: try again.
func build(script, d string) error {
	var err error
	for try := 0; try < 3; try++ {
		// In a process group of its own, killed with this process; the reaper kills what
		// the script started (pip, compileall) and removes the half-built corpus.
		cmd := exec.Command("bash", script, d, "all")
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		cmd.SysProcAttr = engines.Detach(nil)
		cerr := cmd.Start()
		if cerr == nil {
			// (It leaves a corpus that was finished: the marker is written before this
			// process can end.)
			if err := engines.ReapUnless(cmd.Process.Pid, d, filepath.Join(d, complete)); err != nil {
				cmd.Process.Kill()
			}
			cerr = cmd.Wait()
		}
		out := buf.Bytes()
		if cerr == nil {
			return nil
		}
		err = fmt.Errorf("make-corpus.sh: %v\n%s", cerr, out)
		var ee *exec.ExitError
		if !errors.As(cerr, &ee) || ee.ExitCode() != 141 {
			return err
		}
	}
	return err
}
