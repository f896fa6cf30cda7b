package formats

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/swcli/swcli/ops/errs"
)

// Python is an interpreter found on the host.
type Python struct {
	Path    string // as found on PATH
	Version string // full, e.g. 3.11.7
}

// MajorMinor is e.g. "3.11".
func (p Python) MajorMinor() string {
	if mm := MajorMinorOf(p.Version); mm != "" {
		return mm
	}
	return p.Version
}

var pythonNameRE = regexp.MustCompile(`^python3(\.[0-9]+)?$`)

// foundPythons remembers FindPythons' answer per PATH and per interpreter file (its path
// and modification time): asking each python for its version costs a process start (and
// through pyenv's shims, a second or more), and a command or a test binary asks often.
var foundPythons struct {
	sync.Mutex
	byExe map[string]pythonAnswer // by the interpreter's real path
}

type pythonAnswer struct {
	mtime int64
	size  int64
	out   []byte
	err   error
}

// askPython runs p for its version and sys.executable, or answers from memory when the
// file behind p has not changed.
func askPython(ctx context.Context, p, real string) ([]byte, error) {
	fi, err := os.Stat(real)
	if err != nil {
		return nil, err
	}
	foundPythons.Lock()
	a, ok := foundPythons.byExe[p+"\x00"+real]
	foundPythons.Unlock()
	if ok && a.mtime == fi.ModTime().UnixNano() && a.size == fi.Size() {
		return a.out, a.err
	}
	out, err := exec.CommandContext(ctx, p, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)").Output()
	if ctx.Err() != nil {
		return nil, ctx.Err() // not an answer of the python's
	}
	foundPythons.Lock()
	if foundPythons.byExe == nil {
		foundPythons.byExe = map[string]pythonAnswer{}
	}
	// A failure is remembered too: a pyenv shim of a version that is not installed fails,
	// slowly, every time.
	foundPythons.byExe[p+"\x00"+real] = pythonAnswer{mtime: fi.ModTime().UnixNano(), size: fi.Size(), out: out, err: err}
	foundPythons.Unlock()
	return out, err
}

// pythonCand is a python3 on PATH: the name found and the file behind it.
type pythonCand struct{ p, real string }

// pythonCandidates lists the python3 executables on PATH, in PATH order, one per real file.
func pythonCandidates() []pythonCand {
	var cands []pythonCand
	seen := map[string]bool{}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !pythonNameRE.MatchString(e.Name()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			real, err := filepath.EvalSymlinks(p)
			if err != nil || seen[real] {
				continue
			}
			seen[real] = true
			cands = append(cands, pythonCand{p, real})
		}
	}
	return cands
}

// FindPythons lists the python3 interpreters on PATH, one per real file, in PATH order.
func FindPythons(ctx context.Context) []Python {
	cands := pythonCandidates()
	// Asked all at once (each is a process start; a pyenv shim takes a good part of a
	// second), answers kept in PATH order.
	seen := map[string]bool{}
	answers := make([][]byte, len(cands))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, c := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// sys.executable sees through shims (pyenv) to the real interpreter.
			if out, err := askPython(ctx, c.p, c.real); err == nil {
				answers[i] = out
			}
		}()
	}
	wg.Wait()
	var out []Python
	for _, a := range answers {
		lines := strings.Split(strings.TrimSpace(string(a)), "\n")
		if len(lines) != 2 || seen[lines[1]] {
			continue
		}
		seen[lines[1]] = true
		out = append(out, Python{Path: lines[1], Version: lines[0]})
	}
	return out
}

// FindPython returns an interpreter of version want (major.minor; "" for python3 on PATH),
// or an error listing what the host has.
func FindPython(ctx context.Context, want string) (Python, error) {
	// The likely ones first, asked one by one: python3.X for 3.X (python3 for none), then
	// python3; only when none of them is the one wanted is every python asked (for the
	// error's list). Each asking is a process start, a good part of a second through pyenv.
	name := "python3"
	if want != "" {
		name = "python" + want
	}
	for _, pass := range []string{name, "python3"} {
		for _, c := range pythonCandidates() {
			if filepath.Base(c.p) != pass {
				continue
			}
			out, err := askPython(ctx, c.p, c.real)
			if err != nil {
				continue
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) == 2 {
				if p := (Python{Path: lines[1], Version: lines[0]}); want == "" || p.MajorMinor() == want {
					return p, nil
				}
			}
		}
	}
	found := FindPythons(ctx)
	for _, p := range found {
		if want == "" || p.MajorMinor() == want {
			return p, nil
		}
	}
	var have []string
	for _, p := range found {
		have = append(have, fmt.Sprintf("%s (%s)", p.Version, p.Path))
	}
	slices.Sort(have)
	list := "none"
	if len(have) > 0 {
		list = strings.Join(have, ", ")
	}
	return Python{}, errs.Errorf(errs.KindEnv, "install python"+want+" or pass --python with one of the versions found",
		"no python %s on this host; found: %s", want, list)
}

// PreferPython finds the interpreter for an environment built with python full (3.11.2)
// at path (if known): that very interpreter when it is still there and still that version,
// else another of the same full version, else one of the same major.minor. It says which.
func PreferPython(ctx context.Context, full, path string) (Python, string, error) {
	if path != "" {
		if out, err := askPython(ctx, path, path); err == nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) == 2 && (full == "" || lines[0] == full) {
				return Python{Path: lines[1], Version: lines[0]}, "the interpreter the build used", nil
			}
		}
	}
	// The likely one first (python3.X, asked alone: fast); every python on PATH only when it
	// is not the build's version (asking them all takes seconds through pyenv's shims).
	p, err := FindPython(ctx, MajorMinorOf(full))
	if err != nil {
		return p, "", err
	}
	if p.Version == full {
		return p, "the version the build used", nil
	}
	if strings.Count(full, ".") == 2 {
		for _, q := range FindPythons(ctx) {
			if q.Version == full {
				return q, "the version the build used", nil
			}
		}
	}
	how := "python3 on PATH"
	if full != "" {
		how = "the same major.minor"
		if full != MajorMinorOf(full) {
			how += fmt.Sprintf("; the build used %s, which this host does not have", full)
		}
	}
	return p, how, nil
}

// RunCommand runs a command, returning a one-line error with the tail of its output on failure.
func RunCommand(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, LastLine(out))
	}
	return out, nil
}

// LastLine is what a failed command said last: the last line of its output, trimmed.
func LastLine(out []byte) string {
	tail := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	return tail
}

// LookConda finds conda, or says how to get it.
func LookConda() (string, error) {
	p, err := exec.LookPath("conda")
	if err != nil {
		return "", errs.Errorf(errs.KindEnv, "install Miniconda (or put conda on PATH), or use -m venv", "conda not found on PATH")
	}
	return p, nil
}
