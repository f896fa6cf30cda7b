package ops

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/swcli/swcli/ledger"
	"gopkg.in/yaml.v3"
)

// RuntimeYAML is runtime.yaml (SPEC: runtime.yaml).
type RuntimeYAML struct {
	APIVersion    string
	Name          string
	Mode          string // venv | conda
	Python        string // major.minor
	Arch, OS      string
	Dependencies  []Dependency
	Pip           PipConfig
	CondaChannels []string
	Warnings      []string // unknown keys, kept and ignored
}

// Dependency is one item of dependencies, in order.
type Dependency struct {
	File   string      // a requirements (.txt/.in) or conda env (.yaml/.yml) file
	Pip    []string    // pip specs
	Conda  []string    // conda packages
	Wheels []string    // wheel files
	Files  []FileEntry // files copied into the bundle
}

// FileEntry is an item of a files dependency.
type FileEntry struct{ Name, Src, Dest string }

// PipConfig is configs.pip.
type PipConfig struct {
	IndexURL      string
	ExtraIndexURL []string
	TrustedHost   []string
}

var pythonRE = regexp.MustCompile(`^3\.[0-9]{1,2}$`)

// yamlErr is a runtime.yaml error naming file, line and key.
func yamlErr(file string, n *yaml.Node, key, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{Kind: KindInvalid, Err: fmt.Errorf("%s:%d: %s: %s", file, line, key, fmt.Sprintf(format, args...)),
		Hint: "see SPEC's runtime.yaml section, or 'swcli runtime create' for a valid one"}
}

