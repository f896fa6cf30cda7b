package formats

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/swcli/swcli/ops/errs"
)

// A bundle's layout is Starwhale's (client/starwhale/core/runtime/model.py, _copy_src):
//
//	runtime.yaml                      as written by the user
//	_manifest.yaml                    what restore needs to know: mode, python, lock files, deps
//	dependencies/<path>               requirements and conda env files named in runtime.yaml
//	dependencies/.starwhale/lock/…    the lock (requirements-sw-lock.txt or conda-sw-lock.yaml)
//	wheels/<path>                     wheels named in runtime.yaml
//	files/<src>                       files entries, placed at <env>/<dest> by restore
//	configs/condarc                   configs.conda.condarc (and channels), for conda
//	export/venv/… or export/conda/…   the environment itself (--gen-all-bundles)
//
// Bundles built before this layout keep their lock at dependencies/requirements-lock.txt
// (or conda-env-lock.yaml), wheels at wheels/<base name> and files at files/<dest>;
// restore reads both.

// ManifestName is the bundle's manifest file, as Starwhale names it.
const ManifestName = "_manifest.yaml"

// LockName is the lock file's path inside a bundle, by mode.
func LockName(mode string) string {
	if mode == "conda" {
		return "dependencies/.starwhale/lock/conda-sw-lock.yaml"
	}
	return "dependencies/.starwhale/lock/requirements-sw-lock.txt"
}

// LegacyLockName is where bundles built before the Starwhale layout keep the lock.
func LegacyLockName(mode string) string {
	if mode == "conda" {
		return "dependencies/conda-env-lock.yaml"
	}
	return "dependencies/requirements-lock.txt"
}

