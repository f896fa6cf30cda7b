package ops

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Python is an interpreter found on the host.
type Python struct {
	Path    string // as found on PATH
	Version string // full, e.g. 3.11.7
}

// MajorMinor is e.g. "3.11".
func (p Python) MajorMinor() string {
	if mm := majorMinor(p.Version); mm != "" {
		return mm
	}
	return p.Version
}

var pythonNameRE = regexp.MustCompile(`^python3(\.[0-9]+)?$`)

// FindPythons lists the python3 interpreters on PATH, one per real file, in PATH order.
func FindPythons(ctx context.Context) []Python {
	var out []Python
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
			// sys.executable sees through shims (pyenv) to the real interpreter.
			out2, err := exec.CommandContext(ctx, p, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)").Output()
			if err != nil {
				continue
			}
			lines := strings.Split(strings.TrimSpace(string(out2)), "\n")
			if len(lines) != 2 || seen[lines[1]] {
				continue
			}
			seen[lines[1]] = true
			out = append(out, Python{Path: lines[1], Version: lines[0]})
		}
	}
	return out
}

// FindPython returns an interpreter of version want (major.minor; "" for python3 on PATH),
// or an error listing what the host has.
func FindPython(ctx context.Context, want string) (Python, error) {
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
	return Python{}, Errorf(KindEnv, "install python"+want+" or pass --python with one of the versions found",
		"no python %s on this host; found: %s", want, list)
}

// run runs a command, returning a one-line error with the tail of its output on failure.
func run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := strings.TrimSpace(string(out))
		if lines := strings.Split(tail, "\n"); len(lines) > 0 {
			tail = lines[len(lines)-1]
		}
		return out, fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, tail)
	}
	return out, nil
}

// lookConda finds conda, or says how to get it.
func lookConda() (string, error) {
	p, err := exec.LookPath("conda")
	if err != nil {
		return "", Errorf(KindEnv, "install Miniconda (or put conda on PATH), or use -m venv", "conda not found on PATH")
	}
	return p, nil
}
