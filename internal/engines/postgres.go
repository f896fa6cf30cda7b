// Package engines starts the real engines the scale-out tests need, in temporary
// directories: PostgreSQL (Debian's, initdb + postgres, as a non-root user when the tests run
// as root) and SeaweedFS's S3 server (built once by scripts/engine-weed.sh). Tests that need
// them skip, saying why, only under -short; otherwise a missing engine is a failure.
package engines

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Postgres is a running PostgreSQL server.
type Postgres struct {
	Dir    string // data and socket directory
	Port   int
	bin    string
	cred   *syscall.Credential
	cmd    *exec.Cmd
	exited chan struct{}
}

// DSN is a connection string for database db (a key=value string pgx and libpq read).
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable", p.Port, db)
}

// URL is a postgres:// address of database db over loopback TCP: what swcli's --ledger takes.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// PostgresBin finds Debian's PostgreSQL binaries (the newest installed), or says how to get
// them.
func PostgresBin() (string, error) {
	if b := os.Getenv("SWCLI_PG_BIN"); b != "" {
		return b, nil
	}
	ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(ms)
	if len(ms) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("no PostgreSQL here: apt-get install postgresql (or set SWCLI_PG_BIN)")
	}
	return filepath.Dir(ms[len(ms)-1]), nil
}

// StartPostgres initialises and starts a server in a new temporary directory, listening
// on a socket there (and on loopback TCP at Port).
func StartPostgres(ctx context.Context) (*Postgres, error) {
	bin, err := PostgresBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(pgParent(), "swcli-pg-")
	if err != nil {
		return nil, err
	}
	p := &Postgres{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as nobody, in a directory nobody owns.
		u, err := user.Lookup("nobody")
		if err != nil {
			return nil, fmt.Errorf("postgres as root needs the user nobody: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if err := p.run(ctx, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		p.Stop()
		return nil, err
	}
	if p.Port, err = freePort(); err != nil {
		p.Stop()
		return nil, err
	}
	// postgres itself, not pg_ctl (which daemonises it out of reach): a child of this
	// process, in its own group, killed with it (reap.go).
	// Loopback TCP only: a unix socket's path is bounded (about 100 bytes), $TMPDIR is not.
	// Dynamic shared memory in files of the data directory, not /dev/shm: a server killed
	// with its test binary leaves its segments where its directory's removal takes them
	// (the System V segment it keeps besides is the reaper's, reap.go).
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"), "-k", "",
		"-p", strconv.Itoa(p.Port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200",
		"-c", "dynamic_shared_memory_type=mmap")
	cmd.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		p.Stop()
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = Detach(p.cred)
	if err := cmd.Start(); err != nil {
		p.Stop()
		return nil, err
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func() { cmd.Wait(); close(p.exited) }()
	if err := Reap(cmd.Process.Pid, dir); err != nil {
		p.Stop()
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port)); err == nil {
			c.Close()
			if err := p.run(ctx, "pg_isready", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-q"); err == nil {
				return p, nil
			}
		}
		select {
		case <-p.exited:
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			p.Stop()
			return nil, fmt.Errorf("postgres exited: %s", lastLines(log, 10))
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			p.Stop()
			return nil, fmt.Errorf("postgres did not start in 60 s: %s", lastLines(log, 10))
		}
	}
}

// pgParent is where the server's directory goes: the temporary directory, unless the tests
// run as root and nobody (the server's user) cannot reach into it (a $TMPDIR of mode 0700),
// then /tmp.
func pgParent() string {
	t := os.TempDir()
	if os.Geteuid() != 0 {
		return t
	}
	for d := t; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if filepath.Dir(d) == d {
			return t
		}
	}
}

// run runs a PostgreSQL binary as the server's user.
func (p *Postgres) run(ctx context.Context, name string, args ...string) error {
	name = filepath.Join(p.bin, name)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = p.Dir
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %v: %w: %s", filepath.Base(name), args, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// ShmID is the System V shared memory segment the server keeps (postmaster.pid's seventh
// line: key and id), if it says one.
func (p *Postgres) ShmID() (int, bool) {
	b, err := os.ReadFile(filepath.Join(p.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return 0, false
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return 0, false
	}
	id, err := strconv.Atoi(f[1])
	return id, err == nil
}

// Stop stops the server (fast shutdown: SIGINT, then SIGKILL of its group after a grace)
// and removes its directory.
func (p *Postgres) Stop() {
	if p == nil {
		return
	}
	if p.cmd != nil && p.cmd.Process != nil {
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	os.RemoveAll(p.Dir)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ps, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ps[0], nil
}

// freePorts asks the kernel for n free loopback ports, all different: each is held until
// all are chosen (ports freed one by one may be handed out again at once).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Pid is the engine's process id (the leader of its process group).
func (p *Postgres) Pid() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}
