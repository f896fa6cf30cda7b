// Package engines starts the real engines the scale-out tests need, in temporary
// directories: PostgreSQL (Debian's, initdb + pg_ctl, as a non-root user when the tests run
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
	"syscall"
	"time"
)

// Postgres is a running PostgreSQL server.
type Postgres struct {
	Dir  string // data and socket directory
	Port int
	bin  string
	cred *syscall.Credential
}

// DSN is a connection string for database db (a key=value string pgx and libpq read).
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", filepath.Join(p.Dir, "sock"), p.Port, db)
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
	dir, err := os.MkdirTemp("", "swcli-pg-")
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
	if err := p.run(ctx, "mkdir-sock"); err != nil {
		p.Stop()
		return nil, err
	}
	if p.Port, err = freePort(); err != nil {
		p.Stop()
		return nil, err
	}
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", filepath.Join(dir, "sock"), p.Port)
	if err := p.run(ctx, "pg_ctl", "-D", filepath.Join(dir, "data"), "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		p.Stop()
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return p, nil
}

// run runs a PostgreSQL binary as the server's user ("mkdir-sock" makes the socket dir).
func (p *Postgres) run(ctx context.Context, name string, args ...string) error {
	if name == "mkdir-sock" {
		name, args = "/bin/mkdir", []string{"-p", filepath.Join(p.Dir, "sock")}
	} else {
		name = filepath.Join(p.bin, name)
	}
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

// Stop stops the server (fast shutdown) and removes its directory.
func (p *Postgres) Stop() {
	if p == nil {
		return
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "data", "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		p.run(ctx, "pg_ctl", "-D", filepath.Join(p.Dir, "data"), "-m", "fast", "-w", "stop")
		cancel()
	}
	os.RemoveAll(p.Dir)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
