package cli

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// parseWith parses args with a model of cmds (narrowed to the subcommand args name if
// narrow) and returns what kong printed and the command it selected, or the error.
func parseWith(t *testing.T, args []string, narrow bool) string {
	t.Helper()
	var g grammar
	cmds := g.commands()
	c, one := named(cmds, args)
	if !one {
		t.Fatalf("%q names no command", args)
	}
	if narrow {
		c = narrowed(c, args)
	}
	var out bytes.Buffer
	parser, err := newParser(&g, []command{c}, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	got := func() (s string) {
		defer func() {
			if r := recover(); r != nil {
				s = "exit"
			}
		}()
		kctx, err := parser.Parse(args)
		if err != nil {
			return "error: " + err.Error()
		}
		return "selected: " + kctx.Command()
	}()
	return got + "\n" + out.String()
}

// A command parsed with the model of its subcommand alone reads, errs and helps as with
// the model of its whole group: every subcommand of runtime and its aliases, with help,
// with a flag it lacks, with its arguments.
func TestNarrowedModelParsesAsTheWhole(t *testing.T) {
	rt := reflect.TypeOf(RuntimeCmd{})
	var cases [][]string
	for i := range rt.NumField() {
		f := rt.Field(i)
		names := []string{strings.ToLower(f.Name)}
		if a := f.Tag.Get("aliases"); a != "" {
			names = append(names, strings.Split(a, ",")...)
		}
		for _, n := range names {
			for _, top := range []string{"runtime", "rt"} {
				cases = append(cases,
					[]string{top, n, "--help"},
					[]string{top, n, "--no-such-flag"},
					[]string{"-o", "json", top, n, "x", "y"},
					[]string{top, n, "-p", "self", "ml-v1"})
			}
		}
	}
	narrowedOnce := false
	for _, args := range cases {
		var g grammar
		c, _ := named(g.commands(), args)
		if reflect.TypeOf(narrowed(c, args).grammar) != reflect.TypeOf(c.grammar) {
			narrowedOnce = true
		}
		if whole, one := parseWith(t, args, false), parseWith(t, args, true); whole != one {
			t.Errorf("%q:\nwhole model:\n%s\nnarrowed:\n%s", args, whole, one)
		}
	}
	if !narrowedOnce {
		t.Fatal("no command line was narrowed")
	}
}
