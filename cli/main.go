// Package cli is swcli's command line: the kong grammar, one file per command group,
// rendering of tables and JSON, and the mapping of errors to exit codes. It is the only
// package that prints or decides the process's exit code.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/rs/zerolog"

	"github.com/swcli/swcli/internal/membudget"
)

// Version is swcli's version, recorded in build events.
var Version = "0.1.0-dev"

// Globals are the flags every command takes.
type Globals struct {
	Root        string           `help:"Standalone instance directory." env:"SWCLI_ROOT" placeholder:"DIR"`
	Config      string           `help:"Client config file (default ~/.config/swcli/config.yaml)." env:"SWCLI_CONFIG" placeholder:"FILE" type:"path"`
	Output      string           `short:"o" help:"Output format: table or json (for runtime export: the .swrt file)." default:"table" placeholder:"table|json"`
	Verbose     int              `short:"v" type:"counter" help:"More diagnostics on stderr (-v info, -vv debug)."`
	NoProgress  bool             `name:"no-progress" help:"No progress bar."`
	Progress    string           `help:"Progress on stderr: auto (a bar when stdout and stderr are terminals), bar, json (JSON lines) or none." enum:"auto,bar,json,none" default:"auto"`
	LockTimeout time.Duration    `help:"Give up (exit 10) after waiting this long for another process; 0 waits." default:"0s" env:"SWCLI_LOCK_TIMEOUT" placeholder:"DURATION"`
	Version     kong.VersionFlag `help:"Print swcli's version and exit."`
}

// root returns the instance root: --root, $SWCLI_ROOT, or ~/.local/share/swcli.
func (g *Globals) root() string {
	if g.Root != "" {
		return g.Root
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "swcli")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".local", "share", "swcli")
}

// Backend puts a server's state in PostgreSQL and its packs in S3: the flags of `swcli
// server …` and `swcli ledger …`. Without them, the instance at --root.
type Backend struct {
	Ledger string `help:"A server's ledger, users and chunk index in PostgreSQL (--root then holds only caches)." env:"SWCLI_LEDGER" placeholder:"postgres://…"`
	Packs  string `help:"A server's packs in S3 (endpoint and keys from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION)." env:"SWCLI_PACKS" placeholder:"s3://BUCKET/PREFIX"`
}

type grammar struct {
	Globals

	// The commands, built into kong's model by commands() below.
	Runtime    RuntimeCmd    `kong:"-"`
	Project    ProjectCmd    `kong:"-"`
	Instance   InstanceCmd   `kong:"-"`
	Server     ServerCmd     `kong:"-"`
	Ledger     LedgerCmd     `kong:"-"`
	Gc         GCCmd         `kong:"-"`
	Fsck       FsckCmd       `kong:"-"`
	Store      StoreCmd      `kong:"-"`
	Completion CompletionCmd `kong:"-"`
	Complete   CompleteCmd   `kong:"-"`
}

// command is a top-level command: its name, alias, help and grammar.
type command struct {
	name, alias, help string
	grammar           any
	hidden            bool
}

// commands are the top-level commands, in the order help lists them.
func (g *grammar) commands() []command {
	return []command{
		{"runtime", "rt", "Manage runtimes: create, build, list, tag, extract, restore, copy …", &g.Runtime, false},
		{"project", "", "Manage projects on the standalone instance.", &g.Project, false},
		{"instance", "", "Log in to servers (cloud instances) and choose the default instance.", &g.Instance, false},
		{"server", "", "Run a cloud instance; manage its users, tokens and projects.", &g.Server, false},
		{"ledger", "", "Audit the history: log, verify, replay, export.", &g.Ledger, false},
		{"gc", "", "Delete stored chunks that no live or removed version uses.", &g.Gc, false},
		{"fsck", "", "Re-hash every stored chunk and report any that fail.", &g.Fsck, false},
		{"store", "", "Store a directory as a tree and read it back (plumbing).", &g.Store, false},
		{"completion", "", "Print a shell completion script: bash, zsh or fish.", &g.Completion, false},
		{"__complete", "", "Completion candidates (used by the completion scripts).", &g.Complete, true},
	}
}

// named returns the top-level command args name (the first argument that is one), if
// kong's model of it alone can parse them: kong builds its model of every command by
// reflection on each run, ~10 ms of a command's start, most of it for commands not used.
// The completion script lists every command, so it needs them all. An argument that is a
// flag's value and a command's name at once may pick the wrong one: the parse then fails
// and is made again with every command (Main).
func named(cmds []command, args []string) (command, bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		for _, c := range cmds {
			if a == c.name || (c.alias != "" && a == c.alias) {
				return c, c.name != "completion"
			}
		}
	}
	return command{}, false
}

// narrowed is c with only the subcommand args name after it, if there is one: kong's
// model of runtime's 17 subcommands was 3–7 ms of each start. The subcommand's values
// then live in a struct made for the parse; Main reaches them through kong's context
// (selected), not through the grammar.
func narrowed(c command, args []string) command {
	v := reflect.ValueOf(c.grammar)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return c
	}
	t := v.Elem().Type()
	at := slices.Index(args, c.name)
	if at < 0 {
		at = slices.Index(args, c.alias)
	}
	for _, a := range args[at+1:] {
		if a == "--" {
			return c
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if _, ok := f.Tag.Lookup("cmd"); !ok || f.Type.Kind() != reflect.Struct {
				continue
			}
			if a != strings.ToLower(f.Name) && !slices.Contains(strings.Split(f.Tag.Get("aliases"), ","), a) {
				continue
			}
			one := reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: f.Tag}})
			c.grammar = reflect.New(one).Interface()
			return c
		}
	}
	return c
}

