package formats

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/swcli/swcli/internal/fsutil"
	"github.com/swcli/swcli/ops/errs"
)

// restorer installs an extracted bundle's dependencies the way Starwhale's restore does
// (StandaloneRuntime._install_dependencies_within_restore): with a lock, the commands
// first, then the lock, then wheels and files in runtime.yaml's order; without one (an
// imported bundle that has none), every dependency in runtime.yaml's order.
type restorer struct {
	ctx    context.Context
	dir    string
	ry     *RuntimeYAML
	req    RestoreRequest
	res    *RestoreResult
	say    func(string)
	python string // major.minor wanted ("" = python3 on PATH)
	// pythonFull is the exact version the build locked (3.11.2), preferred when the host has it.
	pythonFull string
	condaBin   string // conda's path (conda mode)
	// dry counts the steps instead of running them (a first pass, for the progress total).
	dry   bool
	steps int
	// made is the environment this restore created: a failed restore removes it, so that
	// it leaves nothing half-made behind.
	made string
	// found is the python found for a new venv (FindPython runs every python on PATH).
	found *Python
}

func (r *restorer) venv() error {
	bundled := filepath.Join(r.dir, "export", "venv")
	if _, err := os.Stat(filepath.Join(bundled, "pyvenv.cfg")); err == nil {
		if err := r.do("relocate the bundled venv", func() error {
			r.say("relocating the bundled venv to " + bundled)
			return relocateVenv(r.ctx, bundled, r.python, r.res)
		}); err != nil {
			return err
		}
		return r.install(true)
	}
	if r.found == nil { // asked once: the dry pass and the real one share it
		var py Python
		var how string
		var err error
		if r.pythonFull != "" && MajorMinorOf(r.pythonFull) == r.python {
			py, how, err = PreferPython(r.ctx, r.pythonFull, "")
		} else {
			py, err = FindPython(r.ctx, r.python)
			how = "python" + r.python
		}
		if err != nil {
			return err
		}
		r.found, r.res.PythonChoice = &py, how
	}
	py := *r.found
	venv := filepath.Join(r.dir, "venv")
	r.res.Python, r.res.EnvDir = py, venv
	if _, err := os.Stat(filepath.Join(venv, "pyvenv.cfg")); err != nil {
		if err := r.do("create the venv", func() error {
			r.made = venv
			r.say("creating venv " + venv + " with python " + py.Version)
			_, err := RunCommand(r.ctx, r.dir, r.req.Env, py.Path, "-m", "venv", venv)
			return envErr(err)
		}); err != nil {
			return err
		}
	}
	return r.install(false)
}

func (r *restorer) conda() error {
	conda, err := LookConda()
	if err != nil {
		return err
	}
	r.condaBin = conda
	if rc := filepath.Join(r.dir, "configs", "condarc"); fileExists(rc) {
		r.req.Env = append(r.req.Env, "CONDARC="+rc)
	}
	lock := findLock(r.dir, "conda")
	bundled := filepath.Join(r.dir, "export", "conda")
	if fileExists(filepath.Join(bundled, "conda-meta", "history")) || dirExists(filepath.Join(bundled, "conda-meta")) {
		r.res.EnvDir, r.res.Relocated = bundled, true
		if err := r.do("relocate the bundled conda env", func() error {
			r.say("using the bundled conda environment " + bundled)
			return relocateConda(bundled, lock)
		}); err != nil {
			return err
		}
		return r.install(true)
	}
	env := filepath.Join(r.dir, "conda")
	r.res.EnvDir = env
	if lock != "" {
		if err := r.do("conda env create", func() error {
			r.made = env
			_, err := RunCommand(r.ctx, r.dir, r.req.Env, conda, "env", "create", "--yes", "--prefix", env, "--file", lock)
			return envErr(err)
		}); err != nil {
			return err
		}
		return r.install(true)
	}
	py := r.python
	if py == "" {
		py = "3"
	}
	if err := r.do("conda create", func() error {
		r.made = env
		_, err := RunCommand(r.ctx, r.dir, r.req.Env, conda, "create", "--yes", "--quiet", "--prefix", env, "python="+py)
		return envErr(err)
	}); err != nil {
		return err
	}
	return r.install(false)
}

