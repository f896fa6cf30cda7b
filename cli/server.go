package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/term"

	"github.com/swcli/swcli/internal/fsutil"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/client"
	"github.com/swcli/swcli/ops/console"
	"github.com/swcli/swcli/ops/server"
)

// ServerCmd is `swcli server`: run a cloud instance and manage its users and projects.
type ServerCmd struct {
	Backend `embed:""`
	Run     ServerRunCmd     `cmd:"" default:"withargs" help:"Serve the instance at --root (the default subcommand)."`
	User    ServerUserCmd    `cmd:"" help:"Manage the server's users and tokens."`
	Project ServerProjectCmd `cmd:"" help:"Manage the server's projects and their members."`
	Gc      ServerGCCmd      `cmd:"" name:"gc" help:"Delete chunks no version uses, while the server runs (safe beside copies)."`
	Fsck    ServerFsckCmd    `cmd:"" help:"Re-hash every chunk of the server's store, while it runs."`
}

// ServerRunCmd serves.
type ServerRunCmd struct {
	Listen  string `default:"127.0.0.1:8080" help:"Address to listen on."`
	TLSCert string `name:"tls-cert" help:"TLS certificate (PEM); with --tls-key the server speaks HTTPS." type:"existingfile"`
	TLSKey  string `name:"tls-key" help:"TLS key (PEM)." type:"existingfile"`
	Name    string `help:"The instance's name in events (default: the host name)."`
	// NoConsole leaves the web console out: only the API is served.
	NoConsole bool `name:"no-console" help:"Serve the API only, without the web console at /projects."`
}

