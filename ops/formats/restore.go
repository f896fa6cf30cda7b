package formats

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/swcli/swcli/ops/errs"
)

// RestoreRequest is `swcli runtime restore`: Dir is an extracted bundle.
type RestoreRequest struct {
	Dir  string
	Log  func(string) // progress lines (pip and conda run long)
	Env  []string     // extra environment for pip/conda (tests); the process's is always passed
	Warn func(string)
	// Progress hears the steps: their number first, then each as it starts and ends.
	Progress StepProgress
	// Notice, if set, is told before a first-use restore starts (activate, run): the user
	// is about to wait. What it returns, if not nil, hears the restore's steps.
	Notice func(string) StepProgress
	// runs runs runtime.yaml's commands (also when SW_RUNTIME_FORCE_RUN_COMMAND=1,
	// as Starwhale does); otherwise they are listed and skipped.
	RunCommands bool
}

// StepProgress hears a restore's steps.
type StepProgress interface {
	Total(steps int, bytes int64)
	Step(label string)
	Done(steps int, bytes int64)
}

// RestoreResult says what restore made.
type RestoreResult struct {
	Dir          string
	EnvDir       string // the usable environment
	Relocated    bool   // a bundled venv was relocated (else one was created and installed)
	Python       Python
	PythonChoice string // why this python: the build's interpreter, its version, its major.minor
	ActivateHost string
	ActivateSW   string
}