// install installs what the environment still needs. envMade: the environment already
// holds the lock's packages (created from the lock, or bundled whole).
func (r *restorer) install(envMade bool) error {
	lock := findLock(r.dir, r.ry.Mode)
	locked := lock != "" || envMade
	// Commands run first when the lock stands for the packages (as in Starwhale).
	if locked {
		for _, d := range r.ry.Dependencies {
			if d.Commands != nil {
				if err := r.do("commands", func() error { return r.commands(d.Commands) }); err != nil {
					return err
				}
			}
		}
		if !envMade && r.ry.Mode == "venv" {
			if b, err := os.ReadFile(lock); err == nil && len(bytes.TrimSpace(b)) > 0 {
				if err := r.do("pip install the lock", func() error { return r.pip("-r", lock) }); err != nil {
					return err
				}
			}
		}
	}
	for _, d := range r.ry.Dependencies {
		if locked && d.Wheels == nil && d.Files == nil {
			continue
		}
		if err := r.do(d.Kind(), func() error { return r.dependency(d, locked) }); err != nil {
			return err
		}
	}
	// Bundles of the first layout carry wheels that runtime.yaml may not name by path.
	if !r.namesWheels() {
		if ws, _ := filepath.Glob(filepath.Join(r.dir, "wheels", "*.whl")); len(ws) > 0 {
			return r.do("wheels", func() error { return r.pip(ws...) })
		}
	}
	return nil
}

// dependency installs one dependency of runtime.yaml.
func (r *restorer) dependency(d Dependency, locked bool) error {
	switch {
	case d.Wheels != nil:
		return r.wheels(d.Wheels)
	case d.Files != nil:
		return r.files(d.Files)
	case locked:
		return nil
	case d.File != "" && isPipFile(d.File):
		return r.pip("-r", filepath.Join(r.dir, "dependencies", filepath.FromSlash(d.File)))
	case d.File != "":
		if r.ry.Mode == "conda" {
			_, err := RunCommand(r.ctx, r.dir, r.req.Env, r.condaBin, "env", "update", "--quiet", "--file",
				filepath.Join(r.dir, "dependencies", filepath.FromSlash(d.File)), "--prefix", r.res.EnvDir)
			return envErr(err)
		}
		r.warn(fmt.Sprintf("conda env file %s skipped: the runtime is in venv mode", d.File))
	case d.Pip != nil:
		return r.pip(d.Pip...)
	case d.Conda != nil:
		if r.ry.Mode == "conda" {
			args := []string{"install", "--prefix", r.res.EnvDir}
			for _, c := range r.ry.CondaChannels {
				args = append(args, "--channel", c)
			}
			args = append(append(args, "--yes", "--override-channels"), d.Conda...)
			_, err := RunCommand(r.ctx, r.dir, r.req.Env, r.condaBin, args...)
			return envErr(err)
		}
		r.warn(fmt.Sprintf("conda dependencies %v skipped: the runtime is in venv mode", d.Conda))
	case d.Commands != nil:
		return r.commands(d.Commands)
	}
	return nil
}

// do runs one step of the restore (or, in the dry pass, counts it), telling the progress.
func (r *restorer) do(label string, fn func() error) error {
	if r.dry {
		r.steps++
		return nil
	}
	p := r.req.Progress
	if p != nil {
		p.Step(label)
	}
	err := fn()
	if err == nil && p != nil {
		p.Done(1, 0)
	}
	return err
}

func envErr(err error) error {
	if err != nil {
		return &errs.Error{Kind: errs.KindEnv, Err: err}
	}
	return nil
}

func (r *restorer) warn(s string) {
	if r.req.Warn != nil {
		r.req.Warn(s)
	}
}

func (r *restorer) namesWheels() bool {
	for _, d := range r.ry.Dependencies {
		if len(d.Wheels) > 0 {
			return true
		}
	}
	return false
}

// pip runs pip install in the environment with configs.pip and the SW_PYPI_* settings.
func (r *restorer) pip(args ...string) error {
	full := append([]string{"-m", "pip", "install", "--disable-pip-version-check"}, pipIndexArgs(r.ry)...)
	full = append(full, args...)
	r.say("pip install " + strings.Join(args, " "))
	var err error
	if r.ry.Mode == "conda" {
		_, err = RunCommand(r.ctx, r.dir, r.req.Env, r.condaBin, append([]string{"run", "--prefix", r.res.EnvDir, "python3"}, full...)...)
	} else {
		_, err = RunCommand(r.ctx, r.dir, r.req.Env, filepath.Join(r.res.EnvDir, "bin", "python"), full...)
	}
	if err != nil {
		return &errs.Error{Kind: errs.KindEnv, Err: err, Hint: "check the package index settings (configs.pip, SW_PYPI_INDEX_URL, PIP_FIND_LINKS)"}
	}
	return nil
}

// wheels installs the bundle's wheels: wheels/<path as named>, or wheels/<base name> in
// bundles of the first layout.
func (r *restorer) wheels(ws []string) error {
	var paths []string
	for _, w := range ws {
		p := filepath.Join(r.dir, filepath.FromSlash(WheelDest(w)))
		if !fileExists(p) {
			p = filepath.Join(r.dir, "wheels", filepath.Base(w))
		}
		if !fileExists(p) {
			return errs.Errorf(errs.KindCorrupt, "rebuild the runtime", "%s: the bundle lacks the wheel %s", r.dir, WheelDest(w))
		}
		paths = append(paths, p)
	}
	return r.pip(paths...)
}

