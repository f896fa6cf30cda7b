package cli

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/formats"
)

// RuntimeCmd is `swcli runtime` (alias rt).
type RuntimeCmd struct {
	Create   RtCreateCmd   `cmd:"" help:"Make a workdir with a venv (or conda env) and a runtime.yaml."`
	Build    RtBuildCmd    `cmd:"" help:"Lock the workdir's environment and store it as a new version."`
	List     RtListCmd     `cmd:"" aliases:"ls" help:"List the versions of a project's runtimes."`
	Info     RtInfoCmd     `cmd:"" help:"Show a version's contents, or a runtime's versions."`
	History  RtHistoryCmd  `cmd:"" help:"Show the versions of a runtime, newest first."`
	Tag      RtTagCmd      `cmd:"" help:"Add or remove tags on a version."`
	Remove   RtRemoveCmd   `cmd:"" aliases:"rm" help:"Remove a version or a whole runtime (recoverable unless -f)."`
	Recover  RtRecoverCmd  `cmd:"" help:"Undo the removal of a version or a whole runtime."`
	Activate RtActivateCmd `cmd:"" aliases:"actv" help:"Print the command that activates a workdir's environment, or a runtime's (extracted and restored on first use)."`
	Run      RtRunCmd      `cmd:"" help:"Run a command inside a runtime (extracted and restored on first use)."`
	Lock     RtLockCmd     `cmd:"" help:"Lock the workdir's environment into .starwhale/lock/ next to runtime.yaml."`
	Extract  RtExtractCmd  `cmd:"" help:"Write a version's files to a directory."`
	Restore  RtRestoreCmd  `cmd:"" help:"Make an extracted runtime usable: relocate or install its environment."`
	Export   RtExportCmd   `cmd:"" help:"Write a version as a Starwhale .swrt file."`
	Import   RtImportCmd   `cmd:"" help:"Store a Starwhale .swrt file (current or 2022 layout) as a version."`
	Copy     RtCopyCmd     `cmd:"" aliases:"cp" help:"Copy versions between projects and instances, sending only missing chunks."`
}

// RtCreateCmd is `runtime create`.
type RtCreateCmd struct {
	Workdir string `arg:"" help:"Directory to create the runtime in." type:"path"`
	Name    string `short:"n" required:"" help:"Runtime name."`
	Mode    string `short:"m" enum:"venv,conda" default:"venv" help:"Environment: venv or conda."`
	Python  string `help:"Python version (major.minor); default: python3 on PATH."`
	Force   bool   `short:"f" help:"Replace an existing runtime.yaml and environment."`
}

// Run creates the runtime.
func (c *RtCreateCmd) Run(e *env) error {
	in, project, err := e.openProject("")
	if err != nil {
		return err
	}
	defer in.Close()
	res, err := ops.Create(e.ctx, in, ops.CreateRequest{Workdir: c.Workdir, Name: c.Name, Mode: c.Mode, Python: c.Python, Project: project, Force: c.Force})
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"runtime": c.Name, "project": project, "workdir": res.Workdir,
			"mode": c.Mode, "python": res.Python.Version, "env": res.EnvDir, "activate": res.Activate})
	}
	e.printf("created %s runtime %s in %s (python %s)\nactivate it with:\n    %s\n", c.Mode, c.Name, res.Workdir, res.Python.Version, res.Activate)
	return nil
}

