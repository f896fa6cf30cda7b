package cli_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/server"
)

// onTerminal runs swcli with stdin, stdout and stderr on a pseudo-terminal, as a person at
// a terminal would, and returns what the terminal showed.
func onTerminal(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "swcli", args...)
	cmd.Env = append(os.Environ(), env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err = io.Copy(&out, f)
	if err != nil && !errors.Is(err, syscall.EIO) { // EIO: the other side closed
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("swcli %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

var percentRE = regexp.MustCompile(`(?m)(?:^|\r)(\w+) +([0-9]+)% \[`)

// risesTo100 checks that the bars drawn only rise and end at 100 %.
func risesTo100(t *testing.T, what, out string) {
	t.Helper()
	ms := percentRE.FindAllStringSubmatch(out, -1)
	if len(ms) == 0 {
		t.Fatalf("%s drew no progress bar:\n%q", what, out)
	}
	last := -1
	for _, m := range ms {
		p, _ := strconv.Atoi(m[2])
		if p < last {
			t.Fatalf("%s: the bar went back from %d%% to %d%%:\n%q", what, last, p, out)
		}
		last = p
	}
	if last != 100 {
		t.Fatalf("%s: the bar ended at %d%%:\n%q", what, last, out)
	}
}

// TestProgressOnATerminal: on a terminal, build, copy up, copy down, extract and restore
// draw a bar whose percentage only rises and ends at 100 %; off a terminal, nothing but
// the summary.
func TestProgressOnATerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("a build, a server and two copies on a terminal: the full suite runs it")
	}
	base, py, err := baseVenv()
	if err != nil {
		t.Skip(err)
	}
	_ = py
	dir := t.TempDir()
	wd := filepath.Join(dir, "work")
	os.MkdirAll(wd, 0o755)
	if out, err := exec.Command("cp", "-a", base, filepath.Join(wd, "venv")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	os.WriteFile(filepath.Join(wd, "runtime.yaml"), []byte("name: app\n"), 0o644)
	env := []string{"SWCLI_ROOT=" + filepath.Join(dir, "root"), "SWCLI_CONFIG=" + filepath.Join(dir, "config.yaml")}

	out := onTerminal(t, env, "rt", "build", "--gen-all-bundles", wd)
	risesTo100(t, "build", out)
	if !strings.Contains(out, "files)") || !strings.Contains(out, "/s") {
		t.Fatalf("build's bar shows no files or rate:\n%q", out)
	}
	// One count of files: the bar ends at the number the summary gives.
	counts := regexp.MustCompile(`\(([0-9,]+)/([0-9,]+) files\)`).FindAllStringSubmatch(out, -1)
	summary := regexp.MustCompile(`in ([0-9,]+) files`).FindStringSubmatch(out)
	if len(counts) == 0 || summary == nil || counts[len(counts)-1][1] != summary[1] || counts[len(counts)-1][2] != summary[1] {
		t.Fatalf("build's bar ends at %v, its summary says %v:\n%q", counts[len(counts)-1:], summary, out)
	}

	// A server on loopback, and a user logged in to it.
	srvRoot := filepath.Join(dir, "srv")
	tok, err := ops.AddUser(context.Background(), ops.FileAuth{Root: srvRoot}, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.CreateServerProject(context.Background(), ops.FileAuth{Root: srvRoot}, "mnist", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	in, err := ops.Open(context.Background(), srvRoot, ops.OpenOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	srv := httptest.NewServer(server.NewServer(in).Handler())
	defer srv.Close()
	login := exec.Command("swcli", "instance", "login", srv.URL, "--alias", "team")
	login.Env = append(append(os.Environ(), env...), "SWCLI_TOKEN="+tok)
	if b, err := login.CombinedOutput(); err != nil {
		t.Fatalf("login: %v %s", err, b)
	}

	out = onTerminal(t, env, "rt", "copy", "app", "cloud://team/project/mnist")
	risesTo100(t, "copy up", out)
	if !strings.Contains(out, "chunks)") || !strings.Contains(out, "sent ") {
		t.Fatalf("copy up: %q", out)
	}
	// Before a chunk moves, the bar is there at 0 % and says what the copy is doing.
	if m := percentRE.FindStringSubmatch(out); m == nil || m[2] != "0" || !strings.Contains(out, "listing what cloud://team has") ||
		!strings.Contains(out, "chunks cloud://team lacks") {
		t.Fatalf("copy up: no step shown at 0 %% before sending:\n%q", out)
	}
	env2 := []string{"SWCLI_ROOT=" + filepath.Join(dir, "root2"), "SWCLI_CONFIG=" + filepath.Join(dir, "config.yaml")}
	out = onTerminal(t, env2, "rt", "copy", "cloud://team/project/mnist/runtime/app", "local/project/self")
	risesTo100(t, "copy down", out)
	if !strings.Contains(out, "received ") {
		t.Fatalf("copy down: %q", out)
	}
	out = onTerminal(t, env2, "rt", "extract", "app", "--target-dir", filepath.Join(dir, "x"))
	risesTo100(t, "extract", out)
	out = onTerminal(t, env2, "rt", "restore", filepath.Join(dir, "x"))
	risesTo100(t, "restore", out)
	if !strings.Contains(out, "steps)") {
		t.Fatalf("restore: %q", out)
	}

	// A prompt answered "n" on a terminal: nothing removed, and a non-zero exit.
	cmd0 := exec.Command("swcli", "rt", "remove", "app")
	cmd0.Env = append(os.Environ(), env2...)
	f, err := pty.Start(cmd0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("n\n"))
	var said bytes.Buffer
	io.Copy(&said, f)
	if err := cmd0.Wait(); err == nil || !strings.Contains(said.String(), "not confirmed: nothing removed") {
		t.Fatalf("declined remove: %v %q", err, said.String())
	} else if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() != 1 {
		t.Fatalf("declined remove exited %d, want 1", ee.ExitCode())
	}

	// Off a terminal: the summary only; --progress=json gives JSON lines on stderr.
	cmd := exec.Command("swcli", "rt", "extract", "app", "--target-dir", filepath.Join(dir, "y"))
	cmd.Env = append(os.Environ(), env2...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil || se.Len() != 0 || !strings.HasPrefix(so.String(), "extracted ") {
		t.Fatalf("off a terminal: %v %q %q", err, so.String(), se.String())
	}
	cmd = exec.Command("swcli", "rt", "extract", "app", "-f", "--target-dir", filepath.Join(dir, "y"), "-o", "json", "--progress=json")
	cmd.Env = append(os.Environ(), env2...)
	so.Reset()
	se.Reset()
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil || !strings.Contains(se.String(), `"message_type":"status"`) || !strings.Contains(se.String(), `"percent_done":1`) || strings.Contains(so.String(), "message_type") {
		t.Fatalf("--progress=json: %v %q %q", err, so.String(), se.String())
	}
}