// files places files entries at <environment>/<dest> (Starwhale: export/<mode>/<dest> on a
// host). Sources are read through an os.Root of the bundle and destinations written
// through one of the environment: a link that came with the bundle, on either side, can
// lead neither a read nor a write (nor a directory made on the way) outside them.
func (r *restorer) files(fs []FileEntry) error {
	bundle, err := os.OpenRoot(r.dir)
	if err != nil {
		return err
	}
	defer bundle.Close()
	env, err := os.OpenRoot(r.res.EnvDir)
	if err != nil {
		return err
	}
	defer env.Close()
	for _, f := range fs {
		src := FileDest(f)
		if _, err := bundle.Lstat(src); err != nil {
			src = path.Join("files", f.Dest) // first layout
		}
		fi, err := bundle.Lstat(src)
		if err != nil {
			return errs.Errorf(errs.KindCorrupt, "rebuild the runtime", "%s: the bundle lacks %s", r.dir, FileDest(f))
		}
		dest := path.Clean(f.Dest)
		r.say(fmt.Sprintf("placing %s at %s", f.Src, filepath.Join(r.res.EnvDir, dest)))
		if fi.IsDir() {
			sub, oerr := bundle.OpenRoot(src)
			if oerr != nil {
				return placeErr(r, src, oerr)
			}
			err = iofs.WalkDir(sub.FS(), ".", func(p string, d iofs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				return placeFile(sub, env, p, path.Join(dest, p), d)
			})
			sub.Close()
		} else {
			err = placeFile(bundle, env, src, dest, nil)
		}
		if err != nil {
			return placeErr(r, f.Dest, err)
		}
	}
	return nil
}

// placeErr says that a files entry could not be placed: a link of the bundle that leads
// out is the bundle's fault.
func placeErr(r *restorer, what string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errs.KindOf(err) != errs.KindFailure {
		return err
	}
	return errs.Errorf(errs.KindCorrupt, "restore only runtimes you trust; rebuild this one",
		"%s: files entry %s: %v (restore does not follow links out of the bundle or the environment)", r.dir, what, err)
}

// placeFile copies src of from to dest of to (a directory when d says so); links and
// special files of a files directory are not placed.
func placeFile(from, to *os.Root, src, dest string, d iofs.DirEntry) error {
	if d != nil && d.IsDir() {
		return to.MkdirAll(dest, 0o755)
	}
	if d != nil && !d.Type().IsRegular() {
		return nil
	}
	if dir := path.Dir(dest); dir != "." {
		if err := to.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return fsutil.CopyRegular(from.OpenFile, src, to.OpenFile, dest, os.O_TRUNC, src)
}

// commands runs runtime.yaml's commands in the bundle directory with the environment
// first on PATH, when the user allows it; otherwise it says which were skipped.
func (r *restorer) commands(cmds []string) error {
	allowed := r.req.RunCommands || os.Getenv("SW_RUNTIME_FORCE_RUN_COMMAND") == "1"
	for _, c := range cmds {
		if !allowed {
			r.warn(fmt.Sprintf("command not run: %s (allow with --run-commands or SW_RUNTIME_FORCE_RUN_COMMAND=1)", c))
			continue
		}
		r.say("run: " + c)
		env := append([]string{"PATH=" + filepath.Join(r.res.EnvDir, "bin") + string(os.PathListSeparator) + os.Getenv("PATH")}, r.req.Env...)
		if r.ry.Mode == "venv" {
			env = append(env, "VIRTUAL_ENV="+r.res.EnvDir)
		} else {
			env = append(env, "CONDA_PREFIX="+r.res.EnvDir)
		}
		if _, err := RunCommand(r.ctx, r.dir, env, "/bin/sh", "-c", c); err != nil {
			return &errs.Error{Kind: errs.KindEnv, Err: err, Hint: "the command comes from runtime.yaml's commands"}
		}
	}
	return nil
}

// relocateConda points the scripts of a bundled conda environment at its new place: the
// old prefix is the lock's "prefix:" line (conda env export writes it).
func relocateConda(env, lock string) error {
	if lock == "" {
		return nil
	}
	f, err := os.Open(lock)
	if err != nil {
		return err
	}
	defer f.Close()
	old := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "prefix:"); ok {
			old = strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	if old == "" || old == env {
		return nil
	}
	ents, err := os.ReadDir(filepath.Join(env, "bin"))
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := rewriteScript(filepath.Join(env, "bin", e.Name()), old, env, false); err != nil {
				return err
			}
		}
	}
	return nil
}

func fileExists(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular()
}

func dirExists(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}