// selected returns the command kong selected if it is a T, wherever its values live (the
// grammar, or a struct narrowed made).
func selected[T any](kctx *kong.Context) *T {
	n := kctx.Selected()
	if n == nil {
		return nil
	}
	v := n.Target
	if v.Kind() != reflect.Pointer && v.CanAddr() {
		v = v.Addr()
	}
	t, _ := v.Interface().(*T)
	return t
}

// env is what every command's Run receives.
type env struct {
	ctx     context.Context
	g       *Globals
	backend Backend // server and ledger commands: PostgreSQL and S3
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	log     zerolog.Logger
	// command is the command line's command path, as kong names it ("server project member add <project> <users> ...").
	command string
	quiet   bool // --quiet of the commands that show progress
	// ledgerOnly: the command reads (and may append to) the ledger only, never the store
	// (ops.OpenOptions.LedgerOnly).
	ledgerOnly bool
}

type exitPanic int

// Main runs swcli with args and returns the process's exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	var cli grammar
	cmds := cli.commands()
	c, one := named(cmds, args)
	if one {
		cmds = []command{narrowed(c, args)}
	}
	parser, err := newParser(&cli, cmds, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "swcli: error: %v\n", err)
		return ExitFailure
	}
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitPanic)
			if !ok {
				panic(r)
			}
			code = int(c)
			if code == 80 { // kong's exit code for parse errors
				code = ExitUsage
			}
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil && one { // the error, and its hint, as the model of every command has them
		cli = grammar{}
		if parser, err = newParser(&cli, cli.commands(), stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "swcli: error: %v\n", err)
			return ExitFailure
		}
		kctx, err = parser.Parse(args)
	}
	if err != nil {
		fmt.Fprintf(stderr, "swcli: error: %v\n", err)
		var pe *kong.ParseError
		if errors.As(err, &pe) && pe.Context != nil && pe.Context.Selected() != nil {
			fmt.Fprintf(stderr, "swcli: hint: swcli %s --help\n", commandPath(pe.Context.Selected()))
		} else {
			fmt.Fprintln(stderr, "swcli: hint: see 'swcli --help'")
		}
		return ExitUsage
	}
	if cli.Output != "table" && cli.Output != "json" {
		// runtime export takes -o FILE.swrt, as its help says; everywhere else -o is the format.
		if exp := selected[RtExportCmd](kctx); exp != nil && exp.File == "" {
			exp.File, cli.Output = cli.Output, "table"
		} else {
			fmt.Fprintf(stderr, "swcli: error: --output must be one of \"table\",\"json\" but got %q\n", cli.Output)
			fmt.Fprintln(stderr, "swcli: hint: -o json for machine output")
			return ExitUsage
		}
	}
	if path := os.Getenv("SWCLI_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	if path := os.Getenv("SWCLI_MEMPROFILE"); path != "" {
		defer func() { // what is still held when the command ends (after a GC)
			if f, err := os.Create(path); err == nil {
				runtime.GC()
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}()
	}
	e := &env{ctx: ctx, g: &cli.Globals, stdin: stdin, stdout: stdout, stderr: stderr, log: newLogger(stderr, cli.Verbose, false), command: kctx.Command()}
	switch {
	case strings.HasPrefix(e.command, "server"):
		e.backend = cli.Server.Backend
	case strings.HasPrefix(e.command, "ledger"):
		e.backend = cli.Ledger.Backend
	}
	if !strings.HasPrefix(e.command, "server") { // a server's operators size it with GOMEMLIMIT
		defer membudget.Keep(memBudget)()
	}
	if err := kctx.Run(e); err != nil {
		return reportError(stderr, interrupted(ctx, err), e.jsonOut())
	}
	return ExitOK
}

// memBudget is the Go memory a command keeps to while its live data fits in two thirds
// of it (internal/membudget): above what a build of the ml corpus reaches by itself, so
// that only larger trees pay for it with more collections.
const memBudget = 96 << 20

// newParser returns kong's parser of cli with the commands given.
func newParser(cli *grammar, cmds []command, stdout, stderr io.Writer) (*kong.Kong, error) {
	opts := []kong.Option{
		kong.Name("swcli"),
		kong.Description("Manage Python runtimes on a content-addressed, event-sourced store."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(exitPanic(c)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Vars{"version": Version},
	}
	for _, c := range cmds {
		var tags []string
		if c.alias != "" {
			tags = append(tags, `aliases:"`+c.alias+`"`)
		}
		if c.hidden {
			tags = append(tags, `hidden:""`)
		}
		opts = append(opts, kong.DynamicCommand(c.name, c.help, "", c.grammar, tags...))
	}
	return kong.New(cli, opts...)
}

func newLogger(w io.Writer, verbosity int, quiet bool) zerolog.Logger {
	level := zerolog.WarnLevel
	switch {
	case quiet:
		level = zerolog.ErrorLevel
	case verbosity == 1:
		level = zerolog.InfoLevel
	case verbosity == 2:
		level = zerolog.DebugLevel
	case verbosity > 2:
		level = zerolog.TraceLevel
	}
	// Times with real milliseconds (zerolog's default field format keeps seconds only), and
	// durations as Go writes them, with their unit.
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.DurationFieldInteger = false
	cw := zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: "15:04:05.000",
		FormatFieldValue: func(v any) string {
			if n, ok := v.(json.Number); ok {
				return n.String()
			}
			return fmt.Sprint(v)
		}}
	return zerolog.New(cw).Level(level).With().Timestamp().Logger()
}

// commandPath is a command's path by canonical names ("runtime list"), pasteable.
func commandPath(n *kong.Node) string {
	var parts []string
	for ; n != nil && n.Type != kong.ApplicationNode; n = n.Parent {
		parts = append([]string{n.Name}, parts...)
	}
	return strings.Join(parts, " ")
}