// Run serves until SIGTERM or Ctrl-C, then shuts down gracefully.
func (c *ServerRunCmd) Run(e *env) error {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(server.ServerMemoryLimit)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return ops.Errorf(ops.KindUsage, "give both --tls-cert and --tls-key, or neither", "TLS needs a certificate and a key")
	}
	name := c.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	// A server's root holds every tenant's runtimes and its users: private, from its first
	// file (umask 077 for all it creates; the root 0700, refused if others may write it).
	syscall.Umask(0o077)
	if err := ops.PrepareServerRoot(e.g.root(), func(s string) { e.log.Warn().Msg(s) }); err != nil {
		return err
	}
	in, err := e.openWith(ops.OpenOptions{Name: name, Exclusive: true})
	if err != nil {
		return err
	}
	defer in.Close()
	s := server.NewServer(in)
	if !c.NoConsole {
		s.Pages = console.New(s)
	}
	s.OnError = func(msg string) { e.log.Error().Msg(msg) }
	s.Log = func(a server.AccessEntry) {
		e.log.Info().Str("method", a.Method).Str("path", a.Path).Str("user", a.User).Int("status", a.Status).
			Int64("bytes", a.Bytes).Str("took", a.Took.Round(time.Microsecond).String()).Msg("request")
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return ops.Errorf(ops.KindUsage, "choose another --listen address", "listen on %s: %v", c.Listen, err)
	}
	ln = server.LimitConns(ln, server.MaxConns, server.MaxConnsPerIP)
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ReadTimeout: 10 * time.Minute, WriteTimeout: 30 * time.Minute}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	// The address on its own line lets scripts and tests read where the server listens.
	fmt.Fprintf(e.stdout, "serving %s on %s://%s\n", e.g.root(), scheme, ln.Addr())
	if f, ok := e.stdout.(interface{ Sync() error }); ok {
		f.Sync()
	}
	sock, err := ops.ListenSocket(e.g.root())
	if err != nil {
		ln.Close()
		return err
	}
	defer sock.Close()
	// ROOT/server.url says where it listens, for scripts and admins on this host. It is
	// written whole (a temporary, then a rename): a script that waits for it to appear
	// never reads it half written.
	urlFile := filepath.Join(e.g.root(), "server.url")
	if err := fsutil.WriteFileAtomic(urlFile, []byte(fmt.Sprintf("%s://%s\n", scheme, ln.Addr())), 0o600); err != nil {
		ln.Close()
		sock.Close()
		return err
	}
	defer os.Remove(urlFile)
	admin := &http.Server{Handler: s.SocketHandler(), ReadHeaderTimeout: 10 * time.Second}
	go admin.Serve(sock)
	defer admin.Close()
	errc := make(chan error, 1)
	go func() {
		if c.TLSCert != "" {
			errc <- srv.ServeTLS(ln, c.TLSCert, c.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-e.ctx.Done():
	}
	e.log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// InstanceCmd is `swcli instance`.
type InstanceCmd struct {
	Login  InstanceLoginCmd  `cmd:"" help:"Register a server: check the token and save it."`
	List   InstanceListCmd   `cmd:"" aliases:"ls" help:"List the registered instances."`
	Select InstanceSelectCmd `cmd:"" aliases:"use" help:"Make an instance the default."`
	Logout InstanceLogoutCmd `cmd:"" help:"Forget a server's token."`
	// Checkpoints shows what this client has seen of a server's history.
	Checkpoints InstanceCheckpointsCmd `cmd:"" help:"Show a server's pinned ledger key and the last checkpoint seen; --trust KEY pins another key."`
}

// InstanceCheckpointsCmd is 'instance checkpoints ALIAS'.
type InstanceCheckpointsCmd struct {
	Alias string `arg:"" help:"The server's alias."`
	Trust string `help:"Pin this ledger key instead (after the server's admin rotated it: check the key with them first)." placeholder:"KEY"`
	// Witnesses this client requires.
	Witness         []string `help:"Trust this witness key (repeat; replaces the list)." placeholder:"KEY"`
	MinCosignatures *int     `name:"min-cosignatures" help:"How many trusted witnesses must vouch for the server's history (0: none)."`
}

// Run shows (or changes) the pin.
func (c *InstanceCheckpointsCmd) Run(e *env) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	ic := cfg.Instances[c.Alias]
	if ic == nil || ic.URL == "" {
		return ops.Errorf(ops.KindNotFound, "'swcli instance list' shows the servers", "no server %q", c.Alias)
	}
	if c.Trust != "" {
		if _, err := note.NewVerifier(c.Trust); err != nil {
			return ops.Errorf(ops.KindUsage, "give the key 'swcli ledger key' prints on the server", "--trust %q: %v", c.Trust, err)
		}
		if _, err := ops.OpenCheckpoint([]byte(ic.Checkpoint), c.Trust); err != nil && ic.Checkpoint != "" {
			e.log.Warn().Msg("the last checkpoint seen was not signed with this key (as after a rotation)")
		}
		ic.LedgerKey = c.Trust
	}
	if len(c.Witness) > 0 || c.MinCosignatures != nil {
		if len(c.Witness) > 0 {
			for _, k := range c.Witness {
				if _, err := note.NewVerifier(k); err != nil {
					return ops.Errorf(ops.KindUsage, "give the key 'swcli ledger key' prints on the witness", "--witness %q: %v", k, err)
				}
			}
			ic.Witnesses = c.Witness
		}
		if c.MinCosignatures != nil {
			if *c.MinCosignatures < 0 || *c.MinCosignatures > len(ic.Witnesses) {
				return ops.Errorf(ops.KindUsage, "", "--min-cosignatures %d: between 0 and the %d witnesses trusted", *c.MinCosignatures, len(ic.Witnesses))
			}
			ic.MinCosignatures = *c.MinCosignatures
		}
	}
	if c.Trust != "" || len(c.Witness) > 0 || c.MinCosignatures != nil {
		if err := cfg.Save(); err != nil {
			return err
		}
	}
	cp := ops.Checkpoint{}
	if ic.Checkpoint != "" {
		if cp, err = ops.ParseCheckpointText(ic.Checkpoint); err != nil {
			return err
		}
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"alias": c.Alias, "url": ic.URL, "ledger_key": ic.LedgerKey, "size": cp.Size, "root": cp.Hash.String(),
			"checkpoint": ic.Checkpoint, "witnesses": nonNil(ic.Witnesses), "min_cosignatures": ic.MinCosignatures})
	}
	if ic.LedgerKey == "" {
		e.printf("cloud://%s (%s): no ledger key pinned yet (the server published none at the last contact)\n", c.Alias, ic.URL)
		return nil
	}
	e.printf("cloud://%s (%s)\nledger key: %s\nlast seen:  %s\nwitnesses:  %d trusted, %d required\n\n%s", c.Alias, ic.URL, ic.LedgerKey, cp, len(ic.Witnesses), ic.MinCosignatures, ic.Checkpoint)
	return nil
}

// InstanceLoginCmd logs in.
type InstanceLoginCmd struct {
	URL        string `arg:"" help:"http(s)://host:port of the server."`
	Alias      string `required:"" help:"Name for it: cloud://ALIAS in URIs."`
	Token      string `help:"The token from 'swcli server user add' (better: SWCLI_TOKEN, --token-stdin, or the prompt: a command line is seen by ps and kept in shell history)." env:"SWCLI_TOKEN"`
	TokenStdin bool   `name:"token-stdin" help:"Read the token from standard input."`
	Project    string `help:"Project to select on this instance (default: the first you may use)."`
}