// RtBuildCmd is `runtime build`.
type RtBuildCmd struct {
	Quiet
	Workdir           string `arg:"" optional:"" help:"The runtime's workdir (not with --venv, --conda, --conda-prefix, --shell)." type:"path"`
	Venv              string `name:"venv" help:"Build from this existing venv, without a runtime.yaml." type:"path" placeholder:"PATH"`
	Conda             string `name:"conda" short:"c" help:"Build from the conda environment of this name, without a runtime.yaml." placeholder:"NAME"`
	CondaPrefix       string `name:"conda-prefix" help:"Build from the conda environment at this prefix, without a runtime.yaml." type:"path" placeholder:"PATH"`
	Shell             bool   `name:"shell" short:"s" help:"Build from the shell's active venv or conda environment, without a runtime.yaml."`
	Name              string `name:"name" short:"n" help:"Runtime name when building from an environment (default: its directory's name)."`
	IncludeLocalWheel bool   `name:"include-local-wheel" help:"Keep lock lines that pin wheel files of this host (they will not install elsewhere)."`
	Project           string `short:"p" help:"Project URI (default: the selected project)."`
	RuntimeYAML       string `name:"runtime-yaml" short:"f" help:"Runtime yaml file (default WORKDIR/runtime.yaml)."`
	GenAllBundles     bool   `name:"gen-all-bundles" help:"Also store the whole environment, so restore needs no package index."`
	IncludeEditable   bool   `name:"include-editable" help:"Keep editable packages in the lock."`
}

// Run builds the runtime.
func (c *RtBuildCmd) Run(e *env) error {
	sel := ops.EnvSelector{Venv: c.Venv, CondaName: c.Conda, CondaPrefix: c.CondaPrefix, Shell: c.Shell}
	var early *ops.BuildStart // the environment's walk and check, beside the instance's opening
	if !sel.Set() {
		early = ops.StartBuild(e.ctx, e.g.root(), c.Workdir, c.RuntimeYAML, c.GenAllBundles, c.IncludeEditable)
	}
	defer early.Stop()
	in, project, err := e.openProject(c.Project)
	if err != nil {
		return err
	}
	defer in.Close()
	c.Quiet.apply(e)
	b := e.newBar("building", "files", true)
	var p cas.Progress
	if b != nil {
		p = b
	}
	start := time.Now()
	req := ops.BuildRequest{Workdir: c.Workdir, Project: project, YAML: c.RuntimeYAML,
		GenAllBundles: c.GenAllBundles, IncludeEditable: c.IncludeEditable, IncludeLocalWheel: c.IncludeLocalWheel,
		Progress: p, Warn: func(s string) { e.log.Warn().Msg(s) },
		Say: func(s string) { b.Step(s); e.log.Info().Msg(s) }, Start: early}
	var res *ops.BuildResult
	switch {
	case sel.Set() && (c.Workdir != "" || c.RuntimeYAML != ""):
		err = ops.Errorf(ops.KindUsage, "give either WORKDIR (with its runtime.yaml) or an environment", "--venv, --conda, --conda-prefix and --shell build without a workdir")
	case sel.Set():
		res, err = ops.BuildFromEnv(e.ctx, in, sel, c.Name, req)
	case c.Workdir == "":
		err = ops.Errorf(ops.KindUsage, "swcli runtime build WORKDIR, or --venv PATH, --conda NAME, --shell", "missing the workdir (or an environment to build from)")
	case c.Name != "":
		err = ops.Errorf(ops.KindUsage, "set name: in runtime.yaml", "--name is for building from an environment")
	default:
		res, err = ops.Build(e.ctx, in, req)
	}
	b.finish(err == nil)
	if err != nil {
		return err
	}
	e.log.Info().Str("took", time.Since(start).Round(time.Microsecond).String()).Str("manifest", res.Manifest.String()).Str("lock", res.LockBy).Msg("built")
	if e.jsonOut() {
		return e.printJSON(map[string]any{"project": res.Project, "runtime": res.Runtime, "version": res.Version,
			"tags": []string{"latest", fmt.Sprintf("v%d", res.VN)}, "new_version": res.New, "files": res.Files,
			"size": res.Size, "new_bytes": res.NewBytes, "new_stored_bytes": res.NewStored,
			"manifest": res.Manifest, "python": res.Python})
	}
	shared := 100.0
	if res.Size > 0 {
		shared = 100 * float64(res.Size-res.NewBytes) / float64(res.Size)
	}
	again := ""
	if !res.New {
		again = " (unchanged: same version as before)"
	}
	e.printf("built %s v%d: %s in %s, %s new (%.0f%% shared)%s\n", localURI(res.Project, res.Runtime, res.Version[:12]), res.VN,
		humanBytes(res.Size), plural(res.Files, "file"), humanBytes(res.NewStored), shared, again)
	return nil
}

