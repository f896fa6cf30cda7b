package cli_test

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/swcli/swcli/cli"
	"github.com/swcli/swcli/internal/corpus"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/server"
)

func TestMain(m *testing.M) {
	testscript.Main(removeVenvAfter{m}, map[string]func(){
		// As cmd/swcli's main: SIGINT and SIGTERM cancel the context, so a background
		// server the script ends shuts down as a user's does (its socket removed).
		"swcli": func() {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}

// hostVenv reports whether python3 can make venvs with pip here, and why not.
func hostVenv() (bool, string) {
	if _, err := exec.LookPath("python3"); err != nil {
		return false, "python3 is not installed"
	}
	if err := exec.Command("python3", "-c", "import venv, ensurepip").Run(); err != nil {
		return false, "python3 lacks venv or ensurepip (Debian: python3-venv)"
	}
	return true, ""
}

// sharedVenv is one venv made for all the tests and scripts that need a runtime workdir
// but do not test its creation: copying it takes a tenth of the time of making one. It
// lives for the test binary's run (removeVenvAfter).
var sharedVenv struct {
	once    sync.Once
	tmp     string
	dir, py string
	err     error
}

// removeVenvAfter runs the tests, then removes the shared venv.
type removeVenvAfter struct{ m *testing.M }

func (r removeVenvAfter) Run() int {
	code := r.m.Run()
	if sharedVenv.tmp != "" {
		os.RemoveAll(sharedVenv.tmp)
	}
	return code
}

func baseVenv() (string, string, error) {
	sharedVenv.once.Do(func() {
		tmp, err := os.MkdirTemp("", "swcli-test-venv-")
		if err != nil {
			sharedVenv.err = err
			return
		}
		sharedVenv.tmp = tmp
		dir := filepath.Join(tmp, "venv")
		if out, err := exec.Command("python3", "-m", "venv", dir).CombinedOutput(); err != nil {
			sharedVenv.err = fmt.Errorf("python3 -m venv: %v: %s", err, out)
			return
		}
		out, err := exec.Command(filepath.Join(dir, "bin", "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])").Output()
		if err != nil {
			sharedVenv.err = err
			return
		}
		sharedVenv.dir, sharedVenv.py = dir, strings.TrimSpace(string(out))
	})
	return sharedVenv.dir, sharedVenv.py, sharedVenv.err
}

// TestScripts runs testdata/script/*.txtar against the real entry point.
func TestScripts(t *testing.T) {
	// testscript removes the parent of the scripts' work directories only after every
	// script ran, so a -run that picks some would leave it in $TMPDIR: make it in ours.
	t.Setenv("GOTMPDIR", t.TempDir())
	testscript.Run(t, scriptParams("testdata/script"))
}

// scriptParams are the testscripts' conditions, setup and commands, for scripts in dir.
func scriptParams(dir string) testscript.Params {
	wheelScript := mustAbs(filepath.Join("testdata", "make-wheel.py"))
	venvOK, venvWhy := hostVenv()
	return testscript.Params{
		Dir: dir,
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "venv": // python3 with venv and pip: [!venv] skip
				return venvOK, nil
			case "starwhale": // Starwhale's own client runs here: [!starwhale] skip
				_, err := corpus.StarwhaleClient()
				return err == nil, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("VENV_MISSING", venvWhy)
			env.Setenv("SWCLI_ROOT", filepath.Join(env.WorkDir, "root"))
			env.Setenv("SWCLI_CONFIG", filepath.Join(env.WorkDir, "config", "config.yaml"))
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("MAKE_WHEEL", wheelScript)
			env.Setenv("REPO", mustAbs(".."))
			if p, err := corpus.StarwhaleClient(); err == nil {
				// Starwhale's client, kept away from the home: its config and store in the
				// script's directory, pip offline, no retries of refused requests.
				env.Setenv("STARWHALE", p)
				env.Setenv("STARWHALE_PYTHON", shebang(p)) // the interpreter its packages are installed for
				env.Setenv("SW_CLI_CONFIG", filepath.Join(env.WorkDir, "sw", "config.yaml"))
				env.Setenv("SW_LOCAL_STORAGE", filepath.Join(env.WorkDir, "sw", "store"))
				env.Setenv("SW_CLIENT_RETRY_ATTEMPTS", "0")
				env.Setenv("PIP_NO_INDEX", "1")
				env.Setenv("COLUMNS", "200")
			} else {
				env.Setenv("STARWHALE_MISSING", err.Error())
			}
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
			// workdir NAME DIR: a runtime workdir as 'swcli rt create -n NAME DIR' makes it
			// (runtime.yaml and a venv), with the venv copied from one made once.
			"workdir": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: workdir NAME DIR")
				}
				base, py, err := baseVenv()
				if err != nil {
					ts.Fatalf("workdir: %v", err)
				}
				dir := ts.MkAbs(args[1])
				if err := os.MkdirAll(dir, 0o755); err != nil {
					ts.Fatalf("workdir: %v", err)
				}
				if out, err := exec.Command("cp", "-a", base, filepath.Join(dir, "venv")).CombinedOutput(); err != nil {
					ts.Fatalf("workdir: cp: %v: %s", err, out)
				}
				yaml := fmt.Sprintf("api_version: \"1.1\"\nname: %s\nmode: venv\nenvironment:\n  python: \"%s\"\n  arch: noarch\n  os: ubuntu:20.04\ndependencies: []\n", args[0], py)
				if err := os.WriteFile(filepath.Join(dir, "runtime.yaml"), []byte(yaml), 0o644); err != nil {
					ts.Fatalf("workdir: %v", err)
				}
			},
			// serve ROOT: run a cloud instance on ROOT on a loopback port for the rest of the
			// script; $SERVER is its URL.
			"serve": func(ts *testscript.TestScript, neg bool, args []string) {
				in, err := ops.Open(context.Background(), ts.MkAbs(args[0]), ops.OpenOptions{Name: "team", Exclusive: true})
				if err != nil {
					ts.Fatalf("serve: %v", err)
				}
				srv := httptest.NewServer(server.NewServer(in).Handler())
				ts.Setenv("SERVER", srv.URL)
				ts.Defer(func() { srv.Close(); in.Close() })
			},
			// page TOKEN URL: sign in to the web console of URL's server with TOKEN, then
			// open URL (following redirects) and write its status and text to stdout; fails
			// unless the page answers 200 (! page: unless it does not).
			"page": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: page TOKEN URL")
				}
				u, err := url.Parse(args[1])
				if err != nil {
					ts.Fatalf("page: %v", err)
				}
				jar, _ := cookiejar.New(nil)
				c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
				origin := u.Scheme + "://" + u.Host
				req, _ := http.NewRequest("POST", origin+"/login", strings.NewReader(url.Values{"token": {args[0]}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", origin)
				res, err := c.Do(req)
				if err != nil {
					ts.Fatalf("page: sign in: %v", err)
				}
				res.Body.Close()
				res, err = c.Get(args[1])
				if err != nil {
					ts.Fatalf("page: %v", err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				ts.Stdout().Write([]byte(fmt.Sprintf("status %d\n%s", res.StatusCode, html.UnescapeString(string(body)))))
				if (res.StatusCode == 200) == neg {
					ts.Fatalf("page %s: status %d", args[1], res.StatusCode)
				}
			},
			// capture VAR REGEXP [FILE]: set VAR to the first group of REGEXP in the last
			// stdout (or in FILE).
			"capture": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 && len(args) != 3 {
					ts.Fatalf("usage: capture VAR REGEXP [FILE]")
				}
				text := ts.ReadFile("stdout")
				if len(args) == 3 {
					text = ts.ReadFile(args[2])
				}
				m := regexp.MustCompile(args[1]).FindStringSubmatch(text)
				if len(m) < 2 {
					ts.Fatalf("capture: no match for %s", args[1])
				}
				ts.Setenv(args[0], m[1])
			},
			// waitfor PATH: wait (up to 20 s) until PATH exists, e.g. a server's socket.
			"waitfor": func(ts *testscript.TestScript, neg bool, args []string) {
				deadline := time.Now().Add(20 * time.Second)
				for {
					if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("waitfor: %s did not appear", args[0])
					}
					time.Sleep(20 * time.Millisecond)
				}
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
	}
}

// shebang is the interpreter a script's first line names ("python3" if none).
func shebang(path string) string {
	b, _ := os.ReadFile(path)
	line, _, _ := strings.Cut(string(b), "\n")
	if f := strings.Fields(strings.TrimPrefix(line, "#!")); strings.HasPrefix(line, "#!") && len(f) > 0 {
		if filepath.Base(f[0]) == "env" && len(f) > 1 {
			return f[1]
		}
		return f[0]
	}
	return "python3"
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}
