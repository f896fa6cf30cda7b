package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/swcli/swcli/ops"
)

// ServerCmd is `swcli server`: run a cloud instance and manage its users and projects.
type ServerCmd struct {
	Run     ServerRunCmd     `cmd:"" default:"withargs" help:"Serve the instance at --root (the default subcommand)."`
	User    ServerUserCmd    `cmd:"" help:"Manage the server's users and tokens."`
	Project ServerProjectCmd `cmd:"" help:"Manage the server's projects and their members."`
}

// ServerRunCmd serves.
type ServerRunCmd struct {
	Listen  string `default:"127.0.0.1:8080" help:"Address to listen on."`
	TLSCert string `name:"tls-cert" help:"TLS certificate (PEM); with --tls-key the server speaks HTTPS." type:"existingfile"`
	TLSKey  string `name:"tls-key" help:"TLS key (PEM)." type:"existingfile"`
	Name    string `help:"The instance's name in events (default: the host name)."`
}

// Run serves until SIGTERM or Ctrl-C, then shuts down gracefully.
func (c *ServerRunCmd) Run(e *env) error {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(ops.ServerMemoryLimit)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return ops.Errorf(ops.KindUsage, "give both --tls-cert and --tls-key, or neither", "TLS needs a certificate and a key")
	}
	name := c.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	in, err := e.openWith(ops.OpenOptions{Name: name, Exclusive: true})
	if err != nil {
		return err
	}
	defer in.Close()
	s := ops.NewServer(in)
	s.Log = func(a ops.AccessEntry) {
		e.log.Info().Str("method", a.Method).Str("path", a.Path).Str("user", a.User).Int("status", a.Status).
			Int64("bytes", a.Bytes).Dur("took", a.Took).Msg("request")
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return ops.Errorf(ops.KindUsage, "choose another --listen address", "listen on %s: %v", c.Listen, err)
	}
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

// ServerUserCmd manages users.
type ServerUserCmd struct {
	Add    ServerUserAddCmd    `cmd:"" help:"Add a user; prints its token once."`
	Token  ServerUserTokenCmd  `cmd:"" help:"Issue another token for a user; prints it once."`
	Revoke ServerUserRevokeCmd `cmd:"" help:"Revoke every token of a user."`
}

// ServerUserAddCmd adds a user.
type ServerUserAddCmd struct {
	Name  string `arg:"" help:"User name."`
	Admin bool   `help:"The user sees and changes every project."`
}

// Run adds the user.
func (c *ServerUserAddCmd) Run(e *env) error {
	tok, err := ops.AddUser(e.ctx, e.g.root(), c.Name, c.Admin)
	if err != nil {
		return err
	}
	return e.printToken(c.Name, tok)
}

func (e *env) printToken(user, tok string) error {
	if e.jsonOut() {
		return e.printJSON(map[string]any{"user": user, "token": tok})
	}
	e.printf("%s\n", tok)
	fmt.Fprintf(e.stderr, "swcli: token for %s shown once; the server keeps only its hash\n", user)
	return nil
}

// ServerUserTokenCmd issues a token.
type ServerUserTokenCmd struct {
	Name string `arg:"" help:"User name."`
}

// Run issues the token.
func (c *ServerUserTokenCmd) Run(e *env) error {
	tok, err := ops.IssueToken(e.ctx, e.g.root(), c.Name)
	if err != nil {
		return err
	}
	return e.printToken(c.Name, tok)
}

// ServerUserRevokeCmd revokes tokens.
type ServerUserRevokeCmd struct {
	Name string `arg:"" help:"User name."`
}

// Run revokes.
func (c *ServerUserRevokeCmd) Run(e *env) error {
	if err := ops.RevokeTokens(e.ctx, e.g.root(), c.Name); err != nil {
		return err
	}
	e.printf("revoked every token of %s\n", c.Name)
	return nil
}

// ServerProjectCmd manages projects.
type ServerProjectCmd struct {
	Create ServerProjectCreateCmd `cmd:"" help:"Create a project with its members."`
}

// ServerProjectCreateCmd creates a project.
type ServerProjectCreateCmd struct {
	Name   string   `arg:"" help:"Project name."`
	Member []string `help:"Users who may see and change it (repeat or comma-separate)."`
}

// Run creates.
func (c *ServerProjectCreateCmd) Run(e *env) error {
	if err := ops.CreateServerProject(e.ctx, e.g.root(), c.Name, c.Member); err != nil {
		return err
	}
	e.printf("created project %s (members: %s)\n", c.Name, strings.Join(c.Member, ", "))
	return nil
}

// InstanceCmd is `swcli instance`.
type InstanceCmd struct {
	Login  InstanceLoginCmd  `cmd:"" help:"Register a server: check the token and save it."`
	List   InstanceListCmd   `cmd:"" aliases:"ls" help:"List the registered instances."`
	Select InstanceSelectCmd `cmd:"" aliases:"use" help:"Make an instance the default."`
	Logout InstanceLogoutCmd `cmd:"" help:"Forget a server's token."`
}

// InstanceLoginCmd logs in.
type InstanceLoginCmd struct {
	URL   string `arg:"" help:"http(s)://host:port of the server."`
	Alias string `required:"" help:"Name for it: cloud://ALIAS in URIs."`
	Token string `required:"" help:"Token from 'swcli server user add'."`
}

// Run logs in.
func (c *InstanceLoginCmd) Run(e *env) error {
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		return ops.Errorf(ops.KindUsage, "e.g. http://127.0.0.1:8080", "server URL %q must start with http:// or https://", c.URL)
	}
	if c.Alias == "local" || strings.ContainsAny(c.Alias, "/:") || c.Alias == "" {
		return ops.Errorf(ops.KindUsage, "choose another alias", "invalid alias %q", c.Alias)
	}
	r := ops.NewRemote(c.Alias, strings.TrimRight(c.URL, "/"), c.Token)
	user, admin, err := r.Whoami(e.ctx)
	if err != nil {
		return err
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	cfg.Instances[c.Alias] = &ops.InstanceConfig{URL: r.URL, Token: c.Token, User: user}
	if err := cfg.Save(); err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"alias": c.Alias, "url": r.URL, "user": user, "admin": admin})
	}
	e.printf("logged in to %s as %s (cloud://%s)\n", r.URL, user, c.Alias)
	return nil
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
		rows = append(rows, []string{mark, n, url, ic.User, cfg.Project(n)})
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
