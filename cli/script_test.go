package cli_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/swcli/swcli/cli"
	"github.com/swcli/swcli/internal/corpus"
	"github.com/swcli/swcli/ops"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"swcli": func() { os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/script/*.txtar against the real entry point.
func TestScripts(t *testing.T) {
	wheelScript, _ := filepath.Abs(filepath.Join("..", "..", "shared", "corpus", "make-wheel.py"))
	if s, err := corpus.Script(); err == nil {
		wheelScript = filepath.Join(filepath.Dir(s), "make-wheel.py")
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("SWCLI_ROOT", filepath.Join(env.WorkDir, "root"))
			env.Setenv("SWCLI_CONFIG", filepath.Join(env.WorkDir, "config", "config.yaml"))
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("MAKE_WHEEL", wheelScript)
			env.Setenv("REPO", mustAbs(".."))
			if strings.HasSuffix(env.T().(testing.TB).Name(), "/e2e_ml") && !testing.Short() {
				dir, err := corpus.Dir()
				if err != nil {
					return err
				}
				env.Setenv("CORPUS", dir)
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// serve ROOT: run a cloud instance on ROOT on a loopback port for the rest of the
			// script; $SERVER is its URL.
			"serve": func(ts *testscript.TestScript, neg bool, args []string) {
				in, err := ops.Open(context.Background(), ts.MkAbs(args[0]), ops.OpenOptions{Name: "team", Exclusive: true})
				if err != nil {
					ts.Fatalf("serve: %v", err)
				}
				srv := httptest.NewServer(ops.NewServer(in).Handler())
				ts.Setenv("SERVER", srv.URL)
				ts.Defer(func() { srv.Close(); in.Close() })
			},
			// capture VAR REGEXP: set VAR to the first group of REGEXP in the last stdout.
			"capture": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: capture VAR REGEXP")
				}
				m := regexp.MustCompile(args[1]).FindStringSubmatch(ts.ReadFile("stdout"))
				if len(m) < 2 {
					ts.Fatalf("capture: no match for %s", args[1])
				}
				ts.Setenv(args[0], m[1])
			},
			// code N prog args…: run prog and require exit code N (stdout/stderr kept for
			// the checks that follow).
			"code": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 {
					ts.Fatalf("usage: code N prog args...")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("code: %v", err)
				}
				err = ts.Exec(args[1], args[2:]...)
				got := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("code: %v", err)
				}
				if got != want {
					ts.Fatalf("%s exited %d, want %d", args[1], got, want)
				}
			},
		},
	})
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}