// RtListCmd is `runtime list`.
type RtListCmd struct {
	Project     string `short:"p" help:"Project URI (default: the selected project)."`
	Fullname    bool   `help:"Show full version ids."`
	ShowRemoved bool   `name:"show-removed" help:"Include removed versions (with full ids)."`
	Page        int    `default:"1" help:"Page number."`
	Size        int    `default:"20" help:"Rows per page."`
}

func shortID(v *ledger.Version, full bool) string {
	if full || v.Status != ledger.StatusLive {
		return v.ID
	}
	return v.ID[:12]
}

func (e *env) versionTable(vs []*ledger.Version, full, withName, withStatus bool) {
	head := []string{"VERSION", "TAGS", "SIZE", "FILES", "CREATED"}
	if withName {
		head = append([]string{"NAME"}, head...)
	}
	if withStatus {
		head = append(head, "STATUS")
	}
	rows := [][]string{head}
	for _, v := range vs {
		r := []string{shortID(v, full), strings.Join(v.AllTags(), ","), humanBytes(v.Size), humanCount(int(v.Files)), humanTime(v.Created)}
		if withName {
			r = append([]string{v.Runtime}, r...)
		}
		if withStatus {
			r = append(r, v.Status.String())
		}
		rows = append(rows, r)
	}
	e.table(rows)
}

// Run lists versions.
func (c *RtListCmd) Run(e *env) error {
	if c.Page < 1 || c.Size < 1 {
		return ops.Errorf(ops.KindUsage, "--page and --size start at 1", "invalid page %d or size %d", c.Page, c.Size)
	}
	pu, err := ops.ParseProjectURI(c.Project)
	if err != nil {
		return err
	}
	e.ledgerOnly = true
	ep, project, err := e.endpoint(pu)
	if err != nil {
		return err
	}
	defer ep.Close()
	vs, total, err := ep.Versions(e.ctx, project, "", ledger.ListOptions{ShowRemoved: c.ShowRemoved, Page: c.Page, Size: c.Size})
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"project": project, "page": c.Page, "size": c.Size, "total": total, "versions": api.DTOs(vs)})
	}
	if total == 0 {
		e.printf("no runtimes in project %s\n", project)
		return nil
	}
	pages := (total + c.Size - 1) / c.Size
	if len(vs) == 0 {
		return ops.Errorf(ops.KindNotFound, fmt.Sprintf("swcli runtime list --page %d", pages),
			"no page %d: project %s has %s in %s", c.Page, project, plural(total, "version"), plural(pages, "page"))
	}
	e.versionTable(vs, c.Fullname, true, c.ShowRemoved)
	if pages > 1 {
		e.printf("page %d of %d (%s)\n", c.Page, pages, plural(total, "version"))
	}
	return nil
}

// RtInfoCmd is `runtime info`.
type RtInfoCmd struct {
	Runtime  string `arg:"" help:"Runtime URI; with /version/V one version, else the whole runtime."`
	Fullname bool   `help:"Show full version ids."`
}

