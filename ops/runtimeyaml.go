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
	ry := &RuntimeYAML{Mode: "venv", Arch: "noarch"}
	top := doc.Content[0]
	var nameNode *yaml.Node
	err = eachKey(top, func(k string, kn, v *yaml.Node) error {
		switch k {
		case "api_version":
			ry.APIVersion = v.Value
		case "name":
			ry.Name, nameNode = v.Value, kn
		case "mode":
			ry.Mode = v.Value
			if v.Value != "venv" && v.Value != "conda" {
				return yamlErr(path, v, "mode", "unknown mode %q (venv or conda)", v.Value)
			}
		case "environment":
			return eachKey(v, func(k string, _, v *yaml.Node) error {
				switch k {
				case "python":
					if !pythonRE.MatchString(v.Value) {
						return yamlErr(path, v, "environment.python", "malformed python version %q (major.minor, e.g. \"3.11\")", v.Value)
					}
					ry.Python = v.Value
				case "arch":
					ry.Arch = v.Value
				case "os":
					ry.OS = v.Value
				default:
					ry.Warnings = append(ry.Warnings, fmt.Sprintf("%s:%d: unknown key environment.%s ignored", path, v.Line, k))
				}
				return nil
			})
		case "dependencies":
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
			return eachKey(v, func(k string, _, v *yaml.Node) error {
				switch k {
				case "pip":
					return eachKey(v, func(k string, _, v *yaml.Node) error {
						switch k {
						case "index_url":
							ry.Pip.IndexURL = v.Value
						case "extra_index_url":
							ry.Pip.ExtraIndexURL = stringsOf(v)
						case "trusted_host":
							ry.Pip.TrustedHost = stringsOf(v)
						}
						return nil
					})
				case "conda":
					return eachKey(v, func(k string, _, v *yaml.Node) error {
						if k == "channels" {
							ry.CondaChannels = stringsOf(v)
						}
						return nil
					})
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

func eachKey(n *yaml.Node, fn func(k string, kn, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if err := fn(n.Content[i].Value, n.Content[i], n.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func stringsOf(n *yaml.Node) []string {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "" {
			return nil
		}
		return []string{n.Value}
	}
	var out []string
	for _, c := range n.Content {
		out = append(out, c.Value)
	}
	return out
}

func parseDependency(path, workdir string, i int, n *yaml.Node) (Dependency, error) {
	var d Dependency
	key := fmt.Sprintf("dependencies[%d]", i)
	exists := func(rel string, node *yaml.Node, what string) error {
		if rel == "" {
			return yamlErr(path, node, what, "empty path")
		}
		if workdir == "" { // a bundle: its files were checked at build
			return nil
		}
		if _, err := os.Stat(filepath.Join(workdir, rel)); err != nil {
			return yamlErr(path, node, what, "%s does not exist in %s", rel, workdir)
		}
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		d.File = n.Value
		return d, exists(n.Value, n, key)
	case yaml.MappingNode:
		err := eachKey(n, func(k string, _, v *yaml.Node) error {
			switch k {
			case "pip":
				d.Pip = stringsOf(v)
			case "conda":
				d.Conda = stringsOf(v)
			case "wheels":
				d.Wheels = stringsOf(v)
				for j, w := range v.Content {
					if err := exists(w.Value, w, fmt.Sprintf("%s.wheels[%d]", key, j)); err != nil {
						return err
					}
				}
			case "files":
				for j, f := range v.Content {
					var fe FileEntry
					eachKey(f, func(k string, _, v *yaml.Node) error {
						switch k {
						case "name":
							fe.Name = v.Value
						case "src":
							fe.Src = v.Value
						case "dest":
							fe.Dest = v.Value
						}
						return nil
					})
					fk := fmt.Sprintf("%s.files[%d]", key, j)
					if err := exists(fe.Src, f, fk+".src"); err != nil {
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
			return nil
		})
		return d, err
	}
	return d, yamlErr(path, n, key, "must be a file name or a mapping")
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