// findLock returns the path of the lock in an extracted bundle, or "".
func findLock(dir, mode string) string {
	for _, n := range []string{LockName(mode), LegacyLockName(mode)} {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// WheelDest and FileDest are where a wheel and a files entry live in a bundle.
func WheelDest(w string) string { return path.Join("wheels", path.Clean(filepath.ToSlash(w))) }
func FileDest(f FileEntry) string {
	return path.Join("files", path.Clean(filepath.ToSlash(f.Src)))
}

// BundleManifest is _manifest.yaml: Starwhale's fields that restore reads, written by
// build from runtime.yaml and the environment, and nothing that changes between two
// builds of the same content (so version ids stay content-derived). Its bytes are in every
// bundle, hence in every version id: any new field, rename or reorder changes the ids of
// all versions built after it (TestGoldenBundleManifest pins them).
type BundleManifest struct {
	Name        string           `yaml:"name"`
	Environment ManifestEnv      `yaml:"environment"`
	Deps        ManifestDeps     `yaml:"dependencies"`
	Artifacts   ManifestArtifact `yaml:"artifacts"`
	Configs     ManifestConfigs  `yaml:"configs"`
	// BaseImage and Docker are the image a container of the runtime runs on, as Starwhale
	// writes them (dockerize and its server read them).
	BaseImage string         `yaml:"base_image"`
	Docker    ManifestDocker `yaml:"docker"`
	// Version, CreatedAt and Build are set only in an exported .swrt (Starwhale reads them).
	Version   string         `yaml:"version,omitempty"`
	CreatedAt string         `yaml:"created_at,omitempty"`
	Build     map[string]any `yaml:"build,omitempty"`
}

// StarwhaleVersion is the Starwhale release whose formats swcli reads and writes: what a
// manifest gives as environment.lock.starwhale_version and build.sw_version when
// runtime.yaml and the lock name none (Starwhale's restore and dockerize install it).
const StarwhaleVersion = "0.6.15"

// Starwhale's built-in run images (its consts: DEFAULT_IMAGE_REPO, base, the fixed release
// tag; cuda images for environment.cuda).
const (
	starwhaleImageRepo = "docker-registry.starwhale.cn/star-whale"
	starwhaleImageTag  = "0.3.4"
)

type ManifestEnv struct {
	Mode   string      `yaml:"mode"`
	Python string      `yaml:"python"` // major.minor
	Arch   []string    `yaml:"arch"`
	Lock   ManifestLck `yaml:"lock"`
	// AutoLock says the lock files stand for the pip and conda dependencies (Starwhale's
	// auto_lock_dependencies).
	AutoLock bool `yaml:"auto_lock_dependencies"`
}

type ManifestLck struct {
	Files []string `yaml:"files"` // relative to dependencies/
	// PythonVersion is the exact python of the environment that was locked (swcli).
	PythonVersion    string        `yaml:"python_version,omitempty"`
	StarwhaleVersion string        `yaml:"starwhale_version"`
	System           string        `yaml:"system"`
	Shell            ManifestShell `yaml:"shell"`
	// Where the environment was: left empty, so that the same content built from two
	// places is one version (Starwhale writes the build's path; nothing reads it back).
	EnvPrefixPath string `yaml:"env_prefix_path"`
	EnvName       string `yaml:"env_name"`
	EnvUseShell   bool   `yaml:"env_use_shell"`
}

// ManifestShell is the python environment that was locked, as Starwhale describes it.
type ManifestShell struct {
	PythonEnv     string `yaml:"python_env"` // venv | conda
	PythonVersion string `yaml:"python_version"`
	UseConda      bool   `yaml:"use_conda"`
	UseVenv       bool   `yaml:"use_venv"`
}

type ManifestDeps struct {
	RawDeps          []RawDep `yaml:"raw_deps"`
	LocalPackagedEnv bool     `yaml:"local_packaged_env"`
	// Starwhale's flat lists (for its clients up to 0.3), and setup_requires.
	PipPkgs       []string `yaml:"pip_pkgs"`
	CondaPkgs     []string `yaml:"conda_pkgs"`
	PipFiles      []string `yaml:"pip_files"`
	CondaFiles    []string `yaml:"conda_files"`
	SetupRequires []RawDep `yaml:"setup_requires"`
}

// ManifestDocker is Starwhale's docker section.
type ManifestDocker struct {
	CustomRunImage  string        `yaml:"custom_run_image"`
	BuiltinRunImage ManifestImage `yaml:"builtin_run_image"`
}

// ManifestImage is an image in parts.
type ManifestImage struct {
	Fullname string `yaml:"fullname"`
	Name     string `yaml:"name"`
	Repo     string `yaml:"repo"`
	Tag      string `yaml:"tag"`
}

// RawDep is one dependency as Starwhale's manifest lists it: kind and deps.
type RawDep struct {
	Kind string `yaml:"kind"`
	Deps any    `yaml:"deps"`
}

type ManifestArtifact struct {
	RuntimeYAML  string              `yaml:"runtime_yaml"`
	Dependencies []string            `yaml:"dependencies"`
	Wheels       []string            `yaml:"wheels"`
	Files        []map[string]string `yaml:"files"`
}

type ManifestConfigs struct {
	Conda  map[string]any `yaml:"conda"`
	Pip    map[string]any `yaml:"pip"`
	Docker map[string]any `yaml:"docker"`
}

// NewBundleManifest describes a bundle built from ry, locked with python pyFull.
func NewBundleManifest(ry *RuntimeYAML, pyFull string, locked, packaged bool) *BundleManifest {
	m := &BundleManifest{Name: ry.Name}
	m.Environment = ManifestEnv{Mode: ry.Mode, Python: MajorMinorOf(pyFull), Arch: NonNil(ry.Arch), AutoLock: locked}
	if m.Environment.Python == "" {
		m.Environment.Python = ry.Python
	}
	m.Environment.Lock.PythonVersion = pyFull
	m.Environment.Lock.StarwhaleVersion = ry.StarwhaleVersion
	if m.Environment.Lock.StarwhaleVersion == "" {
		m.Environment.Lock.StarwhaleVersion = StarwhaleVersion
	}
	m.Environment.Lock.System = "Linux"
	m.Environment.Lock.Shell = ManifestShell{PythonEnv: ry.Mode, PythonVersion: pyFull, UseConda: ry.Mode == "conda", UseVenv: ry.Mode == "venv"}
	m.Environment.Lock.Files = []string{}
	if locked {
		m.Environment.Lock.Files = []string{strings.TrimPrefix(LockName(ry.Mode), "dependencies/")}
	}
	m.Deps.LocalPackagedEnv = packaged
	m.Deps.RawDeps = []RawDep{}
	m.Deps.PipPkgs, m.Deps.CondaPkgs, m.Deps.PipFiles, m.Deps.CondaFiles = []string{}, []string{}, []string{}, []string{}
	m.Deps.SetupRequires = []RawDep{}
	m.Artifacts = ManifestArtifact{RuntimeYAML: "runtime.yaml", Dependencies: []string{}, Wheels: []string{}, Files: []map[string]string{}}
	for _, d := range ry.Dependencies {
		rd := RawDep{Kind: d.Kind()}
		switch {
		case d.File != "":
			rd.Deps = d.File
			if isPipFile(d.File) {
				m.Deps.PipFiles = append(m.Deps.PipFiles, d.File)
			} else {
				m.Deps.CondaFiles = append(m.Deps.CondaFiles, d.File)
			}
			m.Artifacts.Dependencies = append(m.Artifacts.Dependencies, path.Join("dependencies", path.Clean(filepath.ToSlash(d.File))))
		case d.Pip != nil:
			rd.Deps = d.Pip
			m.Deps.PipPkgs = append(m.Deps.PipPkgs, d.Pip...)
		case d.Conda != nil:
			rd.Deps = d.Conda
			m.Deps.CondaPkgs = append(m.Deps.CondaPkgs, d.Conda...)
		case d.Wheels != nil:
			rd.Deps = d.Wheels
			for _, w := range d.Wheels {
				m.Artifacts.Wheels = append(m.Artifacts.Wheels, WheelDest(w))
			}
		case d.Files != nil:
			var fs []map[string]string
			for _, f := range d.Files {
				e := map[string]string{"src": f.Src, "dest": f.Dest}
				if f.Name != "" {
					e["name"] = f.Name
				}
				fs = append(fs, e)
			}
			rd.Deps = fs
			m.Artifacts.Files = append(m.Artifacts.Files, fs...)
		default:
			rd.Deps = d.Commands
		}
		m.Deps.RawDeps = append(m.Deps.RawDeps, rd)
	}
	if locked {
		m.Artifacts.Dependencies = append(m.Artifacts.Dependencies, LockName(ry.Mode))
	}
	m.Configs.Pip = map[string]any{"index_url": ry.Pip.IndexURL, "extra_index_url": NonNil(ry.Pip.ExtraIndexURL), "trusted_host": NonNil(ry.Pip.TrustedHost)}
	condarc := map[string]any{}
	if ry.Condarc != "" {
		yaml.Unmarshal([]byte(ry.Condarc), &condarc) // re-encoded by the parser: it decodes
	}
	m.Configs.Conda = map[string]any{"channels": ry.CondaChannels, "condarc": condarc}
	m.Configs.Docker = map[string]any{"image": ry.DockerImage}
	m.Docker, m.BaseImage = runImages(ry)
	return m
}

// runImages is the docker section and base_image Starwhale writes for ry: the image
// runtime.yaml names, else its built-in one (base, or cuda for environment.cuda).
func runImages(ry *RuntimeYAML) (ManifestDocker, string) {
	name, tag := "base", starwhaleImageTag
	if ry.CUDA != "" {
		name, tag = "cuda", ry.CUDA
		if ry.CUDNN != "" {
			tag += "-cudnn" + ry.CUDNN
		}
		tag += "-base" + starwhaleImageTag
	}
	full := starwhaleImageRepo + "/" + name + ":" + tag
	d := ManifestDocker{CustomRunImage: ry.DockerImage, BuiltinRunImage: ManifestImage{Fullname: full, Name: name, Repo: starwhaleImageRepo, Tag: tag}}
	if ry.DockerImage != "" {
		return d, ry.DockerImage
	}
	return d, full
}

func NonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Encode is the manifest's YAML.
func (m *BundleManifest) Encode() []byte {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		panic(err) // plain structs of strings, lists and maps always encode
	}
	enc.Close()
	return buf.Bytes()
}

// readBundleManifest reads DIR/_manifest.yaml if the bundle has one (nil if not).
func readBundleManifest(dir string) (*BundleManifest, error) {
	b, err := ReadNoFollow(filepath.Join(dir, ManifestName))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > 4<<20 {
		return nil, errs.Errorf(errs.KindCorrupt, "", "%s: %s is larger than 4 MiB", dir, ManifestName)
	}
	var m BundleManifest
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, errs.Errorf(errs.KindCorrupt, "re-extract the runtime", "%s: %v", filepath.Join(dir, ManifestName), err)
	}
	return &m, nil
}