// Run shows info.
func (c *RtInfoCmd) Run(e *env) error {
	u, ep, project, err := e.runtimeEndpoint(c.Runtime)
	if err != nil {
		return err
	}
	defer ep.Close()
	if u.Version == "" {
		return e.history(ep, project, u.Name, "", c.Fullname)
	}
	info, err := ep.Info(e.ctx, project, u.Name, u.Version)
	if err != nil {
		return err
	}
	v := info.Version
	if e.jsonOut() {
		return e.printJSON(map[string]any{"project": project, "version": api.DTO(v), "dirs": info.Totals.Dirs,
			"links": info.Totals.Links, "new_stored_bytes": v.NewBytes, "lock": info.Lock, "runtime_yaml": info.YAML,
			"commands": nonNil(info.Commands())})
	}
	rows := [][]string{
		{"runtime:", fmt.Sprintf("%s/project/%s/runtime/%s", ep.Name(), project, v.Runtime)},
		{"version:", v.ID},
		{"status:", v.Status.String()},
		{"tags:", strings.Join(v.AllTags(), ", ")},
		{"created:", humanTime(v.Created) + " by " + v.Actor},
		{"mode:", v.Mode + ", python " + v.Python},
		{"size:", fmt.Sprintf("%s in %s, %s, %s", humanBytes(v.Size), plural(info.Totals.Files, "file"), plural(info.Totals.Dirs, "dir"), plural(info.Totals.Links, "link"))},
		{"new:", newLine(v)},
		{"manifest:", v.Manifest.String()},
	}
	if v.Origin != "" {
		rows = append(rows[:2], append([][]string{{"origin:", v.Origin + " (its id where it was made; it answers to it here too)"}}, rows[2:]...)...)
	}
	if cmds := info.Commands(); len(cmds) > 0 {
		rows = append(rows, []string{"commands:", strings.Join(cmds, "; ") + " (restore runs them only with --run-commands or SW_RUNTIME_FORCE_RUN_COMMAND=1)"})
	}
	e.table(rows)
	if info.YAML != "" {
		e.printf("\nruntime.yaml:\n%s", indent(info.YAML))
	}
	if info.Lock != "" {
		e.printf("\nlock:\n%s", indent(info.Lock))
	}
	return nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

// RtHistoryCmd is `runtime history`.
type RtHistoryCmd struct {
	Runtime  string `arg:"" help:"Runtime URI."`
	Fullname bool   `help:"Show full version ids."`
}

// Run shows history.
func (c *RtHistoryCmd) Run(e *env) error {
	e.ledgerOnly = true
	u, ep, project, err := e.runtimeEndpoint(c.Runtime)
	if err != nil {
		return err
	}
	defer ep.Close()
	return e.history(ep, project, u.Name, u.Version, c.Fullname)
}

func (e *env) history(ep api.Endpoint, project, name, ref string, full bool) error {
	vs, err := ep.History(e.ctx, project, name)
	if err != nil {
		return err
	}
	if ref != "" {
		// One version's row (the version as the URI names it: id, prefix or tag).
		v, err := ep.Resolve(e.ctx, project, name, ref)
		if err != nil {
			return err
		}
		vs = []*ledger.Version{v}
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"project": project, "runtime": name, "versions": api.DTOs(vs)})
	}
	if len(vs) == 0 {
		e.printf("runtime %s has no versions yet: run 'swcli runtime build'\n", name)
		return nil
	}
	e.versionTable(vs, full, false, true)
	return nil
}

// RtTagCmd is `runtime tag`.
type RtTagCmd struct {
	Runtime string   `arg:"" help:"Runtime URI with /version/V (default: latest)."`
	Tags    []string `arg:"" help:"Tags to add (or remove with -r)."`
	Remove  bool     `short:"r" help:"Remove the tags."`
	Quiet   bool     `short:"q" help:"Skip tag errors (built-in tags, tags absent or present already)."`
	Force   bool     `name:"force-add" short:"f" help:"Move a tag another version of the runtime holds to this one."`
}

