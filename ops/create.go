package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/formats"
)

// CreateRequest is `swcli runtime create`.
type CreateRequest struct {
	Workdir string
	Name    string
	Mode    string // venv | conda
	Python  string // major.minor; "" for python3 on PATH
	Project string
	Force   bool
}

// CreateResult says what was made.
type CreateResult struct {
	Workdir  string
	EnvDir   string // WORKDIR/venv or WORKDIR/conda
	Python   formats.Python
	Activate string // the command that activates the environment
	Seq      uint64
}

// Create makes WORKDIR, its environment and runtime.yaml, and records runtime.created.
func Create(ctx context.Context, in *Instance, req CreateRequest) (*CreateResult, error) {
	if !ledger.ValidName(req.Name) {
		return nil, Errorf(KindUsage, "names start with a letter or _, then letters, digits, _ . -; 80 at most", "invalid runtime name %q", req.Name)
	}
	if req.Mode == "" {
		req.Mode = "venv"
	}
	if req.Mode != "venv" && req.Mode != "conda" {
		return nil, Errorf(KindUsage, "use -m venv or -m conda", "unknown mode %q", req.Mode)
	}
	if req.Python != "" {
		if _, err := formats.NormalizePython(req.Python); err != nil {
			return nil, Errorf(KindUsage, "give one of "+strings.Join(formats.SupportedPythons, ", ")+", e.g. --python 3.11", "--python: %v", err)
		}
	}
	if _, err := in.Ledger.Project(req.Project); err != nil {
		return nil, LedgerErr(err)
	}
	wd, err := filepath.Abs(req.Workdir)
	if err != nil {
		return nil, err
	}
	envDir := filepath.Join(wd, req.Mode)
	yml := filepath.Join(wd, "runtime.yaml")
	if !req.Force {
		for _, p := range []string{yml, envDir} {
			if _, err := os.Lstat(p); err == nil {
				return nil, Errorf(KindExists, "pass -f to replace it", "%s already exists", p)
			}
		}
	}
	res := &CreateResult{Workdir: wd, EnvDir: envDir}
	var conda string
	if req.Mode == "conda" {
		if conda, err = formats.LookConda(); err != nil {
			return nil, err
		}
		res.Python = formats.Python{Version: req.Python}
		if res.Python.Version == "" {
			p, err := formats.FindPython(ctx, "")
			if err != nil {
				return nil, err
			}
			res.Python.Version = p.MajorMinor()
		}
	} else if res.Python, err = formats.FindPython(ctx, req.Python); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", wd, err)
	}
	if err := os.RemoveAll(envDir); err != nil {
		return nil, fmt.Errorf("replace %s: %w", envDir, err)
	}
	if req.Mode == "venv" {
		if _, err := formats.RunCommand(ctx, wd, nil, res.Python.Path, "-m", "venv", envDir); err != nil {
			return nil, &Error{Kind: KindEnv, Err: err, Hint: "Debian needs the python3-venv package"}
		}
		res.Activate = formats.ActivateCommand("venv", envDir)
	} else {
		if _, err := formats.RunCommand(ctx, wd, nil, conda, "create", "--yes", "--quiet", "--prefix", envDir, "python="+res.Python.MajorMinor()); err != nil {
			return nil, &Error{Kind: KindEnv, Err: err}
		}
		res.Activate = formats.ActivateCommand("conda", envDir)
	}
	if err := os.WriteFile(yml, []byte(formats.RuntimeYAMLTemplate(req.Name, req.Mode, res.Python.MajorMinor())), 0o644); err != nil {
		return nil, fmt.Errorf("write runtime.yaml: %w", err)
	}
	ev, err := in.Append(ctx, ledger.RuntimeCreated, req.Project, req.Name, "", ledger.CreatedData{
		Mode: req.Mode, Python: res.Python.MajorMinor(), Workdir: wd})
	if err != nil {
		return nil, err
	}
	res.Seq = ev.Seq
	return res, nil
}

// ActivateCommand returns the command that activates a workdir's environment.
func ActivateCommand(workdir, yamlPath string) (string, error) {
	wd, err := filepath.Abs(workdir)
	if err != nil {
		return "", err
	}
	if yamlPath == "" {
		yamlPath = filepath.Join(wd, "runtime.yaml")
	}
	ry, _, err := formats.LoadRuntimeYAML(yamlPath, wd)
	if err != nil {
		return "", err
	}
	if ry.Mode == "conda" {
		return formats.ActivateCommand("conda", filepath.Join(wd, "conda")), nil
	}
	act := filepath.Join(wd, "venv", "bin", "activate")
	if _, err := os.Stat(act); errors.Is(err, os.ErrNotExist) {
		return "", Errorf(KindNotFound, "run 'swcli runtime create' to make the venv", "%s does not exist", act)
	}
	return formats.ActivateCommand("venv", filepath.Join(wd, "venv")), nil
}
