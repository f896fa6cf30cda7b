package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/swcli/swcli/ops"
)

// CompletionCmd prints a completion script generated from the grammar itself.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

type compNode struct {
	path     string   // "runtime build"
	words    []string // subcommand names and aliases
	flags    []string // --long and -s forms
	children map[string]string
}

func collect(n *kong.Node, path string, out map[string]*compNode) {
	cn := &compNode{path: path, children: map[string]string{}}
	for _, f := range n.Flags {
		if f.Hidden {
			continue
		}
		cn.flags = append(cn.flags, "--"+f.Name)
		if f.Short != 0 {
			cn.flags = append(cn.flags, "-"+string(f.Short))
		}
	}
	for _, c := range n.Children {
		if c.Hidden || c.Type != kong.CommandNode {
			continue
		}
		child := strings.TrimSpace(path + " " + c.Name)
		for _, w := range append([]string{c.Name}, c.Aliases...) {
			cn.words = append(cn.words, w)
			cn.children[w] = child
		}
		collect(c, child, out)
	}
	sort.Strings(cn.words)
	out[path] = cn
}

// transitions calls fn for every "path|word" that leads from a command path to a child, in
// order: what the scripts use to follow the words typed so far.
func transitions(nodes map[string]*compNode, paths []string, fn func(key, child string)) {
	for _, p := range paths {
		n := nodes[p]
		ws := make([]string, 0, len(n.children))
		for w := range n.children {
			ws = append(ws, w)
		}
		sort.Strings(ws)
		for _, w := range ws {
			fn(p+"|"+w, n.children[w])
		}
	}
}

// Run prints the script.
func (c *CompletionCmd) Run(e *env, k *kong.Context) error {
	nodes := map[string]*compNode{}
	collect(k.Model.Node, "", nodes)
	globals := nodes[""].flags
	var paths []string
	for p := range nodes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	switch c.Shell {
	case "bash", "zsh":
		if c.Shell == "zsh" {
			b.WriteString("autoload -U +X bashcompinit && bashcompinit\n")
		}
		b.WriteString("# swcli completion: source this file, or put it in your completions directory.\n_swcli_next() {\n  case \"$1|$2\" in\n")
		transitions(nodes, paths, func(key, child string) { fmt.Fprintf(&b, "    %q) echo %q ;;\n", key, child) })
		b.WriteString("    *) echo \"$1\" ;;\n  esac\n}\n_swcli_words() {\n  case \"$1\" in\n")
		for _, p := range paths {
			n := nodes[p]
			words := append(append([]string{}, n.words...), n.flags...)
			if p != "" {
				words = append(words, globals...)
			}
			fmt.Fprintf(&b, "    %q) echo %q ;;\n", p, strings.Join(words, " "))
		}
		b.WriteString("  esac\n}\n_swcli() {\n  local path=\"\" i\n  for ((i=1; i<COMP_CWORD; i++)); do\n    case \"${COMP_WORDS[i]}\" in -*) continue ;; esac\n    path=$(_swcli_next \"$path\" \"${COMP_WORDS[i]}\")\n  done\n  COMPREPLY=( $(compgen -W \"$(_swcli_words \"$path\")\" -- \"${COMP_WORDS[COMP_CWORD]}\") )\n}\ncomplete -o default -F _swcli swcli\n")
	case "fish":
		b.WriteString("# swcli completion for fish: save as ~/.config/fish/completions/swcli.fish\nfunction __swcli_path\n  set -l path ''\n  for w in (commandline -opc)[2..-1]\n    string match -q -- '-*' $w; and continue\n    switch \"$path|$w\"\n")
		transitions(nodes, paths, func(key, child string) { fmt.Fprintf(&b, "      case %q\n        set path %q\n", key, child) })
		b.WriteString("    end\n  end\n  echo $path\nend\ncomplete -c swcli -f\n")
		for _, p := range paths {
			n := nodes[p]
			cond := fmt.Sprintf("test (__swcli_path) = %q", p)
			if len(n.words) > 0 {
				fmt.Fprintf(&b, "complete -c swcli -n '%s' -a %q\n", cond, strings.Join(n.words, " "))
			}
			for _, f := range n.flags {
				if strings.HasPrefix(f, "--") {
					fmt.Fprintf(&b, "complete -c swcli -n '%s' -l %s\n", cond, strings.TrimPrefix(f, "--"))
				}
			}
		}
	default:
		return ops.Errorf(ops.KindUsage, "bash, zsh or fish", "unknown shell %q", c.Shell)
	}
	_, err := fmt.Fprint(e.stdout, b.String())
	return err
}
