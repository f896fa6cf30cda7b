package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/ops/formats"
)

// EnvSelector names an existing Python environment, as Starwhale's build and lock select
// one: a venv prefix, a conda env by name or prefix, or the shell's active one.
type EnvSelector struct {
	Venv        string // --venv PATH
	CondaName   string // --conda NAME
	CondaPrefix string // --conda-prefix PATH
	Shell       bool   // --shell: $VIRTUAL_ENV or $CONDA_PREFIX
}

// Set says whether any selector is given.
func (s EnvSelector) Set() bool {
	return s.Venv != "" || s.CondaName != "" || s.CondaPrefix != "" || s.Shell
}

// Resolve returns the environment's prefix and mode. Giving more than one selector is an
// error, as in Starwhale.
func (s EnvSelector) Resolve(ctx context.Context) (prefix, mode string, err error) {
	n := 0
	for _, set := range []bool{s.Venv != "", s.CondaName != "", s.CondaPrefix != "", s.Shell} {
		if set {
			n++
		}
	}
	if n > 1 {
		return "", "", Errorf(KindUsage, "give one of them", "--venv, --conda, --conda-prefix and --shell select one environment each")
	}
	switch {
	case s.Venv != "":
		prefix, mode = s.Venv, "venv"
	case s.CondaPrefix != "":
		prefix, mode = s.CondaPrefix, "conda"
	case s.CondaName != "":
		conda, err := formats.LookConda()
		if err != nil {
			return "", "", err
		}
		out, err := formats.RunCommand(ctx, "", nil, conda, "run", "--name", s.CondaName, "printenv", "CONDA_PREFIX")
		if err != nil {
			return "", "", Errorf(KindNotFound, "list them with 'conda env list'", "conda environment %q: %v", s.CondaName, err)
		}
		prefix, mode = strings.TrimSpace(string(out)), "conda"
	case s.Shell:
		if v := os.Getenv("VIRTUAL_ENV"); v != "" {
			prefix, mode = v, "venv"
		} else if c := os.Getenv("CONDA_PREFIX"); c != "" {
			prefix, mode = c, "conda"
		} else {
			return "", "", Errorf(KindUsage, "activate a venv or conda env first, or use --venv PATH", "--shell: no active environment ($VIRTUAL_ENV and $CONDA_PREFIX are unset)")
		}
	}
	prefix, err = filepath.Abs(prefix)
	if err != nil {
		return "", "", err
	}
	marker := "pyvenv.cfg"
	if mode == "conda" {
		marker = "conda-meta"
	}
	if _, err := os.Stat(filepath.Join(prefix, marker)); err != nil {
		return "", "", Errorf(KindNotFound, "give the directory that holds bin/python", "%s is not a %s environment (no %s)", prefix, mode, marker)
	}
	return prefix, mode, nil
}

// EnvPython is an environment's python version (major.minor.micro).
func EnvPython(ctx context.Context, prefix string) (string, error) {
	out, err := formats.RunCommand(ctx, prefix, nil, filepath.Join(prefix, "bin", "python"), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])")
	if err != nil {
		return "", &Error{Kind: KindEnv, Err: err, Hint: "the environment's python must run"}
	}
	return strings.TrimSpace(string(out)), nil
}

// BuildFromEnv builds a runtime from an existing environment without a runtime.yaml, as
// Starwhale's build --venv/--conda/--shell does: runtime.yaml is made from the environment
// (name, mode, its python) and stored with the lock.
func BuildFromEnv(ctx context.Context, in *Instance, sel EnvSelector, name string, req BuildRequest) (*BuildResult, error) {
	prefix, mode, err := sel.Resolve(ctx)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = filepath.Base(prefix)
		if name == "venv" || name == ".venv" || name == "conda" || name == "env" {
			name = filepath.Base(filepath.Dir(prefix))
		}
	}
	name = strings.ToLower(name)
	py, err := EnvPython(ctx, prefix)
	if err != nil {
		return nil, err
	}
	mm, err := formats.NormalizePython(py)
	if err != nil {
		return nil, Errorf(KindEnv, "", "%s: %v", prefix, err)
	}
	tmp, err := os.MkdirTemp(in.Root, "build-*.tmp")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	y := fmt.Sprintf("api_version: %q\nname: %s\nmode: %s\nenvironment:\n  python: %q\n  arch: noarch\n  os: %s\ndependencies: []\n",
		formats.RuntimeAPIVersion, name, mode, mm, formats.DefaultOS)
	if err := os.WriteFile(filepath.Join(tmp, "runtime.yaml"), []byte(y), 0o644); err != nil {
		return nil, err
	}
	if _, err := formats.ParseRuntimeYAML("runtime.yaml", []byte(y), ""); err != nil {
		return nil, Errorf(KindUsage, "pass --name with a valid runtime name", "%v", err)
	}
	req.Workdir, req.YAML, req.EnvDir = tmp, "", prefix
	return Build(ctx, in, req)
}

