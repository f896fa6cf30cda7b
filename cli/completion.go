package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
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
		fmt.Fprintf(&b, "  esac\n}\n_swcli() {\n  local path=\"\" i cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n  for ((i=1; i<COMP_CWORD; i++)); do\n    case \"${COMP_WORDS[i]}\" in -*) continue ;; esac\n    path=$(_swcli_next \"$path\" \"${COMP_WORDS[i]}\")\n  done\n"+
			"  case \"$prev\" in -p|--project|--dest-local-project) COMPREPLY=( $(swcli __complete project \"$cur\" 2>/dev/null) ); return ;; esac\n"+
			"  if [[ \"$cur\" != -* ]]; then\n    case \"$path\" in\n      %s) COMPREPLY=( $(swcli __complete runtime \"$cur\" 2>/dev/null) ); compopt -o nospace 2>/dev/null; return ;;\n      %s) COMPREPLY=( $(swcli __complete project \"$cur\" 2>/dev/null) ); return ;;\n    esac\n  fi\n"+
			"  COMPREPLY=( $(compgen -W \"$(_swcli_words \"$path\")\" -- \"$cur\") )\n}\ncomplete -o default -F _swcli swcli\n", shellAlts(runtimeArgCommands), shellAlts(projectArgCommands))
	case "fish":
		b.WriteString("# swcli completion for fish: save as ~/.config/fish/completions/swcli.fish\nfunction __swcli_path\n  set -l path ''\n  for w in (commandline -opc)[2..-1]\n    string match -q -- '-*' $w; and continue\n    switch \"$path|$w\"\n")
		transitions(nodes, paths, func(key, child string) { fmt.Fprintf(&b, "      case %q\n        set path %q\n", key, child) })
		b.WriteString("    end\n  end\n  echo $path\nend\ncomplete -c swcli -f\n")
		for _, p := range runtimeArgCommands {
			fmt.Fprintf(&b, "complete -c swcli -n 'test (__swcli_path) = %q' -a '(swcli __complete runtime (commandline -ct) 2>/dev/null)'\n", p)
		}
		for _, p := range projectArgCommands {
			fmt.Fprintf(&b, "complete -c swcli -n 'test (__swcli_path) = %q' -a '(swcli __complete project (commandline -ct) 2>/dev/null)'\n", p)
		}
		b.WriteString("complete -c swcli -s p -l project -x -a '(swcli __complete project 2>/dev/null)'\n")
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

// CompleteCmd is the hidden `swcli __complete KIND [WORD]` the completion scripts call:
// runtime names, NAME/version/ID and NAME/version/TAG, or project names, of the selected
// instance (local or cloud), one per line. It never fails loudly: no candidates is an
// empty answer.
type CompleteCmd struct {
	Kind string `arg:"" enum:"runtime,project" help:"runtime or project."`
	Word string `arg:"" optional:"" help:"What is typed so far."`
}

// Run prints the candidates.
func (c *CompleteCmd) Run(e *env) error {
	ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
	defer cancel()
	e.ctx, e.ledgerOnly = ctx, true
	var out []string
	switch c.Kind {
	case "project":
		out = e.completeProjects()
	case "runtime":
		out = e.completeRuntimes(c.Word)
	}
	for _, w := range out {
		if strings.HasPrefix(w, c.Word) {
			fmt.Fprintln(e.stdout, w)
		}
	}
	return nil
}

func (e *env) completeProjects() []string {
	cfg, err := e.config()
	if err != nil {
		return nil
	}
	var out []string
	if cfg.CurrentInstance != "local" {
		if names, err := e.remoteOf(cfg, cfg.CurrentInstance).Projects(e.ctx); err == nil {
			out = append(out, names...)
		}
		return out
	}
	in, err := e.open() // ledger only (Run), bounded by Run's context
	if err != nil {
		return nil
	}
	defer in.Close()
	ps, _ := in.Projects()
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func (e *env) completeRuntimes(word string) []string {
	ep, project, err := e.endpoint(ops.ProjectURI{})
	if err != nil {
		return nil
	}
	defer ep.Close()
	if name, _, ok := strings.Cut(word, "/version/"); ok {
		vs, err := ep.History(e.ctx, project, name)
		if err != nil {
			return nil
		}
		var out []string
		seen := map[string]bool{}
		for _, v := range vs {
			if v.Status != ledger.StatusLive {
				continue
			}
			for _, s := range append([]string{v.ID[:12]}, v.AllTags()...) {
				if !seen[s] {
					seen[s] = true
					out = append(out, name+"/version/"+s)
				}
			}
		}
		return out
	}
	vs, _, err := ep.Versions(e.ctx, project, "", ledger.ListOptions{Size: api.MaxPageSize})
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, v := range vs {
		if !seen[v.Runtime] {
			seen[v.Runtime] = true
			out = append(out, v.Runtime, v.Runtime+"/version/")
		}
	}
	return out
}

// The commands whose argument is a runtime URI, and those whose argument is a project.
var (
	runtimeArgCommands = []string{"runtime info", "runtime history", "runtime tag", "runtime remove", "runtime recover",
		"runtime extract", "runtime restore", "runtime copy", "runtime export", "runtime activate", "runtime run"}
	projectArgCommands = []string{"project select", "project remove"}
)

func shellAlts(paths []string) string {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = fmt.Sprintf("%q", p)
	}
	return strings.Join(q, "|")
}