// Restore makes an extracted bundle usable: relocates its bundled venv, or creates an
// environment and installs the lock, wheels and requirements; then writes activate.host
// and activate.sw.
func Restore(ctx context.Context, req RestoreRequest) (*RestoreResult, error) {
	dir, err := filepath.Abs(req.Dir)
	if err != nil {
		return nil, err
	}
	// Restore writes only below dir, and never through a link that came with the bundle.
	os.Remove(filepath.Join(dir, RestoredName)) // a restore in progress is not a finished one
	if err := noLinks(dir, "runtime.yaml", ManifestName, RestoredName, "activate.host", "activate.sw", "venv", "conda",
		"export", "export/venv", "export/venv/bin", "export/venv/pyvenv.cfg", "export/conda", "export/conda/bin",
		"dependencies", "wheels", "files", "configs", "configs/condarc", LockName("venv"), LockName("conda"),
		LegacyLockName("venv"), LegacyLockName("conda")); err != nil {
		return nil, err
	}
	ry, _, err := loadBundleYAML(dir)
	if err != nil {
		return nil, err
	}
	bm, err := readBundleManifest(dir)
	if err != nil {
		return nil, err
	}
	// The python: the one the build locked (the manifest's), else runtime.yaml's.
	want := ry.Python
	if bm != nil && MajorMinorOf(bm.Environment.Lock.PythonVersion) != "" {
		want = MajorMinorOf(bm.Environment.Lock.PythonVersion)
	} else if bm != nil && MajorMinorOf(bm.Environment.Python) != "" && want == "" {
		want = MajorMinorOf(bm.Environment.Python)
	}
	res := &RestoreResult{Dir: dir}
	say := func(s string) {
		if req.Log != nil {
			req.Log(s)
		}
	}
	full := ""
	if bm != nil {
		full = bm.Environment.Lock.PythonVersion
		if full == "" {
			full = bm.Environment.Lock.Shell.PythonVersion // Starwhale's
		}
	}
	r := &restorer{ctx: ctx, dir: dir, ry: ry, req: req, res: res, say: say, python: want, pythonFull: full}
	pass := func() error {
		if ry.Mode == "conda" {
			return r.conda()
		}
		return r.venv()
	}
	if req.Progress != nil {
		// A dry pass counts the steps, so that the progress has its total first.
		r.dry = true
		if err := pass(); err != nil {
			return nil, err
		}
		r.dry = false
		req.Progress.Total(r.steps, 0)
		*res = RestoreResult{Dir: dir}
	}
	if err := pass(); err != nil {
		if r.made != "" {
			os.RemoveAll(r.made) // nothing half-made stays (it was not there before)
		}
		return nil, err
	}
	// Both scripts print a command for eval; every path in them is quoted (ShellQuote), so
	// that no character of a path, a space, a quote or a $, is read as shell syntax.
	act := ActivateCommand(ry.Mode, res.EnvDir)
	res.ActivateHost = filepath.Join(dir, "activate.host")
	res.ActivateSW = filepath.Join(dir, "activate.sw")
	host := "#!/bin/sh\n# Prints the command that activates this runtime: eval \"$(sh activate.host)\"\nprintf '%s\\n' " + ShellQuote(act) + "\n"
	rel, _ := filepath.Rel(dir, res.EnvDir)
	target := rel + "/bin/activate"
	verb := "."
	if ry.Mode == "conda" {
		target, verb = rel, "conda activate"
	}
	swAct := fmt.Sprintf(`if [ -n "${SW_RUNTIME_DIR:-}" ]; then %s "$SW_RUNTIME_DIR"/%s; else %s %s; fi`,
		verb, ShellQuote(target), verb, ShellQuote(filepath.Join(dir, target)))
	sw := "#!/bin/sh\n# In a container where the runtime is mounted at $SW_RUNTIME_DIR: prints the activation command.\nprintf '%s\\n' " + ShellQuote(swAct) + "\n"
	if err := WriteNoFollow(res.ActivateHost, []byte(host), 0o755); err != nil {
		return nil, err
	}
	if err := WriteNoFollow(res.ActivateSW, []byte(sw), 0o755); err != nil {
		return nil, err
	}
	if err := WriteNoFollow(filepath.Join(dir, RestoredName), []byte(res.EnvDir+"\n"), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// noLinks refuses a bundle in which any of the paths (relative to dir), or a directory on
// the way to one, is a symbolic link: restore writes there, and a link from a bundle could
// send those writes anywhere on the host.
func noLinks(dir string, paths ...string) error {
	for _, p := range paths {
		at := dir
		for _, part := range strings.Split(p, "/") {
			at = filepath.Join(at, part)
			fi, err := os.Lstat(at)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err != nil {
				return err
			}
			if fi.Mode()&os.ModeSymlink != 0 {
				rel, _ := filepath.Rel(dir, at)
				return errs.Errorf(errs.KindCorrupt, "restore only what 'swcli runtime extract' wrote, from a runtime you trust",
					"%s: %s is a symbolic link; restore writes there and does not follow links", dir, rel)
			}
		}
	}
	return nil
}

// WriteNoFollow writes a file that is not a symbolic link (it fails on one).
func WriteNoFollow(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// loadBundleYAML reads a bundle's runtime.yaml without checking dependency paths (in a
// bundle they live under dependencies/, wheels/ and files/).
func loadBundleYAML(dir string) (*RuntimeYAML, []byte, error) {
	return LoadRuntimeYAML(filepath.Join(dir, "runtime.yaml"), "")
}

// PyvenvVersionRE reads the python version of a venv from its pyvenv.cfg: the whole
// version, and its major.minor.
var PyvenvVersionRE = regexp.MustCompile(`(?m)^version(?:_info)?\s*=\s*(([0-9]+\.[0-9]+)(?:\.[0-9]+)?)`)

// relocateVenv points a venv copied from elsewhere at its new place and at an interpreter
// of the same version on this host.
func relocateVenv(ctx context.Context, venv, want string, res *RestoreResult) error {
	cfgPath := filepath.Join(venv, "pyvenv.cfg")
	cfg, err := ReadNoFollow(cfgPath)
	if err != nil {
		return err
	}
	version := want
	if m := PyvenvVersionRE.FindSubmatch(cfg); m != nil {
		version = string(m[1])
	}
	was := ""
	for _, line := range strings.Split(string(cfg), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "executable" {
			was = strings.TrimSpace(v)
		}
	}
	py, how, err := PreferPython(ctx, version, was)
	if err != nil {
		return err
	}
	res.Python, res.EnvDir, res.Relocated, res.PythonChoice = py, venv, true, how
	old := oldVenvPrefix(venv)
	if i := strings.IndexAny(venv, "\"'`$\\\n"); i >= 0 && old != "" {
		// A venv's activation scripts hold their path inside double quotes (sh, csh, fish):
		// written there, this character would end the quote, and what follows would run.
		return errs.Errorf(errs.KindUsage, "extract the runtime to a path without quotes, $, backslashes or newlines (--target-dir)",
			"%s: the path holds %q, which the venv's activation scripts cannot carry", venv, venv[i])
	}

	// pyvenv.cfg: home, executable and command name the old interpreter and place.
	var out []string
	for _, line := range strings.Split(string(cfg), "\n") {
		k, _, _ := strings.Cut(line, "=")
		switch strings.TrimSpace(k) {
		case "home":
			line = "home = " + filepath.Dir(py.Path)
		case "executable":
			line = "executable = " + py.Path
		case "command":
			line = fmt.Sprintf("command = %s -m venv %s", py.Path, venv)
		case "version", "version_info":
			// The interpreter's own: pyvenv.cfg must not say one version and run another.
			line = strings.TrimSpace(k) + " = " + py.Version
		}
		out = append(out, line)
	}
	if err := WriteNoFollow(cfgPath, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		return err
	}
	bin := filepath.Join(venv, "bin")
	ents, err := os.ReadDir(bin)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(bin, e.Name())
		if interpreterNameRE.MatchString(e.Name()) {
			// The interpreter is the host's, always: whatever the bundle has under its name
			// (a link to the old host's python, a relative link to a script of the bundle,
			// a file) is replaced, so that restore and run never start bundle code as
			// "python".
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			if err := os.Symlink(py.Path, p); err != nil {
				return err
			}
			continue
		}
		if e.Type()&os.ModeSymlink != 0 {
			continue
		}
		if !e.Type().IsRegular() || old == "" {
			continue
		}
		if err := rewriteScript(p, old, venv, strings.HasPrefix(e.Name(), "activate") || strings.HasPrefix(e.Name(), "Activate")); err != nil {
			return fmt.Errorf("relocate %s: %w", p, err)
		}
	}
	return nil
}

// interpreterNameRE matches the names of a venv's interpreter in bin/: python, python3,
// python3.11.
var interpreterNameRE = regexp.MustCompile(`^python[0-9.]*$`)

// oldVenvPrefix reads the place a venv was made in from its bin/activate.
func oldVenvPrefix(venv string) string {
	f, err := os.OpenFile(filepath.Join(venv, "bin", "activate"), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return ""
	}
	defer f.Close()
	re := regexp.MustCompile(`^\s*VIRTUAL_ENV=["']?([^"']+)["']?\s*$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			return m[1]
		}
	}
	return ""
}

// rewriteScript replaces the old venv path: everywhere in activation scripts, and in the
// shebang line of other scripts.
func rewriteScript(p, old, new string, whole bool) error {
	b, err := ReadNoFollow(p)
	if err != nil {
		return err
	}
	var nb []byte
	if whole {
		nb = bytes.ReplaceAll(b, []byte(old), []byte(new))
	} else {
		if !bytes.HasPrefix(b, []byte("#!")) {
			return nil
		}
		first, rest, _ := bytes.Cut(b, []byte("\n"))
		if !bytes.Contains(first, []byte(old)) {
			return nil
		}
		nb = append(append(bytes.ReplaceAll(first, []byte(old), []byte(new)), '\n'), rest...)
	}
	if bytes.Equal(nb, b) {
		return nil
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	return WriteNoFollow(p, nb, fi.Mode().Perm())
}

// pipIndexArgs are pip's index options: SW_PYPI_* variables win over configs.pip.
func pipIndexArgs(ry *RuntimeYAML) []string {
	var args []string
	index := ry.Pip.IndexURL
	if v := os.Getenv("SW_PYPI_INDEX_URL"); v != "" {
		index = v
	}
	if index != "" {
		args = append(args, "--index-url", index)
	}
	extra := ry.Pip.ExtraIndexURL
	if v := os.Getenv("SW_PYPI_EXTRA_INDEX_URL"); v != "" {
		extra = strings.Fields(v)
	}
	for _, u := range extra {
		args = append(args, "--extra-index-url", u)
	}
	trusted := ry.Pip.TrustedHost
	if v := os.Getenv("SW_PYPI_TRUSTED_HOST"); v != "" {
		trusted = strings.Fields(v)
	}
	for _, h := range trusted {
		args = append(args, "--trusted-host", h)
	}
	return args
}

// ReadNoFollow reads a file that is not a symbolic link.
func ReadNoFollow(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