// Run tags.
func (c *RtTagCmd) Run(e *env) error {
	u, ep, project, err := e.runtimeEndpoint(c.Runtime)
	if err != nil {
		return err
	}
	defer ep.Close()
	res, err := ep.Tag(e.ctx, project, u.Name, u.Version, c.Tags, c.Remove, c.Quiet, c.Force)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"changed": nonNil(res.Changed), "skipped": nonNil(res.Skipped), "removed": c.Remove})
	}
	verb := "tagged"
	if c.Remove {
		verb = "untagged"
	}
	if len(res.Changed) > 0 {
		e.printf("%s %s: %s\n", verb, u.Name, strings.Join(res.Changed, ", "))
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// RtRemoveCmd is `runtime remove`.
type RtRemoveCmd struct {
	Runtime string `arg:"" help:"Runtime URI: a version, or the whole runtime."`
	Force   bool   `short:"f" help:"Delete for good: not recoverable; 'swcli gc' then reclaims the space."`
	Yes     bool   `short:"y" help:"Do not ask for confirmation."`
}

// Run removes.
func (c *RtRemoveCmd) Run(e *env) error {
	u, ep, project, err := e.runtimeEndpoint(c.Runtime)
	if err != nil {
		return err
	}
	defer ep.Close()
	targets, err := ep.RemoveTargets(e.ctx, project, u.Name, u.Version, c.Force)
	if err != nil {
		return err
	}
	if !c.Yes {
		if !isTerminal(e.stdin) {
			return ops.Errorf(ops.KindUsage, "pass -y to remove without asking", "remove needs confirmation and stdin is not a terminal")
		}
		what := "permanently delete"
		if !c.Force {
			what = "remove"
		}
		fmt.Fprintf(e.stderr, "%s %s of %s? [y/N]: ", what, plural(len(targets), "version"), u.Name)
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return errDeclined
		}
	}
	vs, err := ep.Remove(e.ctx, project, u.Name, u.Version, c.Force)
	if err != nil {
		return err
	}
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"runtime": u.Name, "versions": ids, "purged": c.Force})
	}
	if c.Force {
		reclaim := "swcli gc reclaims the space"
		if _, local := ep.(ops.LocalEndpoint); !local {
			reclaim = "the server's admin reclaims the space with: swcli server gc"
		}
		e.printf("deleted %s of %s for good; %s\n", plural(len(vs), "version"), e.uriOf(ep, project, u.Name, ""), reclaim)
	} else {
		e.printf("removed %s of %s; undo with: swcli runtime recover %s\n", plural(len(vs), "version"), u.Name, e.uriOf(ep, project, u.Name, u.Version))
	}
	return nil
}

// RtRecoverCmd is `runtime recover`.
type RtRecoverCmd struct {
	Runtime string `arg:"" help:"Runtime URI: a removed version (full id or prefix), or the whole runtime."`
	Force   bool   `short:"f" help:"Recover even if a live version has the same id (ids are content-derived, so it is the same content)."`
}

// Run recovers.
func (c *RtRecoverCmd) Run(e *env) error {
	u, ep, project, err := e.runtimeEndpoint(c.Runtime)
	if err != nil {
		return err
	}
	defer ep.Close()
	vs, err := ep.Recover(e.ctx, project, u.Name, u.Version)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		ids := make([]string, len(vs))
		for i, v := range vs {
			ids[i] = v.ID
		}
		return e.printJSON(map[string]any{"runtime": u.Name, "versions": ids})
	}
	e.printf("recovered %s of %s\n", plural(len(vs), "version"), e.uriOf(ep, project, u.Name, ""))
	return nil
}

// RtActivateCmd is `runtime activate`.
type RtActivateCmd struct {
	Target       string `arg:"" help:"A runtime workdir, or a runtime URI (extracted and restored on first use)."`
	RuntimeYAML  string `name:"runtime-yaml" short:"f" help:"Runtime yaml file (default WORKDIR/runtime.yaml)."`
	ForceRestore bool   `name:"force-restore" help:"Restore again even if restored before."`
	RunCommands  bool   `name:"run-commands" help:"When restoring, run runtime.yaml's commands (also SW_RUNTIME_FORCE_RUN_COMMAND=1)."`
}

