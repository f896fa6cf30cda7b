package ops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/ops/formats"
)

// Prepared is a runtime ready to use: extracted and restored.
type Prepared struct {
	Dir, EnvDir, Mode string
	Version           string
	Restored          bool // restored by this call
}

// Activate is the shell command that activates the environment.
func (p *Prepared) Activate() string { return formats.ActivateCommand(p.Mode, p.EnvDir) }

// Environ is os.Environ with the environment active: its bin first on PATH, VIRTUAL_ENV
// (or CONDA_PREFIX) set, PYTHONHOME unset.
func (p *Prepared) Environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+filepath.Join(p.EnvDir, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	if p.Mode == "conda" {
		env = append(env, "CONDA_PREFIX="+p.EnvDir)
	} else {
		env = append(env, "VIRTUAL_ENV="+p.EnvDir)
	}
	return env
}

// Prepare extracts a version into the instance's workdir area (if it is not there) and
// restores it (if it was not restored, or force): what activate and run do on first use.
func Prepare(ctx context.Context, in *Instance, project, name, ref string, force bool, req formats.RestoreRequest) (*Prepared, error) {
	ex, err := Extract(ctx, in, project, name, ref, "", false, nil)
	if err != nil {
		return nil, err
	}
	p := &Prepared{Dir: ex.Dir, Version: ex.Version.ID, Mode: ex.Version.Mode}
	if b, err := formats.ReadNoFollow(filepath.Join(ex.Dir, formats.RestoredName)); err == nil && !force {
		p.EnvDir = strings.TrimSpace(string(b))
		if _, err := os.Stat(filepath.Join(p.EnvDir, "bin")); err == nil {
			return p, nil
		}
	}
	req.Dir = ex.Dir
	if req.Notice != nil {
		if p := req.Notice(fmt.Sprintf("first use of %s/version/%s: restoring its environment in %s (once; it may take minutes)", name, ex.Version.ID[:12], ex.Dir)); p != nil {
			req.Progress = p
		}
	}
	res, err := formats.Restore(ctx, req)
	if err != nil {
		return nil, err
	}
	p.EnvDir, p.Restored = res.EnvDir, true
	return p, nil
}
