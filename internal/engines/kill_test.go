package engines_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swcli/swcli/internal/engines"
)

// helperEnv makes this test binary the victim of TestNothingLeftAfterKill.
const helperEnv = "SWCLI_ENGINES_KILL_HELPER"

// TestKillHelper is the victim: it starts PostgreSQL and nginx (and SeaweedFS when it is
// built already), says where they are, and waits to be killed.
func TestKillHelper(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("run by TestNothingLeftAfterKill")
	}
	ctx := context.Background()
	pg, err := engines.StartPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("engine postgres %d %s\n", pg.Pid(), pg.Dir)
	if id, ok := pg.ShmID(); ok {
		fmt.Printf("shm postgres %d\n", id)
	}
	ng, err := engines.StartNginx(ctx, []string{fmt.Sprintf("127.0.0.1:%d", pg.Port)})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("engine nginx %d %s\n", ng.Pid(), ng.Dir)
	if weed := os.Getenv("SWCLI_WEED"); weed != "" {
		s3, err := engines.StartS3(ctx, weed)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("engine weed %d %s\n", s3.Pid(), s3.Dir)
		for _, f := range s3.Sockets() {
			fmt.Printf("file weed %s\n", f)
		}
	}
	fmt.Println("ready")
	time.Sleep(10 * time.Minute)
}

// A test binary killed with SIGKILL while its engines run (what a CI timeout or a closed
// terminal does) leaves no engine process, no engine directory and none of the sockets
// SeaweedFS makes in /tmp behind: each engine dies with it (Pdeathsig), and a reaper kills
// what outlived the leader (PostgreSQL's backends) and removes the directories and files.
func TestNothingLeftAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and nginx in a child test binary; CI runs it without -short")
	}
	if _, err := engines.NginxBin(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type engine struct {
		name string
		pid  int
		dir  string
	}
	var es []engine
	var files []string // what engines make outside their directories
	shm := -1          // PostgreSQL's System V segment
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 1 && f[0] == "ready" {
			break
		}
		if len(f) == 4 && f[0] == "engine" {
			pid, _ := strconv.Atoi(f[2])
			es = append(es, engine{f[1], pid, f[3]})
		}
		if len(f) == 3 && f[0] == "file" {
			files = append(files, f[2])
		}
		if len(f) == 3 && f[0] == "shm" {
			shm, _ = strconv.Atoi(f[2])
		}
	}
	if len(es) < 2 || shm < 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the helper started %d engines (PostgreSQL's shared memory: %d)", len(es), shm)
	}
	// The engines' own children, to check they die too.
	pids := map[int]string{}
	for _, e := range es {
		pids[e.pid] = e.name
		for _, c := range groupMembers(e.pid) {
			pids[c] = e.name + " (child)"
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var left []string
		for pid, name := range pids {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) && !zombie(pid) {
				left = append(left, fmt.Sprintf("%s pid %d", name, pid))
			}
		}
		for _, e := range es {
			if _, err := os.Stat(e.dir); err == nil {
				left = append(left, e.name+" directory "+e.dir)
			}
		}
		for _, f := range files {
			if _, err := os.Lstat(f); err == nil {
				left = append(left, "file "+f)
			}
		}
		if shmExists(t, shm) {
			left = append(left, fmt.Sprintf("postgres shared memory segment %d", shm))
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("20 s after the test binary was killed, left: %s", strings.Join(left, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// groupMembers lists the processes of process group pgid (from /proc).
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid && pid != pgid {
			out = append(out, pid)
		}
	}
	return out
}

// zombie reports a process that has exited and waits for its parent to reap it.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// shmExists reports whether System V shared memory segment id exists (/proc/sysvipc/shm).
func shmExists(t *testing.T, id int) bool {
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		t.Fatalf("list shared memory segments: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[1] == strconv.Itoa(id) {
			return true
		}
	}
	return false
}
