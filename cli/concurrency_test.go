package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/server"
)

// procEnv is a standalone root and a client config for swcli processes run by a test.
type procEnv struct {
	t    *testing.T
	dir  string
	root string
	env  []string
}

func newProcEnv(t *testing.T) *procEnv {
	t.Helper()
	if ok, why := hostVenv(); !ok {
		t.Skip(why)
	}
	dir := t.TempDir()
	p := &procEnv{t: t, dir: dir, root: filepath.Join(dir, "root")}
	p.env = append(os.Environ(), "SWCLI_ROOT="+p.root, "SWCLI_CONFIG="+filepath.Join(dir, "config.yaml"),
		"HOME="+dir, "SWCLI_LOCK_TIMEOUT=0")
	return p
}

// result is one swcli process: its arguments, exit code, output and time.
type result struct {
	args           []string
	code           int
	stdout, stderr string
	took           time.Duration
	hung           bool
}

// swcli runs one process and gives up on it (a hang) after limit.
func (p *procEnv) swcli(limit time.Duration, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "swcli", args...)
	cmd.Env = p.env
	cmd.Dir = p.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ctx.Err() != nil {
		r.hung, r.code = true, -1
	} else if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		r.code = -2
		r.stderr += err.Error()
	}
	return r
}

// must runs swcli and fails the test unless it exits 0.
func (p *procEnv) must(args ...string) string {
	p.t.Helper()
	r := p.swcli(2*time.Minute, args...)
	if r.code != 0 {
		p.t.Fatalf("swcli %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// workdirs makes n runtime workdirs, each with a venv (copied from the one the test
// binary makes once) and a requirements file of its own, so that each builds to versions
// of its own.
func (p *procEnv) workdirs(n int) []string {
	p.t.Helper()
	base, _, err := baseVenv()
	if err != nil {
		p.t.Fatal(err)
	}
	var dirs []string
	for i := range n {
		wd := filepath.Join(p.dir, fmt.Sprintf("w%d", i))
		os.MkdirAll(wd, 0o755)
		if out, err := exec.Command("cp", "-a", base, filepath.Join(wd, "venv")).CombinedOutput(); err != nil {
			p.t.Fatalf("cp venv: %v\n%s", err, out)
		}
		yaml := fmt.Sprintf("name: rt%d\nmode: venv\ndependencies:\n  - requirements.txt\n", i)
		os.WriteFile(filepath.Join(wd, "runtime.yaml"), []byte(yaml), 0o644)
		os.WriteFile(filepath.Join(wd, "requirements.txt"), []byte(fmt.Sprintf("# workdir %d\n", i)), 0o644)
		dirs = append(dirs, wd)
	}
	return dirs
}

// serve runs a cloud instance on root in this process, with user alice in project team,
// and logs the processes' config in to it as cloud://team.
func (p *procEnv) serve() {
	p.t.Helper()
	srvRoot := filepath.Join(p.dir, "srv")
	tok := strings.TrimSpace(p.must("--root", srvRoot, "server", "user", "add", "alice"))
	p.must("--root", srvRoot, "server", "project", "create", "team", "--member", "alice")
	in, err := ops.Open(context.Background(), srvRoot, ops.OpenOptions{Name: "team", Exclusive: true})
	if err != nil {
		p.t.Fatal(err)
	}
	srv := httptest.NewServer(server.NewServer(in).Handler())
	p.t.Cleanup(func() { srv.Close(); in.Close() })
	p.must("instance", "login", srv.URL, "--alias", "team", "--token", tok)
}

// The deadlock of issue 14: two copies from one root to a server and a tag in a third
// process. Before, 3 of 12 rounds hung with each copy holding one lock and waiting for the
// other's.
func TestTwoCopiesAndATagNeverHang(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 60 swcli processes; CI runs it")
	}
	p := newProcEnv(t)
	wd := p.workdirs(1)[0]
	p.serve()
	p.must("rt", "build", wd)
	for round := range 20 {
		var wg sync.WaitGroup
		res := make([]result, 3)
		for i, args := range [][]string{
			{"rt", "copy", "rt0", "cloud://team/project/team", "-f"},
			{"rt", "copy", "rt0", "cloud://team/project/team", "-f"},
			{"rt", "tag", "rt0/version/latest", fmt.Sprintf("t%d", round)},
		} {
			wg.Add(1)
			go func() { defer wg.Done(); res[i] = p.swcli(60*time.Second, args...) }()
		}
		wg.Wait()
		for _, r := range res {
			if r.hung || r.code != 0 {
				t.Fatalf("round %d: swcli %s: exit %d (hung: %v) after %s\n%s%s", round, strings.Join(r.args, " "), r.code, r.hung, r.took, r.stdout, r.stderr)
			}
		}
	}
}

// TestManyProcessesOneRoot runs builds, copies both ways, tags, removes, recovers,
// extracts, lists, audits and gc side by side on one root for a bounded time. Every
// process must finish with an outcome its race allows (a removed version may be gone by
// the time a tag names it: exit 3 or 4), never hang, never fail otherwise; afterwards the
// ledger verifies (projections equal a replay, manifests present), fsck is clean, and
// every version that is visible extracts (no version without its chunks).
func TestManyProcessesOneRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("runs swcli processes for half a minute; CI runs it")
	}
	p := newProcEnv(t)
	wds := p.workdirs(3)
	p.serve()
	p.must("project", "create", "down")
	for _, wd := range wds {
		p.must("rt", "build", wd)
	}
	type op struct {
		name string
		args func(r *rand.Rand) []string
		ok   []int // exit codes the races allow
	}
	rt := func(r *rand.Rand) string { return fmt.Sprintf("rt%d", r.IntN(len(wds))) }
	// A workdir is edited and built by one worker at a time: a file that changes while a
	// build reads it fails that build, rightly ("file changed while it was being stored").
	wdMu := make([]sync.Mutex, len(wds))
	ops := []op{
		{"build", func(r *rand.Rand) []string {
			i := r.IntN(len(wds))
			wdMu[i].Lock()
			os.WriteFile(filepath.Join(wds[i], "requirements.txt"), []byte(fmt.Sprintf("# %d %d\n", i, r.Int())), 0o644)
			if r.IntN(3) == 0 {
				return []string{"rt", "build", "--gen-all-bundles", wds[i]}
			}
			return []string{"rt", "build", wds[i]}
		}, []int{0}},
		{"tag", func(r *rand.Rand) []string {
			return []string{"rt", "tag", rt(r) + "/version/latest", fmt.Sprintf("t%d", r.IntN(5)), "-q"}
		}, []int{0, 3, 4}},
		{"remove", func(r *rand.Rand) []string { return []string{"rt", "rm", rt(r) + "/version/v0", "-y"} }, []int{0, 3, 4}},
		{"recover", func(r *rand.Rand) []string { return []string{"rt", "recover", rt(r) + "/version/v0"} }, []int{0, 3, 4}},
		{"extract", func(r *rand.Rand) []string {
			return []string{"rt", "extract", rt(r) + "/version/latest", "-f", "--target-dir", filepath.Join(p.dir, fmt.Sprintf("x%d", r.IntN(1<<30)))}
		}, []int{0, 3}},
		{"list", func(r *rand.Rand) []string { return []string{"rt", "list", "-o", "json"} }, []int{0}},
		{"info", func(r *rand.Rand) []string { return []string{"rt", "info", rt(r)} }, []int{0, 3}},
		{"history", func(r *rand.Rand) []string { return []string{"rt", "history", rt(r)} }, []int{0}},
		{"log", func(r *rand.Rand) []string { return []string{"ledger", "log"} }, []int{0}},
		{"verify", func(r *rand.Rand) []string { return []string{"ledger", "verify"} }, []int{0}},
		{"copy up", func(r *rand.Rand) []string { return []string{"rt", "copy", rt(r), "cloud://team/project/team", "-f"} }, []int{0, 3}},
		{"copy down", func(r *rand.Rand) []string {
			return []string{"rt", "copy", "cloud://team/project/team/runtime/" + rt(r), "local/project/down", "-f"}
		}, []int{0, 3}},
		{"gc", func(r *rand.Rand) []string { return []string{"gc"} }, []int{0}},
	}
	const workers = 6
	deadline := time.Now().Add(25 * time.Second)
	var mu sync.Mutex
	counts := map[string]int{}
	var failures []string
	var total atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 14))
			for time.Now().Before(deadline) {
				o := ops[r.IntN(len(ops))]
				if o.name == "gc" && r.IntN(4) != 0 { // gc holds everyone up: run it less
					continue
				}
				args := o.args(r)
				res := p.swcli(2*time.Minute, args...)
				if o.name == "build" {
					for i, wd := range wds {
						if args[len(args)-1] == wd {
							wdMu[i].Unlock()
						}
					}
				}
				total.Add(1)
				mu.Lock()
				counts[o.name]++
				okCode := false
				for _, c := range o.ok {
					okCode = okCode || c == res.code
				}
				if res.hung || !okCode {
					failures = append(failures, fmt.Sprintf("swcli %s: exit %d (hung: %v) after %s: %s", strings.Join(res.args, " "), res.code, res.hung, res.took, strings.TrimSpace(res.stderr)))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d processes in %d workers: %v; failures: %d", total.Load(), workers, counts, len(failures))
	if len(failures) > 0 {
		t.Fatalf("%d of %d processes failed:\n%s", len(failures), total.Load(), strings.Join(failures, "\n"))
	}

	// Afterwards: the ledger verifies (chain, projections equal a replay, manifests
	// present), every chunk verifies, and every visible version extracts.
	p.must("ledger", "verify")
	p.must("fsck")
	for _, project := range []string{"self", "down"} {
		var list struct {
			Versions []struct{ Runtime, Version, Status string }
		}
		if err := json.Unmarshal([]byte(p.must("rt", "list", "-p", project, "--show-removed", "--size", "1000", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		for _, v := range list.Versions {
			if v.Status != "live" {
				continue
			}
			uri := fmt.Sprintf("local/project/%s/runtime/%s/version/%s", project, v.Runtime, v.Version)
			p.must("rt", "extract", uri, "-f", "--target-dir", filepath.Join(p.dir, "final", v.Version))
		}
	}
}

// TestKillAtRandomPoints kills builds, copies to a server and gc with SIGKILL at random
// moments; each time the ledger verifies, fsck is clean, and the same command run again
// succeeds. (A server killed mid-copy: ops.TestCopyResumesAfterServerKill.)
func TestKillAtRandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("kills swcli processes; CI runs it")
	}
	p := newProcEnv(t)
	wd := p.workdirs(1)[0]
	p.serve()
	rng := rand.New(rand.NewPCG(10, 8))
	kill := func(args ...string) {
		cmd := exec.Command("swcli", args...)
		cmd.Env, cmd.Dir = p.env, p.dir
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rng.IntN(600)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	check := func(what string) {
		t.Helper()
		for _, args := range [][]string{{"ledger", "verify"}, {"fsck"}} {
			if r := p.swcli(time.Minute, args...); r.code != 0 {
				t.Fatalf("after killing %s: swcli %s: exit %d\n%s%s", what, strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
		}
	}
	for round := range 4 {
		os.WriteFile(filepath.Join(wd, "requirements.txt"), []byte(fmt.Sprintf("# round %d\n", round)), 0o644)
		kill("rt", "build", "--gen-all-bundles", wd)
		check("a build")
		p.must("rt", "build", "--gen-all-bundles", wd)

		kill("rt", "copy", "rt0", "cloud://team/project/team", "-f")
		check("a copy")
		p.must("rt", "copy", "rt0", "cloud://team/project/team", "-f")

		p.must("rt", "rm", "rt0/version/v"+fmt.Sprint(round), "-f", "-y") // garbage for gc
		kill("gc")
		check("gc")
		p.must("gc")
		check("gc, run again")
	}
}

// An honest user whose workdir's venv is a link to a venv elsewhere: the bundle holds the
// venv itself, and restoring the extraction rewrites the extraction, never the original.
func TestBuildOfALinkedVenv(t *testing.T) {
	if testing.Short() {
		t.Skip("makes a venv and restores it; CI runs it")
	}
	p := newProcEnv(t)
	wd := p.workdirs(1)[0]
	real := filepath.Join(p.dir, "elsewhere", "venv")
	os.MkdirAll(filepath.Dir(real), 0o755)
	if err := os.Rename(filepath.Join(wd, "venv"), real); err != nil {
		t.Fatal(err)
	}
	os.Symlink(real, filepath.Join(wd, "venv"))
	cfgBefore, _ := os.ReadFile(filepath.Join(real, "pyvenv.cfg"))
	p.must("rt", "build", "--gen-all-bundles", wd)
	out := filepath.Join(p.dir, "out")
	p.must("rt", "extract", "rt0", "--target-dir", out)
	if fi, err := os.Lstat(filepath.Join(out, "export", "venv")); err != nil || !fi.IsDir() {
		t.Fatalf("export/venv in the bundle: %v, %v; want the venv itself", fi, err)
	}
	p.must("rt", "restore", out)
	if cfg, _ := os.ReadFile(filepath.Join(real, "pyvenv.cfg")); string(cfg) != string(cfgBefore) {
		t.Fatal("restore rewrote the original venv")
	}
}

// Listing reads only the ledger: it answers while another process holds the store to
// itself (as gc's sweep does), where a command that reads the store waits and gives up.
func TestListingDoesNotWaitForTheStore(t *testing.T) {
	p := newProcEnv(t)
	p.must("project", "create", "team")
	st, err := cas.OpenLocalWith(context.Background(), filepath.Join(p.root, "store"), cas.LocalOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, args := range [][]string{{"runtime", "list"}, {"project", "list"}, {"runtime", "history", "nosuch"}, {"__complete", "project", ""}} {
		r := p.swcli(time.Minute, append([]string{"--lock-timeout", "1500ms"}, args...)...)
		if r.code == 10 || r.hung || strings.Contains(r.stderr, "in use by") { // the store stays held
			t.Fatalf("swcli %s waited for the store: exit %d after %s\n%s", strings.Join(args, " "), r.code, r.took, r.stderr)
		}
	}
	if r := p.swcli(time.Minute, "__complete", "project", ""); !strings.Contains(r.stdout, "team") {
		t.Fatalf("completion of projects: %q", r.stdout)
	}
	if r := p.swcli(time.Minute, "--lock-timeout", "1500ms", "fsck"); r.code != 10 {
		t.Fatalf("fsck with the store held: exit %d after %s, want 10\n%s", r.code, r.took, r.stderr)
	}
}

// A command that must wait says for whom after a second, and gives up with exit code 10
// after --lock-timeout.
func TestLockTimeoutExits10(t *testing.T) {
	p := newProcEnv(t)
	p.must("project", "list")                                                           // the root exists
	in, err := ops.Open(context.Background(), p.root, ops.OpenOptions{Exclusive: true}) // as a server or gc holds it
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r := p.swcli(time.Minute, "--lock-timeout", "1500ms", "runtime", "list")
	if r.code != 10 || !strings.Contains(r.stderr, fmt.Sprintf("in use by pid %d", os.Getpid())) || !strings.Contains(r.stderr, "gave up after") {
		t.Fatalf("exit %d after %s\n%s", r.code, r.took, r.stderr)
	}
}
