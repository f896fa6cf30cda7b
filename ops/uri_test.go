package ops

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/swcli/swcli/ops/formats"
)

func TestParseRuntimeURI(t *testing.T) {
	cases := []struct {
		in   string
		want RuntimeURI
		err  string // a part of the error; "" for none
	}{
		{in: "mnist", want: RuntimeURI{Name: "mnist"}},
		{in: "mnist/version/latest", want: RuntimeURI{Name: "mnist", Version: "latest"}},
		{in: "self/runtime/mnist/version/v1", want: RuntimeURI{ProjectURI: ProjectURI{Project: "self"}, Name: "mnist", Version: "v1"}},
		{in: "local/project/self/runtime/mnist", want: RuntimeURI{ProjectURI: ProjectURI{Instance: InstanceRef{Alias: "local"}, Project: "self"}, Name: "mnist"}},
		{in: "cloud://team/project/p/runtime/r/version/abcde", want: RuntimeURI{ProjectURI: ProjectURI{Instance: InstanceRef{Alias: "team"}, Project: "p"}, Name: "r", Version: "abcde"}},
		{in: "team/project/p/runtime/r", want: RuntimeURI{ProjectURI: ProjectURI{Instance: InstanceRef{Alias: "team"}, Project: "p"}, Name: "r"}},
		{in: "http://127.0.0.1:8080/project/p/runtime/r", want: RuntimeURI{ProjectURI: ProjectURI{Instance: InstanceRef{URL: "http://127.0.0.1:8080"}, Project: "p"}, Name: "r"}},
		{in: "https://h.example/project/p/runtime/r/version/prod", want: RuntimeURI{ProjectURI: ProjectURI{Instance: InstanceRef{URL: "https://h.example"}, Project: "p"}, Name: "r", Version: "prod"}},
		{in: "", err: "empty runtime URI"},
		{in: "9lives", err: "invalid runtime name"},
		{in: "a b", err: "invalid runtime name"},
		{in: "mnist/version/", err: "invalid version"},
		{in: "mnist/version/a$b", err: "invalid version"},
		{in: "cloud://a/b/project/p/runtime/r", err: "invalid instance"},
		{in: "cloud:///project/p/runtime/r", err: "invalid instance"},
		{in: "ftp://x/runtime/r", err: "no /project/ part"},
		{in: "p q/runtime/r", err: "invalid project name"},
	}
	for _, c := range cases {
		got, err := ParseRuntimeURI(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one with %q", c.in, err, c.err)
		case c.err != "" && KindOf(err) != KindUsage:
			t.Errorf("%q: kind %v, want usage", c.in, KindOf(err))
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.err == "" && got != c.want:
			t.Errorf("%q: %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestConfigAliasForIsDeterministic(t *testing.T) {
	cfg := &Config{Instances: map[string]*InstanceConfig{
		"zeta": {URL: "http://h:1"}, "alpha": {URL: "http://h:1"}, "mid": {URL: "http://h:1"}, "other": {URL: "http://h:2"},
	}}
	for range 20 {
		if a := cfg.AliasFor("http://h:1"); a != "alpha" {
			t.Fatalf("alias for a URL three aliases share: %q, want the first by name", a)
		}
	}
	if a := cfg.AliasFor("http://h:3"); a != "" {
		t.Fatalf("alias for an unknown URL: %q", a)
	}
}

func TestLoadRuntimeYAML(t *testing.T) {
	parent := t.TempDir()
	wd := filepath.Join(parent, "wd")
	os.MkdirAll(wd, 0o755)
	os.WriteFile(filepath.Join(parent, "secret"), []byte("outside\n"), 0o644)
	os.Symlink(filepath.Join(parent, "secret"), filepath.Join(wd, "out.txt"))
	if err := syscall.Mkfifo(filepath.Join(wd, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(wd, "requirements.txt"), []byte("numpy\n"), 0o644)
	os.WriteFile(filepath.Join(wd, "w-1.0-py3-none-any.whl"), []byte("PK"), 0o644)
	cases := []struct {
		name, yaml string
		check      func(t *testing.T, ry *formats.RuntimeYAML)
		err        string // "file:line: key" part of the error; "" for none
	}{
		{name: "minimal", yaml: "name: app\n", check: func(t *testing.T, ry *formats.RuntimeYAML) {
			if ry.Name != "app" || ry.Mode != "venv" || len(ry.Arch) != 0 { // Starwhale: no arch is []
				t.Fatalf("%+v", ry)
			}
		}},
		{name: "full", yaml: `api_version: "1.1"
name: app
mode: conda
environment:
  python: "3.11"
  arch: amd64
  os: ubuntu:20.04
dependencies:
  - requirements.txt
  - pip:
      - numpy==1.26
  - wheels:
      - w-1.0-py3-none-any.whl
configs:
  pip:
    index_url: https://pypi.example/simple
    extra_index_url: [https://a.example]
    trusted_host: [a.example]
  conda:
    channels: [conda-forge]
`, check: func(t *testing.T, ry *formats.RuntimeYAML) {
			if ry.Mode != "conda" || ry.Python != "3.11" || ry.Arch[0] != "amd64" || len(ry.Dependencies) != 3 ||
				ry.Dependencies[0].File != "requirements.txt" || ry.Dependencies[1].Pip[0] != "numpy==1.26" ||
				ry.Pip.IndexURL != "https://pypi.example/simple" || ry.CondaChannels[0] != "conda-forge" {
				t.Fatalf("%+v", ry)
			}
		}},
		{name: "unknown key warns", yaml: "name: app\ncolour: blue\n", check: func(t *testing.T, ry *formats.RuntimeYAML) {
			if len(ry.Warnings) != 1 || !strings.Contains(ry.Warnings[0], ":2: unknown key colour") {
				t.Fatalf("warnings %v", ry.Warnings)
			}
		}},
		{name: "starwhale keys", yaml: `api_version: 1.1
name: MNIST-Demo
mode: venv
python_version: "3.9"
pip_req: requirements.txt
base_image: ghcr.io/star-whale/starwhale:latest
environment:
  arch: [amd64, arm64]
  os: Ubuntu:20.04
  cuda: "11.4"
  cudnn: "8"
dependencies:
  - pip: [numpy]
    commands: [echo hi, "apt-get install -y curl"]
  - files:
      - {name: x, src: requirements.txt, dest: bin/../bin/x}
hooks: {pre: "", post: ""}
configs:
  docker: {image: other}
  conda:
    condarc: {channel_alias: https://mirror.example}
  pip: {extra_index_url: https://one.example, trusted_host: one.example}
`, check: func(t *testing.T, ry *formats.RuntimeYAML) {
			if ry.Name != "mnist-demo" || ry.Python != "3.9" || ry.OS != "ubuntu:20.04" || len(ry.Arch) != 2 ||
				ry.CUDA != "11.4" || ry.CUDNN != "8" || ry.DockerImage != "ghcr.io/star-whale/starwhale:latest" {
				t.Fatalf("%+v", ry)
			}
			if len(ry.Dependencies) != 4 || ry.Dependencies[1].Commands[1] != "apt-get install -y curl" ||
				ry.Dependencies[2].Files[0].Dest != "bin/x" || ry.Dependencies[3].File != "requirements.txt" {
				t.Fatalf("dependencies %+v", ry.Dependencies)
			}
			if !strings.Contains(ry.Condarc, "channel_alias: https://mirror.example") || ry.Pip.ExtraIndexURL[0] != "https://one.example" {
				t.Fatalf("configs %+v", ry)
			}
			if len(ry.Warnings) != 0 {
				t.Fatalf("warnings %v", ry.Warnings)
			}
		}},
		{name: "unquoted 3.10 is 3.1", yaml: "name: a\nenvironment:\n  python: 3.10\n", err: ":3: environment.python: python \"3.1\" is not supported"},
		{name: "python 3.12", yaml: "name: a\nenvironment:\n  python: '3.12'\n", err: ":3: environment.python: python \"3.12\" is not supported"},
		{name: "python full version", yaml: "name: a\nenvironment:\n  python: 3.10.4\n", check: func(t *testing.T, ry *formats.RuntimeYAML) {
			if ry.Python != "3.10" {
				t.Fatalf("python %q", ry.Python)
			}
		}},
		{name: "api_version 1.0", yaml: "api_version: '1.0'\nname: a\n", err: ":1: api_version: \"1.0\" is not supported"},
		{name: "api_version 1.10 reads as 1.1", yaml: "api_version: 1.10\nname: a\n", check: func(t *testing.T, ry *formats.RuntimeYAML) {}},
		{name: "os other", yaml: "name: a\nenvironment:\n  os: debian\n", err: ":3: environment.os: \"debian\" is not supported"},
		{name: "cudnn without cuda", yaml: "name: a\nenvironment:\n  cudnn: '8'\n", err: "environment.cudnn: needs environment.cuda"},
		{name: "cuda unknown", yaml: "name: a\nenvironment:\n  cuda: '12.1'\n", err: "environment.cuda: \"12.1\" is not supported"},
		{name: "wheel not a wheel", yaml: "name: a\ndependencies:\n  - wheels: [requirements.txt]\n", err: ":3: dependencies[0].wheels[0]: \"requirements.txt\" is not a wheel"},
		{name: "wheels a scalar", yaml: "name: a\ndependencies:\n  - wheels: w-1.0-py3-none-any.whl\n", err: ":3: dependencies[0].wheels: must be a list"},
		{name: "commands a scalar", yaml: "name: a\ndependencies:\n  - commands: echo hi\n", err: ":3: dependencies[0].commands: must be a list"},
		{name: "unknown kind", yaml: "name: a\ndependencies:\n  - apt: [curl]\n  - pip: [x]\n    note: y\n  - files:\n      - {src: runtime.yaml, dest: r, mode: 644}\n", check: func(t *testing.T, ry *formats.RuntimeYAML) {
			// Keys Starwhale ignores inside dependency items are warnings, with their line.
			if len(ry.Dependencies) != 2 || len(ry.Warnings) != 3 || !strings.Contains(ry.Warnings[0], ":3: unknown key dependencies[0].apt") ||
				!strings.Contains(ry.Warnings[2], "dependencies[2].files[0].mode") {
				t.Fatalf("%+v %q", ry.Dependencies, ry.Warnings)
			}
		}},
		{name: "starwhale_version", yaml: "name: a\nenvironment:\n  starwhale_version: 0.6.10\n", check: func(t *testing.T, ry *formats.RuntimeYAML) {
			if ry.StarwhaleVersion != "0.6.10" || len(ry.Warnings) != 0 {
				t.Fatalf("%+v", ry)
			}
		}},
		{name: "file of unknown kind", yaml: "name: a\ndependencies:\n  - w-1.0-py3-none-any.whl\n", err: "neither a pip requirements file"},
		{name: "files without dest", yaml: "name: a\ndependencies:\n  - files:\n      - {src: requirements.txt}\n", err: "dependencies[0].files[0]: needs both src and dest"},
		{name: "files dest leaves", yaml: "name: a\ndependencies:\n  - files:\n      - {src: requirements.txt, dest: bin/../../x}\n", err: "dependencies[0].files[0].dest: \"bin/../../x\" must be a relative path"},
		{name: "files dest absolute", yaml: "name: a\ndependencies:\n  - files:\n      - {src: requirements.txt, dest: /etc/x}\n", err: "dependencies[0].files[0].dest"},
		{name: "2022 create's runtime.yaml", yaml: "base_image: ghcr.io/star-whale/starwhale:0.2.0b9\nmode: venv\nname: pytorch-mnist\npip_req: absent.txt\npython_version: '3.8'\n", check: func(t *testing.T, ry *formats.RuntimeYAML) {
			if ry.Python != "3.8" || len(ry.Dependencies) != 0 || len(ry.Warnings) != 1 || !strings.Contains(ry.Warnings[0], "pip_req absent.txt does not exist") {
				t.Fatalf("%+v", ry)
			}
		}},
		{name: "no name", yaml: "mode: venv\n", err: ":1: name: missing"},
		{name: "bad name", yaml: "name: 9x\n", err: ":1: name: invalid runtime name"},
		{name: "bad mode", yaml: "name: a\nmode: docker\n", err: ":2: mode: unknown mode"},
		{name: "bad python", yaml: "name: a\nenvironment:\n  python: '2.7'\n", err: ":3: environment.python"},
		{name: "dependencies not a list", yaml: "name: a\ndependencies: requirements.txt\n", err: ":2: dependencies: must be a list"},
		{name: "not a mapping", yaml: "- a\n", err: "(top): must be a mapping"},
		{name: "yaml syntax", yaml: "name: [\n", err: "runtime.yaml"},
		{name: "duplicate key", yaml: "name: a\nmode: venv\nname: b\n", err: ":3: name: given twice"},
		{name: "duplicate nested key", yaml: "name: a\nenvironment:\n  python: '3.10'\n  python: '3.11'\n", err: ":4: environment.python: given twice"},
		{name: "alias", yaml: "name: &n a\nmode: *n\n", err: "anchors and aliases are not allowed"},
		{name: "environment a scalar", yaml: "name: a\nenvironment: linux\n", err: ":2: environment: must be a mapping"},
		{name: "name a list", yaml: "name: [a, b]\n", err: ":1: name: must be a single value"},
		{name: "pip a scalar", yaml: "name: a\ndependencies:\n  - pip: numpy\n", err: ":3: dependencies[0].pip: must be a list"},
		{name: "pip item a mapping", yaml: "name: a\ndependencies:\n  - pip: [{x: 1}]\n", err: ":3: dependencies[0].pip[0]: must be a string"},
		{name: "channels a scalar", yaml: "name: a\nconfigs:\n  conda:\n    channels: conda-forge\n", err: ":4: configs.conda.channels: must be a list"},
		{name: "file outside", yaml: "name: a\ndependencies:\n  - ../secret\n", err: ":3: dependencies[0]: ../secret is outside the workdir"},
		{name: "file far outside", yaml: "name: a\ndependencies:\n  - ../../../etc/ssl\n", err: "dependencies[0]"},
		{name: "absolute file", yaml: "name: a\ndependencies:\n  - /etc/passwd\n", err: ":3: dependencies[0]: /etc/passwd is absolute"},
		{name: "link out", yaml: "name: a\ndependencies:\n  - out.txt\n", err: ":3: dependencies[0]: out.txt is outside the workdir"},
		{name: "fifo", yaml: "name: a\ndependencies:\n  - pipe\n", err: ":3: dependencies[0]: pipe is not a regular file"},
		{name: "files src outside", yaml: "name: a\ndependencies:\n  - files:\n      - {src: ../secret, dest: s}\n", err: "dependencies[0].files[0].src: ../secret is outside"},
		{name: "files unknown key", yaml: "name: a\ndependencies:\n  - files:\n      - {src: requirements.txt, to: s}\n", err: "dependencies[0].files[0]: needs both src and dest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(wd, "runtime.yaml")
			os.WriteFile(p, []byte(c.yaml), 0o644)
			ry, raw, err := formats.LoadRuntimeYAML(p, wd)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.HasPrefix(err.Error(), p) {
					t.Fatalf("error %v, want %s%s", err, p, c.err)
				}
				if KindOf(err) != KindInvalid {
					t.Fatalf("kind %v, want invalid", KindOf(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != c.yaml {
				t.Fatalf("raw bytes changed")
			}
			c.check(t, ry)
		})
	}
	if _, _, err := formats.LoadRuntimeYAML(filepath.Join(wd, "nope.yaml"), wd); KindOf(err) != KindNotFound {
		t.Fatalf("missing file: %v", err)
	}
}