// Run prints the activation command.
// A TARGET written as a path (./myenv, /…) is a workdir; otherwise it is a runtime, and a
// directory of that name only when no runtime has it.
func (c *RtActivateCmd) Run(e *env) error {
	fi, statErr := os.Stat(c.Target)
	isDir := statErr == nil && fi.IsDir()
	workdir := func() error {
		cmd, err := ops.ActivateCommand(c.Target, c.RuntimeYAML)
		if err != nil {
			return err
		}
		if e.jsonOut() {
			return e.printJSON(map[string]any{"activate": cmd})
		}
		e.printf("%s\n", cmd)
		return nil
	}
	if looksLikePath(c.Target) {
		if !isDir {
			return ops.Errorf(ops.KindNotFound, "give a runtime workdir, or a runtime URI (without ./)", "directory %s does not exist", c.Target)
		}
		return workdir()
	}
	p, err := e.prepare(c.Target, c.ForceRestore, c.RunCommands)
	if ops.KindOf(err) == ops.KindNotFound || ops.KindOf(err) == ops.KindUsage {
		if isDir {
			return workdir() // no such runtime: the directory it also names
		}
		return &ops.Error{Kind: ops.KindOf(err), Err: fmt.Errorf("%s: %v; and no directory ./%s", c.Target, err, c.Target),
			Hint: "give a runtime URI ('swcli runtime list'), or a workdir as a path: ./" + c.Target}
	}
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"activate": p.Activate(), "dir": p.Dir, "env": p.EnvDir, "version": p.Version, "restored": p.Restored})
	}
	e.printf("%s\n", p.Activate())
	return nil
}

// prepare extracts and restores a runtime URI on first use (activate, run).
func (e *env) prepare(uri string, force, runCommands bool) (*ops.Prepared, error) {
	u, in, project, err := e.openRuntime(uri)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var b *bar
	req := formats.RestoreRequest{RunCommands: runCommands,
		Log:  func(s string) { e.log.Info().Msg(s) },
		Warn: func(s string) { e.log.Warn().Msg(s) },
		Notice: func(s string) formats.StepProgress {
			if !e.quiet {
				fmt.Fprintf(e.stderr, "swcli: %s\n", s)
			}
			if b = e.newBar("restoring", "steps", false); b != nil {
				return b
			}
			return nil
		}}
	p, err := ops.Prepare(e.ctx, in, project, u.Name, u.Version, force, req)
	b.finish(err == nil)
	return p, err
}

// RtRunCmd is `runtime run`.
type RtRunCmd struct {
	Runtime     string   `arg:"" help:"Runtime URI (extracted and restored on first use)."`
	Command     []string `arg:"" passthrough:"" help:"The command to run inside the runtime (after --)."`
	RunCommands bool     `name:"run-commands" help:"When restoring, run runtime.yaml's commands (also SW_RUNTIME_FORCE_RUN_COMMAND=1)."`
}

// Run runs the command with the runtime's environment active; its exit code is swcli's.
func (c *RtRunCmd) Run(e *env) error {
	args := c.Command
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return ops.Errorf(ops.KindUsage, "swcli runtime run RUNTIME -- python -c 'print(1)'", "no command to run")
	}
	p, err := e.prepare(c.Runtime, false, c.RunCommands)
	if err != nil {
		return err
	}
	path := args[0]
	if !strings.Contains(path, "/") {
		if full := filepath.Join(p.EnvDir, "bin", path); isExecutable(full) {
			path = full
		} else if lp, err := exec.LookPath(path); err == nil {
			path = lp
		} else {
			return ops.Errorf(ops.KindNotFound, "", "%s: command not found in the runtime or on PATH", args[0])
		}
	}
	cmd := exec.CommandContext(e.ctx, path, args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Env = p.Environ()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() >= 0 {
			return childExit(ee.ExitCode())
		}
		return ops.Errorf(ops.KindEnv, "", "run %s: %v", args[0], err)
	}
	return nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// RtExtractCmd is `runtime extract`.
