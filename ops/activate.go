package ops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RestoredName marks an extraction whose restore finished; it holds the environment's
// path. A restore that failed or was interrupted leaves no marker, and the next activate or
// run restores again (Starwhale's .runtime_restore_status).
const RestoredName = ".swcli-restored"

// Prepared is a runtime ready to use: extracted and restored.
type Prepared struct {
	Dir, EnvDir, Mode string
	Version           string
	Restored          bool // restored by this call
}

// Activate is the shell command that activates the environment.
func (p *Prepared) Activate() string { return activateCommand(p.Mode, p.EnvDir) }

// activateCommand is the shell command that activates the environment env of mode, its
// path quoted for sh: a space, a quote or a $ in a path is a character of the path, never
// shell syntax.
func activateCommand(mode, env string) string {
	if mode == "conda" {
		return "conda activate " + ShellQuote(env)
	}
	return ". " + ShellQuote(filepath.Join(env, "bin", "activate"))
}

// ShellQuote quotes s for a POSIX shell: one word, taken literally.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@%=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

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
func Prepare(ctx context.Context, in *Instance, project, name, ref string, force bool, req RestoreRequest) (*Prepared, error) {
	ex, err := Extract(ctx, in, project, name, ref, "", false, nil)
	if err != nil {
		return nil, err
	}
	p := &Prepared{Dir: ex.Dir, Version: ex.Version.ID, Mode: ex.Version.Mode}
	if b, err := readNoFollow(filepath.Join(ex.Dir, RestoredName)); err == nil && !force {
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
	res, err := Restore(ctx, req)
	if err != nil {
		return nil, err
	}
	p.EnvDir, p.Restored = res.EnvDir, true
	return p, nil
}
