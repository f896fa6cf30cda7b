package formats

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops/errs"
)

// BuildEnvDir is where build makes the environment of a workdir that has none: Starwhale's
// place for it (SW_AUTO_DIRNAME/MODE), so that a workdir Starwhale built before is used as is.
func BuildEnvDir(workdir, mode string) string {
	return filepath.Join(workdir, ".starwhale", mode)
}

// BuildEnv makes the environment a build locks when the workdir has none, as Starwhale's
// build does (StandaloneRuntime.lock): WORKDIR/.starwhale/MODE with runtime.yaml's python,
// then runtime.yaml's dependencies installed in their order (pip specs, requirements
// files, wheels; conda packages and env files in conda mode), with configs.pip and the
// SW_PYPI_* settings; files and commands are left to restore, as Starwhale leaves them.
// The install runs again only when what it installs changed (a stamp in the environment),
// so an unchanged rebuild costs nothing here. say hears each step.
func BuildEnv(ctx context.Context, wd string, ry *RuntimeYAML, raw []byte, say func(string)) (string, error) {
	prefix := BuildEnvDir(wd, ry.Mode)
	stamp := filepath.Join(prefix, ".swcli-installed")
	want := depsStamp(wd, ry, raw)
	marker := filepath.Join(prefix, "pyvenv.cfg")
	if ry.Mode == "conda" {
		marker = filepath.Join(prefix, "conda-meta")
	}
	_, err := os.Stat(marker)
	made := false
	if err == nil {
		if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
			return prefix, nil
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
			return "", err
		}
		if err := makeBuildEnv(ctx, wd, prefix, ry, say); err != nil {
			os.RemoveAll(prefix)
			return "", err
		}
		made = true
	}
	conda := ""
	if ry.Mode == "conda" {
		if conda, err = LookConda(); err != nil {
			return "", err
		}
	}
	pip := func(args ...string) error {
		say("pip install " + strings.Join(args, " "))
		full := append([]string{"-m", "pip", "install", "--disable-pip-version-check"}, pipIndexArgs(ry)...)
		full = append(full, args...)
		var err error
		if ry.Mode == "conda" {
			_, err = RunCommand(ctx, wd, nil, conda, append([]string{"run", "--prefix", prefix, "python3"}, full...)...)
		} else {
			_, err = RunCommand(ctx, wd, nil, filepath.Join(prefix, "bin", "python"), full...)
		}
		if err != nil {
			return &errs.Error{Kind: errs.KindEnv, Err: err, Hint: "check the package index settings (configs.pip, SW_PYPI_INDEX_URL, PIP_FIND_LINKS)"}
		}
		return nil
	}
	for _, d := range ry.Dependencies {
		var err error
		switch {
		case d.Pip != nil:
			err = pip(d.Pip...)
		case d.File != "" && isPipFile(d.File):
			err = pip("-r", filepath.Join(wd, filepath.FromSlash(d.File)))
		case d.Wheels != nil:
			var ws []string
			for _, w := range d.Wheels {
				ws = append(ws, filepath.Join(wd, filepath.FromSlash(w)))
			}
			err = pip(ws...)
		case d.Conda != nil && ry.Mode == "conda":
			say("conda install " + strings.Join(d.Conda, " "))
			args := []string{"install", "--prefix", prefix}
			for _, c := range ry.CondaChannels {
				args = append(args, "--channel", c)
			}
			_, err = RunCommand(ctx, wd, nil, conda, append(append(args, "--yes", "--override-channels"), d.Conda...)...)
			err = envErr(err)
		case d.File != "" && ry.Mode == "conda":
			say("conda env update --file " + d.File)
			_, err = RunCommand(ctx, wd, nil, conda, "env", "update", "--quiet", "--file", filepath.Join(wd, filepath.FromSlash(d.File)), "--prefix", prefix)
			err = envErr(err)
		}
		if err != nil {
			if made {
				os.RemoveAll(prefix) // nothing half-made is left for the next build to take
			}
			return "", err
		}
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		return "", err
	}
	return prefix, nil
}

// makeBuildEnv creates the environment at prefix with runtime.yaml's python.
func makeBuildEnv(ctx context.Context, wd, prefix string, ry *RuntimeYAML, say func(string)) error {
	if ry.Mode == "conda" {
		conda, err := LookConda()
		if err != nil {
			return err
		}
		py := ry.Python
		if py == "" {
			p, err := FindPython(ctx, "")
			if err != nil {
				return err
			}
			py = p.MajorMinor()
		}
		say(fmt.Sprintf("creating the conda environment %s with python %s", prefix, py))
		_, err = RunCommand(ctx, wd, nil, conda, "create", "--yes", "--quiet", "--prefix", prefix, "python="+py)
		return envErr(err)
	}
	p, err := FindPython(ctx, ry.Python)
	if err != nil {
		return err
	}
	say(fmt.Sprintf("creating the venv %s with python %s (%s)", prefix, p.Version, p.Path))
	if _, err := RunCommand(ctx, wd, nil, p.Path, "-m", "venv", prefix); err != nil {
		return &errs.Error{Kind: errs.KindEnv, Err: err, Hint: "Debian needs the python3-venv package"}
	}
	return nil
}

// depsStamp names what BuildEnv installs: runtime.yaml, and the content of the
// requirements files and wheels it names, and the index settings.
func depsStamp(wd string, ry *RuntimeYAML, raw []byte) string {
	var h bytes.Buffer // hashed whole: requirements files and wheels are small beside an env
	h.Write(raw)
	for _, d := range ry.Dependencies {
		if d.File != "" { // a requirements or env file: its content
			b, _ := os.ReadFile(filepath.Join(wd, filepath.FromSlash(d.File)))
			fmt.Fprintf(&h, "\x00%s\x00%d\x00", d.File, len(b))
			h.Write(b)
		}
		for _, w := range d.Wheels { // a wheel (large, perhaps): its size and time
			if fi, err := os.Stat(filepath.Join(wd, filepath.FromSlash(w))); err == nil {
				fmt.Fprintf(&h, "\x00%s\x00%d\x00%d", w, fi.Size(), fi.ModTime().UnixNano())
			}
		}
	}
	fmt.Fprintf(&h, "\x00%q", pipIndexArgs(ry))
	return cas.Sum(h.Bytes()).String()
}