type RtExtractCmd struct {
	Quiet
	Runtime   string `arg:"" help:"Runtime URI (default version: latest)."`
	Force     bool   `short:"f" help:"Replace an existing extraction."`
	TargetDir string `name:"target-dir" help:"Directory to extract into (default: the instance's workdir area)." type:"path"`
}

// Run extracts.
func (c *RtExtractCmd) Run(e *env) error {
	u, in, project, err := e.openRuntime(c.Runtime)
	if err != nil {
		return err
	}
	defer in.Close()
	c.Quiet.apply(e)
	b := e.newBar("extracting", "files", true)
	var p cas.Progress
	if b != nil {
		p = b
	}
	res, err := ops.Extract(e.ctx, in, project, u.Name, u.Version, c.TargetDir, c.Force, p)
	b.finish(err == nil)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"runtime": u.Name, "version": res.Version.ID, "dir": res.Dir, "kept": res.Kept})
	}
	if res.Kept {
		e.printf("kept the existing extraction at %s (-f replaces it)\n", res.Dir)
		return nil
	}
	e.printf("extracted %s to %s\n", localURI(project, u.Name, res.Version.ID[:12]), res.Dir)
	return nil
}

// RtRestoreCmd is `runtime restore`.
type RtRestoreCmd struct {
	Quiet
	Target      string `arg:"" help:"An extracted runtime directory, or a runtime URI (extracted first)."`
	RunCommands bool   `name:"run-commands" help:"Run runtime.yaml's commands (also SW_RUNTIME_FORCE_RUN_COMMAND=1); without it they are listed and skipped."`
}

// Run restores.
func (c *RtRestoreCmd) Run(e *env) error {
	dir, err := e.restoreDir(c.Target)
	if err != nil {
		return err
	}
	c.Quiet.apply(e)
	b := e.newBar("restoring", "steps", false)
	req := formats.RestoreRequest{Dir: dir, RunCommands: c.RunCommands,
		Log:  func(s string) { e.log.Info().Msg(s) },
		Warn: func(s string) { e.log.Warn().Msg(s) }}
	if b != nil {
		req.Progress = b
	}
	res, err := formats.Restore(e.ctx, req)
	b.finish(err == nil)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"dir": res.Dir, "env": res.EnvDir, "relocated": res.Relocated,
			"python": res.Python.Version, "python_path": res.Python.Path, "python_choice": res.PythonChoice, "activate_host": res.ActivateHost, "activate_sw": res.ActivateSW})
	}
	how := "created and installed"
	if res.Relocated {
		how = "relocated the bundled"
	}
	e.printf("%s environment %s (python %s at %s: %s)\nactivate it with:\n    host:      eval \"$(sh %s)\"\n    container: eval \"$(sh %s)\"\n",
		how, res.EnvDir, res.Python.Version, res.Python.Path, res.PythonChoice, res.ActivateHost, res.ActivateSW)
	return nil
}

// RtExportCmd is `runtime export`.
type RtExportCmd struct {
	Quiet
	Runtime string `arg:"" help:"Runtime URI (default version: latest)."`
	// File is set from -o FILE.swrt (see Main) or --file.
	File string `name:"file" help:"The .swrt file to write, also -o FILE.swrt (default: NAME-VERSION.swrt here)." type:"path"`
}

// Run exports.
func (c *RtExportCmd) Run(e *env) error {
	u, in, project, err := e.openRuntime(c.Runtime)
	if err != nil {
		return err
	}
	defer in.Close()
	file := c.File
	if file == "" {
		v, err := in.Resolve(project, u.Name, u.Version)
		if err != nil {
			return err
		}
		file = fmt.Sprintf("%s-%s.swrt", u.Name, v.ID[:12])
	}
	res, err := ops.ExportSwrt(e.ctx, in, project, u.Name, u.Version, file)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"runtime": u.Name, "version": res.Version.ID, "file": res.File,
			"files": res.Files, "bytes": res.Bytes})
	}
	e.printf("exported %s to %s (%s in %s)\n", localURI(project, u.Name, res.Version.ID), res.File,
		humanBytes(res.Bytes), plural(res.Files, "file"))
	return nil
}

