package formats

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/errs"
)

// RuntimeYAML is runtime.yaml as Starwhale reads it (its current schema and the 2022 one:
// SPEC: runtime.yaml; README: "runtime.yaml as Starwhale reads it").
type RuntimeYAML struct {
	APIVersion  string
	Name        string // lowercased, as Starwhale does
	Mode        string // venv | conda
	Python      string // major.minor; "" = the environment's own
	Arch        []string
	OS          string
	CUDA, CUDNN string
	// StarwhaleVersion is environment.starwhale_version: the Starwhale release the runtime
	// asks for (recorded as the manifest's environment.lock.starwhale_version).
	StarwhaleVersion string
	DockerImage      string // environment.docker.image, configs.docker.image or the 2022 base_image
	Dependencies     []Dependency
	Pip              PipConfig
	// CondaChannels are configs.conda.channels (Starwhale's default: conda-forge).
	CondaChannels []string
	// Condarc is configs.conda.condarc, re-encoded as YAML ("" when absent).
	Condarc  string
	HookPre  string
	HookPost string
	Warnings []string // unknown keys, kept and ignored
}

// Dependency is one item of dependencies, in order: exactly one of its fields is set.
type Dependency struct {
	File     string      // a pip requirements (.txt/.in) or conda env (.yaml/.yml) file
	Pip      []string    // pip specs
	Conda    []string    // conda packages
	Wheels   []string    // wheel files
	Files    []FileEntry // files copied into the bundle and placed at restore
	Commands []string    // shell commands, run at restore only when allowed
}

// Kind is the dependency's kind as Starwhale's manifest names it.
func (d Dependency) Kind() string {
	switch {
	case d.File != "" && isPipFile(d.File):
		return "pip_req_file"
	case d.File != "":
		return "conda_env_file"
	case d.Pip != nil:
		return "pip_pkg"
	case d.Conda != nil:
		return "conda_pkg"
	case d.Wheels != nil:
		return "wheel"
	case d.Files != nil:
		return "native_file"
	}
	return "command"
}

func isPipFile(p string) bool   { return strings.HasSuffix(p, ".txt") || strings.HasSuffix(p, ".in") }
func isCondaFile(p string) bool { return strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml") }

// FileEntry is an item of a files dependency: Src in the workdir (a file or a directory),
// Dest where restore places it, relative to the environment's root.
type FileEntry struct{ Name, Src, Dest string }

// PipConfig is configs.pip.
type PipConfig struct {
	IndexURL      string
	ExtraIndexURL []string
	TrustedHost   []string
}

// Starwhale's supported values (client/starwhale/core/runtime/model.py).
var (
	SupportedPythons = []string{"3.7", "3.8", "3.9", "3.10", "3.11"}
	supportedCUDA    = []string{"11.3", "11.4", "11.5", "11.6", "11.7"}
	cudnnForCUDA     = map[string][]string{"8": {"11.3", "11.4", "11.5", "11.6"}}
)

// DefaultOS is the one environment.os Starwhale supports.
const DefaultOS = "ubuntu:20.04"

// RuntimeAPIVersion is the api_version Starwhale reads.
const RuntimeAPIVersion = "1.1"

// NormalizePython is Starwhale's reading of a python version: the text (or, for an unquoted
// number, Python's str() of it: 3.10 reads as "3.1") cut to major.minor, which must be one
// Starwhale supports.
func NormalizePython(v string) (string, error) {
	parts := strings.Split(strings.TrimSpace(v), ".")
	if len(parts) > 2 {
		parts = parts[:2]
	}
	mm := strings.Join(parts, ".")
	if !slices.Contains(SupportedPythons, mm) {
		return mm, fmt.Errorf("python %q is not supported (Starwhale supports %s)", mm, strings.Join(SupportedPythons, ", "))
	}
	return mm, nil
}

// pyStr is Python's str() of a YAML scalar as PyYAML loads it: floats lose trailing zeros.
func pyStr(n *yaml.Node) string {
	if n.Tag == "!!float" {
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			s := strconv.FormatFloat(f, 'f', -1, 64)
			if !strings.Contains(s, ".") {
				s += ".0"
			}
			return s
		}
	}
	return n.Value
}