var versionMMRE = regexp.MustCompile(`^([0-9]+\.[0-9]+)`)

// MajorMinorOf cuts "3.11.7" to "3.11" ("" when v is not a version).
func MajorMinorOf(v string) string {
	if m := versionMMRE.FindStringSubmatch(strings.TrimSpace(v)); m != nil {
		return m[1]
	}
	return ""
}

// TravellingLock drops the lines of a lock that pin files of the build host (Starwhale
// does the same: the bundle carries its wheels, installed after the lock). It returns the
// lock and the names of the packages dropped.
func TravellingLock(lock []byte) ([]byte, []string) {
	var out []string
	var dropped []string
	for _, line := range strings.SplitAfter(string(lock), "\n") {
		t := strings.TrimSpace(line)
		t = strings.TrimPrefix(t, "- ")
		if strings.Contains(t, "@ file:") || strings.HasPrefix(t, "file:") ||
			strings.HasPrefix(t, "/") || strings.HasPrefix(t, "./") || strings.HasPrefix(t, "../") {
			name, _, _ := strings.Cut(t, "@")
			dropped = append(dropped, strings.TrimSpace(name))
			continue
		}
		out = append(out, line)
	}
	return []byte(strings.Join(out, "")), dropped
}

// wheelProject is the normalised project name of a wheel file (PEP 427/503).
func wheelProject(file string) string {
	base := path.Base(filepath.ToSlash(file))
	name, _, _ := strings.Cut(base, "-")
	return normProject(name)
}

// normProject is a project name as PEP 503 compares them: lower case, each run of '-',
// '_' and '.' one '-' (pip's canonicalize_name).
func normProject(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	sep := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '-', '_', '.':
			if !sep {
				b.WriteByte('-')
			}
			sep = true
		default:
			b.WriteByte(c)
			sep = false
		}
	}
	return strings.ToLower(b.String())
}

func DescribeDropped(dropped []string, ry *RuntimeYAML) []string {
	have := map[string]bool{}
	for _, d := range ry.Dependencies {
		for _, w := range d.Wheels {
			have[wheelProject(w)] = true
		}
	}
	var warn []string
	for _, n := range dropped {
		if !have[normProject(n)] {
			warn = append(warn, fmt.Sprintf("%s is installed from a local file that the bundle does not carry: it is left out of the lock; name its wheel under dependencies: - wheels: in runtime.yaml", n))
		}
	}
	return warn
}