// LockRequest is `swcli runtime lock`.
type LockRequest struct {
	Dir               string // the workdir holding runtime.yaml
	YAML              string // default DIR/runtime.yaml
	Env               EnvSelector
	IncludeEditable   bool
	IncludeLocalWheel bool
	Warn              func(string)
}

// LockResult is a lock and where it was written ("" with --stdout).
type LockResult struct {
	Lock   []byte
	Path   string
	Python string
	EnvDir string
}

// LockPath is where lock writes the lock in a workdir (Starwhale's place).
func LockPath(dir, mode string) string {
	return filepath.Join(dir, ".starwhale", "lock", filepath.Base(formats.LockName(mode)))
}

// Lock pins the workdir's environment (or the selected one) and, unless stdout, writes the
// lock next to runtime.yaml under .starwhale/lock/, as Starwhale's lock does.
func Lock(ctx context.Context, req LockRequest, write bool) (*LockResult, error) {
	dir, err := filepath.Abs(req.Dir)
	if err != nil {
		return nil, err
	}
	yml := req.YAML
	if yml == "" {
		yml = filepath.Join(dir, "runtime.yaml")
	} else if !filepath.IsAbs(yml) {
		yml = filepath.Join(dir, yml)
	}
	var ry *formats.RuntimeYAML
	if _, statErr := os.Stat(yml); errors.Is(statErr, os.ErrNotExist) && req.Env.Set() && req.YAML == "" {
		// An environment named and no runtime.yaml: lock the environment as it is (its
		// mode is its own), as if runtime.yaml said nothing.
		_, mode, err := req.Env.Resolve(ctx)
		if err != nil {
			return nil, err
		}
		ry = &formats.RuntimeYAML{Mode: mode, Arch: []string{}}
	} else if ry, _, err = formats.LoadRuntimeYAML(yml, dir); err != nil {
		return nil, err
	}
	envDir := filepath.Join(dir, ry.Mode)
	if req.Env.Set() {
		p, mode, err := req.Env.Resolve(ctx)
		if err != nil {
			return nil, err
		}
		if mode != ry.Mode {
			return nil, Errorf(KindUsage, "select a "+ry.Mode+" environment", "%s is in %s mode, the environment %s is %s", yml, ry.Mode, p, mode)
		}
		envDir = p
	}
	if _, err := os.Stat(filepath.Join(envDir, "bin", "python")); err != nil {
		return nil, Errorf(KindNotFound, "make the environment, or select one with -p PATH or --shell", "%s environment %s not found", ry.Mode, envDir)
	}
	py, venv, err := checkEnv(ctx, ry.Mode, dir, envDir)
	if err != nil {
		return nil, err
	}
	if err := checkEnvPython(ry, yml, envDir, py); err != nil {
		return nil, err
	}
	lock, _, err := lockEnv(ctx, ry.Mode, dir, envDir, filepath.Join(envDir, "bin", "python"), venv, req.IncludeEditable)
	if err != nil {
		return nil, err
	}
	if !req.IncludeLocalWheel {
		var dropped []string
		lock, dropped = formats.TravellingLock(lock)
		if req.Warn != nil {
			for _, w := range formats.DescribeDropped(dropped, ry) {
				req.Warn(w)
			}
		}
	}
	res := &LockResult{Lock: lock, Python: py, EnvDir: envDir}
	if !write {
		return res, nil
	}
	res.Path = LockPath(dir, ry.Mode)
	if err := os.MkdirAll(filepath.Dir(res.Path), 0o755); err != nil {
		return nil, err
	}
	tmp := res.Path + ".tmp"
	if err := formats.WriteNoFollow(tmp, lock, 0o644); err != nil {
		return nil, err
	}
	return res, os.Rename(tmp, res.Path)
}