// yamlErr is a runtime.yaml error naming file, line and key.
func yamlErr(file string, n *yaml.Node, key, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &errs.Error{Kind: errs.KindInvalid, Err: fmt.Errorf("%s:%d: %s: %s", file, line, key, fmt.Sprintf(format, args...)),
		Hint: "swcli runtime create -n NAME DIR writes a valid runtime.yaml to start from"}
}

// MaxRuntimeYAML bounds a runtime.yaml (Starwhale's are a few KB).
const MaxRuntimeYAML = 1 << 20

// LoadRuntimeYAML reads and validates path; files named in dependencies are checked
// relative to workdir (not at all when workdir is "").
func LoadRuntimeYAML(path, workdir string) (*RuntimeYAML, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, errs.Errorf(errs.KindNotFound, "swcli runtime create -n NAME "+filepath.Dir(path)+" (makes one)", "%s: %v", path, UnwrapPathErr(err))
	}
	defer f.Close()
	raw, err := ReadLimited(f, path, MaxRuntimeYAML)
	if err != nil {
		return nil, nil, err
	}
	ry, err := ParseRuntimeYAML(path, raw, workdir)
	return ry, raw, err
}

// ParseRuntimeYAML validates raw (read from path) as Starwhale does, with errors naming
// file, line and key.
func ParseRuntimeYAML(path string, raw []byte, workdir string) (*RuntimeYAML, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, &errs.Error{Kind: errs.KindInvalid, Err: fmt.Errorf("%s: %v", path, err), Hint: "fix the YAML syntax"}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, yamlErr(path, &doc, "(top)", "must be a mapping")
	}
	if err := noAliases(path, &doc); err != nil {
		return nil, err
	}
	ry := &RuntimeYAML{Mode: "venv", APIVersion: RuntimeAPIVersion, OS: DefaultOS, Arch: []string{},
		CondaChannels: []string{"conda-forge"}}
	top := doc.Content[0]
	var nameNode, pythonNode, legacyPython, apiNode *yaml.Node
	var legacyPipReq string
	var legacyPipReqNode *yaml.Node
	str := func(where string, v *yaml.Node, dst *string) error {
		x, err := scalar(path, where, v)
		*dst = x
		return err
	}
	warn := func(n *yaml.Node, key string) {
		ry.Warnings = append(ry.Warnings, fmt.Sprintf("%s:%d: unknown key %s ignored", path, n.Line, key))
	}
	err := eachKey(path, "(top)", top, func(k string, kn, v *yaml.Node) error {
		switch k {
		case "api_version":
			apiNode = v
			if isNull(v) {
				return nil
			}
			if v.Kind != yaml.ScalarNode {
				return yamlErr(path, v, "api_version", "must be a single value")
			}
			ry.APIVersion = pyStr(v)
		case "name":
			nameNode = v
			return str("name", v, &ry.Name)
		case "mode":
			if err := str("mode", v, &ry.Mode); err != nil {
				return err
			}
			if ry.Mode == "" {
				ry.Mode = "venv"
			}
			if ry.Mode != "venv" && ry.Mode != "conda" {
				return yamlErr(path, v, "mode", "unknown mode %q (venv or conda)", ry.Mode)
			}
		case "python_version": // 2022: environment.python before it existed
			legacyPython = v
		case "pip_req": // 2022: one requirements file, appended to dependencies
			legacyPipReqNode = v
			return str("pip_req", v, &legacyPipReq)
		case "base_image": // 2022: the docker image
			return str("base_image", v, &ry.DockerImage)
		case "environment":
			return eachKey(path, "environment", v, func(k string, kn, v *yaml.Node) error {
				switch k {
				case "python":
					pythonNode = v
				case "arch":
					a, err := list(path, "environment.arch", v, true)
					if a != nil {
						ry.Arch = a
					}
					return err
				case "os":
					if err := str("environment.os", v, &ry.OS); err != nil {
						return err
					}
					ry.OS = strings.ToLower(ry.OS)
					if ry.OS != DefaultOS {
						return yamlErr(path, v, "environment.os", "%q is not supported (Starwhale supports %s)", ry.OS, DefaultOS)
					}
				case "starwhale_version":
					return str("environment.starwhale_version", v, &ry.StarwhaleVersion)
				case "cuda":
					return str("environment.cuda", v, &ry.CUDA)
				case "cudnn":
					return str("environment.cudnn", v, &ry.CUDNN)
				case "docker":
					return eachKey(path, "environment.docker", v, func(k string, kn, v *yaml.Node) error {
						if k == "image" {
							return str("environment.docker.image", v, &ry.DockerImage)
						}
						warn(kn, "environment.docker."+k)
						return nil
					})
				default:
					warn(kn, "environment."+k)
				}
				return nil
			})
		case "dependencies":
			if isNull(v) {
				return nil
			}
			if v.Kind != yaml.SequenceNode {
				return yamlErr(path, v, "dependencies", "must be a list")
			}
			for i, item := range v.Content {
				ds, err := parseDependency(path, workdir, fmt.Sprintf("dependencies[%d]", i), item, warn)
				if err != nil {
					return err
				}
				ry.Dependencies = append(ry.Dependencies, ds...)
			}
		case "configs":
			return eachKey(path, "configs", v, func(k string, kn, v *yaml.Node) error {
				switch k {
				case "pip":
					return eachKey(path, "configs.pip", v, func(k string, kn, v *yaml.Node) error {
						var err error
						switch k {
						case "index_url":
							err = str("configs.pip.index_url", v, &ry.Pip.IndexURL)
						case "extra_index_url":
							ry.Pip.ExtraIndexURL, err = list(path, "configs.pip.extra_index_url", v, true)
						case "trusted_host":
							ry.Pip.TrustedHost, err = list(path, "configs.pip.trusted_host", v, true)
						default:
							warn(kn, "configs.pip."+k)
						}
						return err
					})
				case "conda":
					return eachKey(path, "configs.conda", v, func(k string, kn, v *yaml.Node) error {
						switch k {
						case "channels":
							c, err := list(path, "configs.conda.channels", v, false)
							if len(c) > 0 {
								ry.CondaChannels = c
							}
							return err
						case "condarc":
							if isNull(v) {
								return nil
							}
							if v.Kind != yaml.MappingNode {
								return yamlErr(path, v, "configs.conda.condarc", "must be a mapping")
							}
							var m map[string]any
							err := v.Decode(&m)
							b, err2 := yaml.Marshal(m)
							if err = errors.Join(err, err2); err != nil {
								return yamlErr(path, v, "configs.conda.condarc", "%v", err)
							}
							if len(v.Content) > 0 {
								ry.Condarc = string(b)
							}
						default:
							warn(kn, "configs.conda."+k)
						}
						return nil
					})
				case "docker":
					return eachKey(path, "configs.docker", v, func(k string, kn, v *yaml.Node) error {
						if k == "image" {
							var img string
							err := str("configs.docker.image", v, &img)
							if ry.DockerImage == "" {
								ry.DockerImage = img
							}
							return err
						}
						warn(kn, "configs.docker."+k)
						return nil
					})
				default:
					warn(kn, "configs."+k)
				}
				return nil
			})
		case "hooks":
			return eachKey(path, "hooks", v, func(k string, kn, v *yaml.Node) error {
				switch k {
				case "pre":
					return str("hooks.pre", v, &ry.HookPre)
				case "post":
					return str("hooks.post", v, &ry.HookPost)
				}
				warn(kn, "hooks."+k)
				return nil
			})
		default:
			warn(kn, k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ry.APIVersion != RuntimeAPIVersion {
		return nil, yamlErr(path, apiNode, "api_version", "%q is not supported (Starwhale reads %s)", ry.APIVersion, RuntimeAPIVersion)
	}
	ry.Name = strings.ToLower(strings.TrimSpace(ry.Name))
	if ry.Name == "" {
		return nil, yamlErr(path, top, "name", "missing")
	}
	if !ledger.ValidName(ry.Name) {
		return nil, yamlErr(path, nameNode, "name", "invalid runtime name %q (letters, digits, _ . -; starts with a letter or _; 1-80 characters)", ry.Name)
	}
	if pythonNode == nil || isNull(pythonNode) || pythonNode.Value == "" {
		pythonNode = legacyPython
	}
	if pythonNode != nil && !isNull(pythonNode) && pythonNode.Value != "" {
		where := "environment.python"
		if pythonNode == legacyPython {
			where = "python_version"
		}
		if pythonNode.Kind != yaml.ScalarNode {
			return nil, yamlErr(path, pythonNode, where, "must be a single value")
		}
		mm, err := NormalizePython(pyStr(pythonNode))
		if err != nil {
			hint := ""
			if pythonNode.Tag == "!!float" {
				hint = " (unquoted numbers are read as numbers: write \"" + pythonNode.Value + "\")"
			}
			return nil, yamlErr(path, pythonNode, where, "%v%s", err, hint)
		}
		ry.Python = mm
	}
	if ry.CUDA != "" && !slices.Contains(supportedCUDA, ry.CUDA) {
		return nil, yamlErr(path, top, "environment.cuda", "%q is not supported (Starwhale supports %s)", ry.CUDA, strings.Join(supportedCUDA, ", "))
	}
	if ry.CUDNN != "" {
		cudas, ok := cudnnForCUDA[ry.CUDNN]
		switch {
		case !ok:
			return nil, yamlErr(path, top, "environment.cudnn", "%q is not supported (Starwhale supports 8)", ry.CUDNN)
		case ry.CUDA == "":
			return nil, yamlErr(path, top, "environment.cudnn", "needs environment.cuda")
		case !slices.Contains(cudas, ry.CUDA):
			return nil, yamlErr(path, top, "environment.cudnn", "cudnn %s does not support cuda %s", ry.CUDNN, ry.CUDA)
		}
	}
	if legacyPipReq != "" && workdir != "" && !filepath.IsAbs(legacyPipReq) {
		// The 2022 create wrote pip_req: requirements.txt whether or not the file existed,
		// and Starwhale then used it only if it did.
		if _, err := os.Stat(filepath.Join(workdir, legacyPipReq)); errors.Is(err, os.ErrNotExist) {
			ry.Warnings = append(ry.Warnings, fmt.Sprintf("%s:%d: pip_req %s does not exist in %s: ignored", path, legacyPipReqNode.Line, legacyPipReq, workdir))
			legacyPipReq = ""
		}
	}
	if legacyPipReq != "" {
		ds, err := parseDependency(path, workdir, "pip_req", legacyPipReqNode, warn)
		if err != nil {
			return nil, err
		}
		ry.Dependencies = append(ry.Dependencies, ds...)
	}
	return ry, nil
}

// eachKey calls fn for each key of the mapping n (at key where, in file path): a null
// value is an empty mapping; anything else that is not a mapping, and a key given twice,
// is an error naming file, line and key.
func eachKey(path, where string, n *yaml.Node, fn func(k string, kn, v *yaml.Node) error) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return yamlErr(path, n, where, "must be a mapping")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			return yamlErr(path, k, where, "keys must be plain strings")
		}
		if seen[k.Value] {
			return yamlErr(path, k, join(where, k.Value), "given twice")
		}
		seen[k.Value] = true
		if err := fn(k.Value, k, n.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func join(where, k string) string {
	if where == "" || where == "(top)" {
		return k
	}
	return where + "." + k
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// scalar returns a scalar's value; anything else is an error.
func scalar(path, where string, n *yaml.Node) (string, error) {
	if isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", yamlErr(path, n, where, "must be a single value")
	}
	return n.Value, nil
}

// list returns a sequence of scalars; with orScalar one scalar counts as a list of one
// (Starwhale takes pip's index settings either way).
func list(path, where string, n *yaml.Node, orScalar bool) ([]string, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind == yaml.ScalarNode && orScalar {
		if n.Value == "" {
			return nil, nil
		}
		return []string{n.Value}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, yamlErr(path, n, where, "must be a list")
	}
	var out []string
	for i, c := range n.Content {
		v, err := scalar(path, fmt.Sprintf("%s[%d]", where, i), c)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// noAliases refuses anchors and aliases anywhere in the document: a runtime.yaml is small,
// and aliases make it say one thing in two places (or expand without bound).
func noAliases(path string, n *yaml.Node) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return yamlErr(path, n, "(anchor)", "YAML anchors and aliases are not allowed")
	}
	for _, c := range n.Content {
		if err := noAliases(path, c); err != nil {
			return err
		}
	}
	return nil
}

func strInto(path, where string, n *yaml.Node, dst *string) error {
	v, err := scalar(path, where, n)
	*dst = v
	return err
}

// checkDepPath checks a path runtime.yaml names: relative, and (in a workdir) inside the
// workdir once ".." and symbolic links are resolved, and a regular file (or, where dirOK,
// a directory). In a bundle (workdir "") only the form is checked.
func checkDepPath(path, workdir, rel string, node *yaml.Node, what string, dirOK bool) error {
	if rel == "" {
		return yamlErr(path, node, what, "empty path")
	}
	if filepath.IsAbs(rel) {
		return yamlErr(path, node, what, "%s is absolute: paths are relative to the workdir", rel)
	}
	if workdir == "" {
		if !filepath.IsLocal(rel) {
			return yamlErr(path, node, what, "%s leaves the bundle", rel)
		}
		return nil
	}
	root, err := filepath.EvalSymlinks(workdir)
	if err != nil {
		return yamlErr(path, node, what, "workdir %s: %v", workdir, UnwrapPathErr(err))
	}
	full, err := filepath.EvalSymlinks(filepath.Join(workdir, rel))
	if err != nil {
		return yamlErr(path, node, what, "%s does not exist in %s", rel, workdir)
	}
	if r, err := filepath.Rel(root, full); err != nil || !filepath.IsLocal(r) {
		return yamlErr(path, node, what, "%s is outside the workdir %s", rel, workdir)
	}
	fi, err := os.Stat(full)
	if err != nil {
		return yamlErr(path, node, what, "%s: %v", rel, UnwrapPathErr(err))
	}
	if !fi.Mode().IsRegular() && !(dirOK && fi.IsDir()) {
		kind := "not a regular file"
		if fi.IsDir() {
			kind = "a directory"
		}
		return yamlErr(path, node, what, "%s is %s", rel, kind)
	}
	return nil
}

// RuntimeYAMLTemplate is what create writes.
func RuntimeYAMLTemplate(name, mode, python string) string {
	return fmt.Sprintf(`api_version: "1.1"
name: %s
mode: %s
environment:
  python: "%s"
  arch: noarch
  os: ubuntu:20.04
dependencies: []
configs:
  pip: {index_url: "", extra_index_url: [], trusted_host: []}
  conda: {channels: [conda-forge]}
`, name, mode, python)
}

// parseDependency reads one item of dependencies (key names it in errors): a file name, or
// a mapping whose every key is a dependency kind, in order.
// Keys Starwhale ignores inside an item (another kind, another key of a files entry) are
// warnings, as they are not errors there.
func parseDependency(path, workdir, key string, n *yaml.Node, warn func(n *yaml.Node, key string)) ([]Dependency, error) {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		if err := checkDepPath(path, workdir, n.Value, n, key, false); err != nil {
			return nil, err
		}
		if !isPipFile(n.Value) && !isCondaFile(n.Value) {
			return nil, yamlErr(path, n, key, "%q is neither a pip requirements file (.txt, .in) nor a conda env file (.yaml, .yml)", n.Value)
		}
		return []Dependency{{File: n.Value}}, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, yamlErr(path, n, key, "must be a file name or a mapping")
	}
	var out []Dependency
	err := eachKey(path, key, n, func(k string, kn, v *yaml.Node) error {
		where := key + "." + k
		var d Dependency
		var err error
		switch k {
		case "pip":
			d.Pip, err = strictList(path, where, v)
		case "conda":
			d.Conda, err = strictList(path, where, v)
		case "commands":
			d.Commands, err = strictList(path, where, v)
		case "wheels":
			if d.Wheels, err = strictList(path, where, v); err != nil {
				return err
			}
			for j, w := range v.Content {
				wk := fmt.Sprintf("%s[%d]", where, j)
				if !strings.HasSuffix(w.Value, ".whl") {
					return yamlErr(path, w, wk, "%q is not a wheel (.whl)", w.Value)
				}
				if err := checkDepPath(path, workdir, w.Value, w, wk, false); err != nil {
					return err
				}
			}
		case "files":
			if v.Kind != yaml.SequenceNode {
				return yamlErr(path, v, where, "must be a list of {src, dest}")
			}
			d.Files = []FileEntry{}
			for j, f := range v.Content {
				fe, err := parseFileEntry(path, workdir, fmt.Sprintf("%s[%d]", where, j), f, warn)
				if err != nil {
					return err
				}
				d.Files = append(d.Files, fe)
			}
		default:
			warn(kn, where+" (a dependency kind: pip, conda, wheels, files, commands)")
			return nil
		}
		if err == nil {
			out = append(out, d)
		}
		return err
	})
	return out, err
}

// parseFileEntry reads {name, src, dest}: both src and dest are required (as in Starwhale);
// dest is normalised and must stay inside the environment it is placed in.
func parseFileEntry(file, workdir, fk string, f *yaml.Node, warn func(n *yaml.Node, key string)) (FileEntry, error) {
	var fe FileEntry
	if err := eachKey(file, fk, f, func(k string, kn, v *yaml.Node) error {
		switch k {
		case "name":
			return strInto(file, fk+".name", v, &fe.Name)
		case "src":
			return strInto(file, fk+".src", v, &fe.Src)
		case "dest":
			return strInto(file, fk+".dest", v, &fe.Dest)
		}
		warn(kn, fk+"."+k+" (a files entry has name, src, dest)")
		return nil
	}); err != nil {
		return fe, err
	}
	if f.Kind != yaml.MappingNode {
		return fe, yamlErr(file, f, fk, "must be a mapping {src, dest}")
	}
	if fe.Src == "" || fe.Dest == "" {
		return fe, yamlErr(file, f, fk, "needs both src and dest")
	}
	if err := checkDepPath(file, workdir, fe.Src, f, fk+".src", true); err != nil {
		return fe, err
	}
	d := path.Clean(strings.ReplaceAll(fe.Dest, "\\", "/"))
	if strings.HasPrefix(fe.Dest, "/") || !filepath.IsLocal(d) {
		return fe, yamlErr(file, f, fk+".dest", "%q must be a relative path that stays inside the environment", fe.Dest)
	}
	fe.Dest = d
	fe.Src = path.Clean(fe.Src)
	return fe, nil
}

// strictList is a sequence of scalars, as Starwhale wants for pip, conda, wheels and commands.
func strictList(path, where string, n *yaml.Node) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, yamlErr(path, n, where, "must be a list")
	}
	out := []string{}
	for i, c := range n.Content {
		if c.Kind != yaml.ScalarNode || isNull(c) {
			return nil, yamlErr(path, c, fmt.Sprintf("%s[%d]", where, i), "must be a string")
		}
		out = append(out, c.Value)
	}
	return out, nil
}