// LoadRuntimeYAML reads and validates path; files named in dependencies are checked
// relative to workdir (not at all when workdir is "").
func LoadRuntimeYAML(path, workdir string) (*RuntimeYAML, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, Errorf(KindNotFound, "run 'swcli runtime create' first, or pass -f", "runtime.yaml: %v", unwrapPathErr(err))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, nil, &Error{Kind: KindInvalid, Err: fmt.Errorf("%s: %v", path, err), Hint: "fix the YAML syntax"}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil, yamlErr(path, &doc, "(top)", "must be a mapping")
	}
	if err := noAliases(path, &doc); err != nil {
		return nil, nil, err
	}
	ry := &RuntimeYAML{Mode: "venv", Arch: "noarch"}
	top := doc.Content[0]
	var nameNode *yaml.Node
	str := func(where string, v *yaml.Node, dst *string) error {
		x, err := scalar(path, where, v)
		*dst = x
		return err
	}
	err = eachKey(path, "(top)", top, func(k string, kn, v *yaml.Node) error {
		switch k {
		case "api_version":
			return str("api_version", v, &ry.APIVersion)
		case "name":
			nameNode = kn
			return str("name", v, &ry.Name)
		case "mode":
			if err := str("mode", v, &ry.Mode); err != nil {
				return err
			}
			if ry.Mode != "venv" && ry.Mode != "conda" {
				return yamlErr(path, v, "mode", "unknown mode %q (venv or conda)", ry.Mode)
			}
		case "environment":
			return eachKey(path, "environment", v, func(k string, _, v *yaml.Node) error {
				switch k {
				case "python":
					if err := str("environment.python", v, &ry.Python); err != nil {
						return err
					}
					if !pythonRE.MatchString(ry.Python) {
						return yamlErr(path, v, "environment.python", "malformed python version %q (major.minor, e.g. \"3.11\")", ry.Python)
					}
				case "arch":
					return str("environment.arch", v, &ry.Arch)
				case "os":
					return str("environment.os", v, &ry.OS)
				default:
					ry.Warnings = append(ry.Warnings, fmt.Sprintf("%s:%d: unknown key environment.%s ignored", path, v.Line, k))
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
				d, err := parseDependency(path, workdir, i, item)
				if err != nil {
					return err
				}
				ry.Dependencies = append(ry.Dependencies, d)
			}
		case "configs":
			return eachKey(path, "configs", v, func(k string, _, v *yaml.Node) error {
				switch k {
				case "pip":
					return eachKey(path, "configs.pip", v, func(k string, _, v *yaml.Node) error {
						var err error
						switch k {
						case "index_url":
							err = str("configs.pip.index_url", v, &ry.Pip.IndexURL)
						case "extra_index_url":
							ry.Pip.ExtraIndexURL, err = list(path, "configs.pip.extra_index_url", v, true)
						case "trusted_host":
							ry.Pip.TrustedHost, err = list(path, "configs.pip.trusted_host", v, true)
						default:
							ry.Warnings = append(ry.Warnings, fmt.Sprintf("%s:%d: unknown key configs.pip.%s ignored", path, v.Line, k))
						}
						return err
					})
				case "conda":
					return eachKey(path, "configs.conda", v, func(k string, _, v *yaml.Node) error {
						var err error
						if k == "channels" {
							ry.CondaChannels, err = list(path, "configs.conda.channels", v, false)
						} else {
							ry.Warnings = append(ry.Warnings, fmt.Sprintf("%s:%d: unknown key configs.conda.%s ignored", path, v.Line, k))
						}
						return err
					})
				default:
					ry.Warnings = append(ry.Warnings, fmt.Sprintf("%s:%d: unknown key configs.%s ignored", path, v.Line, k))
				}
				return nil
			})
		default:
			ry.Warnings = append(ry.Warnings, fmt.Sprintf("%s:%d: unknown key %s ignored", path, kn.Line, k))
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if ry.Name == "" {
		return nil, nil, yamlErr(path, top, "name", "missing")
	}
	if !ledger.ValidName(ry.Name) {
		return nil, nil, yamlErr(path, nameNode, "name", "invalid runtime name %q", ry.Name)
	}
	return ry, raw, nil
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

func parseDependency(path, workdir string, i int, n *yaml.Node) (Dependency, error) {
	var d Dependency
	key := fmt.Sprintf("dependencies[%d]", i)
	switch n.Kind {
	case yaml.ScalarNode:
		d.File = n.Value
		return d, checkDepPath(path, workdir, n.Value, n, key, false)
	case yaml.MappingNode:
		err := eachKey(path, key, n, func(k string, _, v *yaml.Node) error {
			var err error
			switch k {
			case "pip":
				d.Pip, err = list(path, key+".pip", v, false)
			case "conda":
				d.Conda, err = list(path, key+".conda", v, false)
			case "wheels":
				if d.Wheels, err = list(path, key+".wheels", v, false); err != nil {
					return err
				}
				for j, w := range v.Content {
					if err := checkDepPath(path, workdir, w.Value, w, fmt.Sprintf("%s.wheels[%d]", key, j), false); err != nil {
						return err
					}
				}
			case "files":
				if isNull(v) {
					return nil
				}
				if v.Kind != yaml.SequenceNode {
					return yamlErr(path, v, key+".files", "must be a list")
				}
				for j, f := range v.Content {
					fk := fmt.Sprintf("%s.files[%d]", key, j)
					var fe FileEntry
					if err := eachKey(path, fk, f, func(k string, _, v *yaml.Node) error {
						switch k {
						case "name":
							return strInto(path, fk+".name", v, &fe.Name)
						case "src":
							return strInto(path, fk+".src", v, &fe.Src)
						case "dest":
							return strInto(path, fk+".dest", v, &fe.Dest)
						}
						return yamlErr(path, v, fk+"."+k, "unknown key (name, src, dest)")
					}); err != nil {
						return err
					}
					if err := checkDepPath(path, workdir, fe.Src, f, fk+".src", true); err != nil {
						return err
					}
					if fe.Dest == "" {
						fe.Dest = filepath.Base(fe.Src)
					}
					if strings.HasPrefix(fe.Dest, "/") || strings.Contains(fe.Dest, "..") {
						return yamlErr(path, f, fk+".dest", "%q must be a relative path inside the bundle", fe.Dest)
					}
					d.Files = append(d.Files, fe)
				}
			default:
				return yamlErr(path, v, key, "unknown dependency kind %q (pip, conda, wheels, files)", k)
			}
			return err
		})
		return d, err
	}
	return d, yamlErr(path, n, key, "must be a file name or a mapping")
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
		return yamlErr(path, node, what, "workdir %s: %v", workdir, unwrapPathErr(err))
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
		return yamlErr(path, node, what, "%s: %v", rel, unwrapPathErr(err))
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

// runtimeYAMLTemplate is what create writes.
func runtimeYAMLTemplate(name, mode, python string) string {
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