// RtImportCmd is `runtime import`.
type RtImportCmd struct {
	Quiet
	File    string `arg:"" help:"A .swrt file." type:"path"`
	Project string `short:"p" help:"Project URI (default: the selected project)."`
	Name    string `short:"n" help:"The runtime's name, for a 2022 bundle that does not carry one."`
}

// Run imports.
func (c *RtImportCmd) Run(e *env) error {
	in, project, err := e.openProject(c.Project)
	if err != nil {
		return err
	}
	defer in.Close()
	res, err := ops.ImportSwrt(e.ctx, in, ops.ImportRequest{File: c.File, Project: project, Name: c.Name,
		Warn: func(s string) { e.log.Warn().Msg(s) }})
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"project": res.Project, "runtime": res.Runtime, "version": res.Version,
			"layout": res.Layout, "new_version": res.New, "files": res.Files, "size": res.Size, "new_bytes": res.NewBytes})
	}
	again := ""
	if !res.New {
		again = " (already there: same version)"
	}
	e.printf("imported %s (%s layout): %s in %s, %s new%s\n", localURI(res.Project, res.Runtime, res.Version), res.Layout,
		humanBytes(res.Size), plural(res.Files, "file"), humanBytes(res.NewBytes), again)
	return nil
}

// RtLockCmd is `runtime lock`.
type RtLockCmd struct {
	TargetDir         string `arg:"" optional:"" default:"." help:"The workdir holding runtime.yaml (default: here)." type:"path"`
	YAMLName          string `name:"yaml-name" short:"f" help:"Runtime yaml file (default TARGET_DIR/runtime.yaml)."`
	EnvName           string `name:"env-name" short:"n" help:"Lock the conda environment of this name."`
	EnvPrefixPath     string `name:"env-prefix-path" short:"p" help:"Lock the venv or conda environment at this prefix." type:"path"`
	EnvUseShell       bool   `name:"env-use-shell" short:"s" help:"Lock the shell's active environment."`
	Stdout            bool   `name:"stdout" help:"Print the lock instead of writing it."`
	IncludeEditable   bool   `name:"include-editable" help:"Keep editable packages in the lock."`
	IncludeLocalWheel bool   `name:"include-local-wheel" help:"Keep lines that pin wheel files of this host."`
}

// Run locks.
func (c *RtLockCmd) Run(e *env) error {
	sel := ops.EnvSelector{CondaName: c.EnvName, Shell: c.EnvUseShell}
	if c.EnvPrefixPath != "" {
		// venv or conda: the runtime.yaml's mode decides; Resolve checks the prefix is one.
		if _, err := os.Stat(filepath.Join(c.EnvPrefixPath, "conda-meta")); err == nil {
			sel.CondaPrefix = c.EnvPrefixPath
		} else {
			sel.Venv = c.EnvPrefixPath
		}
	}
	res, err := ops.Lock(e.ctx, ops.LockRequest{Dir: c.TargetDir, YAML: c.YAMLName, Env: sel,
		IncludeEditable: c.IncludeEditable, IncludeLocalWheel: c.IncludeLocalWheel,
		Warn: func(s string) { e.log.Warn().Msg(s) }}, !c.Stdout)
	if err != nil {
		return err
	}
	if c.Stdout {
		_, err := e.stdout.Write(res.Lock)
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"lock": res.Path, "env": res.EnvDir, "python": res.Python})
	}
	e.printf("locked %s (python %s) into %s\n", res.EnvDir, res.Python, res.Path)
	return nil
}