// Run logs in.
func (c *InstanceLoginCmd) Run(e *env) error {
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		return ops.Errorf(ops.KindUsage, "e.g. http://127.0.0.1:8080", "server URL %q must start with http:// or https://", c.URL)
	}
	if c.Alias == "local" || strings.ContainsAny(c.Alias, "/:") || c.Alias == "" {
		return ops.Errorf(ops.KindUsage, "choose another alias", "invalid alias %q", c.Alias)
	}
	tok, err := e.readToken(c.Token, c.TokenStdin)
	if err != nil {
		return err
	}
	r := client.NewRemote(c.Alias, strings.TrimRight(c.URL, "/"), tok)
	user, admin, err := r.Whoami(e.ctx)
	if err != nil {
		return err
	}
	projects, err := r.Projects(e.ctx)
	if err != nil {
		return err
	}
	project := ops.NormalizeName(c.Project)
	if project != "" && !slices.Contains(projects, project) {
		return ops.Errorf(ops.KindNotFound, "you may use: "+strings.Join(projects, ", "), "no project %s for %s on %s", project, user, r.URL)
	}
	if project == "" && len(projects) > 0 {
		project = projects[0]
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	ic := &ops.InstanceConfig{URL: r.URL, Token: tok, User: user, CurrentProject: project}
	if old := cfg.Instances[c.Alias]; old != nil && old.URL == r.URL {
		// Logging in again changes no pin: the key and the last checkpoint stay.
		ic.LedgerKey, ic.Checkpoint = old.LedgerKey, old.Checkpoint
	}
	key, cp, err := ops.FollowLedger(e.ctx, r, ic.LedgerKey, ic.Checkpoint)
	if err != nil {
		return err
	}
	pinned := key != "" && ic.LedgerKey == ""
	if key != "" {
		ic.LedgerKey, ic.Checkpoint = key, cp.Note
	}
	cfg.Instances[c.Alias] = ic
	if err := cfg.Save(); err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"alias": c.Alias, "url": r.URL, "user": user, "admin": admin, "project": project})
	}
	e.printf("logged in to %s as %s (cloud://%s)\n", r.URL, user, c.Alias)
	if pinned {
		e.printf("pinned its ledger key %s (trust on first use: compare it with 'swcli ledger key' on the server); history checked from %s\n", key, cp)
	}
	if project != "" {
		e.printf("selected project cloud://%s/project/%s\n", c.Alias, project)
	} else {
		e.printf("no project yet: ask the server's admin to add you to one\n")
	}
	return nil
}

// readToken takes the token from the flag or SWCLI_TOKEN, standard input (--token-stdin),
// or a prompt that does not echo on a terminal.
func (e *env) readToken(flag string, stdin bool) (string, error) {
	switch {
	case stdin:
		line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", err
		}
		if tok := strings.TrimSpace(line); tok != "" {
			return tok, nil
		}
		return "", ops.Errorf(ops.KindUsage, "echo \"$TOKEN\" | swcli instance login URL --alias NAME --token-stdin", "--token-stdin: standard input has no token")
	case flag != "":
		return flag, nil
	}
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, "token: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	}
	return "", ops.Errorf(ops.KindUsage, "set SWCLI_TOKEN, pipe it with --token-stdin, or run on a terminal to be asked", "no token given")
}

// InstanceListCmd lists instances.
type InstanceListCmd struct{}

// Run lists.
func (c *InstanceListCmd) Run(e *env) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	names := make([]string, 0, len(cfg.Instances))
	for n := range cfg.Instances {
		names = append(names, n)
	}
	sortStrings(names)
	if e.jsonOut() {
		rows := []map[string]any{}
		for _, n := range names {
			ic := cfg.Instances[n]
			rows = append(rows, map[string]any{"alias": n, "url": ic.URL, "user": ic.User, "selected": n == cfg.CurrentInstance, "project": cfg.Project(n)})
		}
		return e.printJSON(map[string]any{"instances": rows})
	}
	rows := [][]string{{"", "ALIAS", "URL", "USER", "PROJECT"}}
	for _, n := range names {
		ic := cfg.Instances[n]
		mark, url := "", ic.URL
		if n == cfg.CurrentInstance {
			mark = "*"
		}
		if n == "local" {
			url = e.g.root()
		}
		rows = append(rows, []string{mark, n, url, ic.User, orNone(cfg.Project(n))})
	}
	e.table(rows)
	return nil
}

// InstanceSelectCmd selects an instance.
type InstanceSelectCmd struct {
	Alias string `arg:"" help:"Alias, or local."`
}

// Run selects.
func (c *InstanceSelectCmd) Run(e *env) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	if cfg.Instances[c.Alias] == nil {
		return ops.Errorf(ops.KindNotFound, "'swcli instance list' shows the instances", "unknown instance %q", c.Alias)
	}
	cfg.CurrentInstance = c.Alias
	if err := cfg.Save(); err != nil {
		return err
	}
	e.printf("selected instance %s\n", c.Alias)
	return nil
}

// InstanceLogoutCmd logs out.
type InstanceLogoutCmd struct {
	Alias string `arg:"" help:"Alias."`
}

// Run logs out.
func (c *InstanceLogoutCmd) Run(e *env) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	if c.Alias == "local" || cfg.Instances[c.Alias] == nil {
		return ops.Errorf(ops.KindNotFound, "'swcli instance list' shows the instances", "no logged-in instance %q", c.Alias)
	}
	delete(cfg.Instances, c.Alias)
	if cfg.CurrentInstance == c.Alias {
		cfg.CurrentInstance = "local"
	}
	if err := cfg.Save(); err != nil {
		return err
	}
	e.printf("logged out of %s\n", c.Alias)
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
