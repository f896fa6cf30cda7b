package cli

import (
	"fmt"
	"strings"

	"github.com/swcli/swcli/ops"
)

// AdminTarget says which cloud instance an admin command works on: a server the user
// logged in to as an admin (--instance), else the root (--root): through its running
// server's socket, or directly when no server runs.
type AdminTarget struct {
	Instance string `help:"A server you logged in to as an admin (alias or URL); default: the instance at --root." placeholder:"ALIAS"`
}

func (e *env) admin(t AdminTarget) (ops.Admin, error) {
	if t.Instance != "" {
		cfg, err := e.config()
		if err != nil {
			return nil, err
		}
		ref, err := ops.ParseInstance(t.Instance)
		if err != nil {
			return nil, err
		}
		alias, err := cfg.AliasOf(ref)
		if err != nil {
			return nil, err
		}
		if cfg.Instances[alias].URL == "" {
			return nil, ops.Errorf(ops.KindUsage, "--instance names a server you logged in to as an admin; without it, --root is used", "%s is not a server", t.Instance)
		}
		return ops.AdminRemote{Remote: e.remoteOf(cfg, alias)}, nil
	}
	root := e.g.root()
	if ops.Serving(root) && e.backend.Ledger == "" {
		return ops.AdminRemote{Remote: ops.NewSocketRemote(root)}, nil
	}
	return ops.AdminDirect{Root: root, Open: func(exclusive bool) (*ops.Instance, error) {
		return e.openWith(ops.OpenOptions{Exclusive: exclusive})
	}}, nil
}

// ServerUserCmd manages users.
type ServerUserCmd struct {
	List   ServerUserListCmd   `cmd:"" aliases:"ls" help:"List the users."`
	Add    ServerUserAddCmd    `cmd:"" help:"Add a user; prints its token once."`
	Token  ServerUserTokenCmd  `cmd:"" help:"Issue another token for a user; prints it once."`
	Revoke ServerUserRevokeCmd `cmd:"" help:"Revoke every token of a user."`
}

// ServerUserListCmd lists users.
type ServerUserListCmd struct{ AdminTarget }

// Run lists.
func (c *ServerUserListCmd) Run(e *env) error {
	a, err := e.admin(c.AdminTarget)
	if err != nil {
		return err
	}
	us, err := a.Users(e.ctx)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"users": us})
	}
	rows := [][]string{{"NAME", "ADMIN", "TOKENS"}}
	for _, u := range us {
		admin := ""
		if u.Admin {
			admin = "yes"
		}
		rows = append(rows, []string{u.Name, admin, fmt.Sprint(u.Tokens)})
	}
	e.table(rows)
	return nil
}

// ServerUserAddCmd adds a user.
type ServerUserAddCmd struct {
	AdminTarget
	Name  string `arg:"" help:"User name."`
	Admin bool   `help:"The user sees and changes every project, and administers the server."`
}

// Run adds the user.
func (c *ServerUserAddCmd) Run(e *env) error {
	a, err := e.admin(c.AdminTarget)
	if err != nil {
		return err
	}
	tok, err := a.AddUser(e.ctx, c.Name, c.Admin)
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
	AdminTarget
	Name string `arg:"" help:"User name."`
}

// Run issues the token.
func (c *ServerUserTokenCmd) Run(e *env) error {
	a, err := e.admin(c.AdminTarget)
	if err != nil {
		return err
	}
	tok, err := a.IssueToken(e.ctx, c.Name)
	if err != nil {
		return err
	}
	return e.printToken(c.Name, tok)
}

// ServerUserRevokeCmd revokes tokens.
type ServerUserRevokeCmd struct {
	AdminTarget
	Name string `arg:"" help:"User name."`
}

// Run revokes.
func (c *ServerUserRevokeCmd) Run(e *env) error {
	a, err := e.admin(c.AdminTarget)
	if err != nil {
		return err
	}
	if err := a.Revoke(e.ctx, c.Name); err != nil {
		return err
	}
	e.printf("revoked every token of %s\n", c.Name)
	return nil
}

// ServerProjectCmd manages projects.
type ServerProjectCmd struct {
	List   ServerProjectListCmd   `cmd:"" aliases:"ls" help:"List the projects with their ids and members."`
	Create ServerProjectCreateCmd `cmd:"" help:"Create a project with its members."`
	Remove ServerProjectRemoveCmd `cmd:"" aliases:"rm" help:"Remove a project that has no live versions."`
	Member ServerMemberCmd        `cmd:"" help:"Add or remove members of a project."`
}

// ServerProjectListCmd lists projects.
type ServerProjectListCmd struct{ AdminTarget }

// Run lists.
func (c *ServerProjectListCmd) Run(e *env) error {
	a, err := e.admin(c.AdminTarget)
	if err != nil {
		return err
	}
	ps, err := a.Projects(e.ctx)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"projects": ps})
	}
	rows := [][]string{{"ID", "NAME", "MEMBERS", "CREATED"}}
	for _, p := range ps {
		rows = append(rows, []string{fmt.Sprint(p.ID), p.Name, strings.Join(p.Members, ","), humanTime(p.Created)})
	}
	e.table(rows)
	return nil
}

// ServerProjectCreateCmd creates a project.
type ServerProjectCreateCmd struct {
	AdminTarget
	Name   string   `arg:"" help:"Project name."`
	Member []string `help:"Users who may see and change it (repeat or comma-separate)."`
}

// Run creates.
func (c *ServerProjectCreateCmd) Run(e *env) error {
	a, err := e.admin(c.AdminTarget)
	if err != nil {
		return err
	}
	p, err := a.CreateProject(e.ctx, c.Name, c.Member)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(p)
	}
	e.printf("created project %s (id %d; members: %s)\n", p.Name, p.ID, strings.Join(p.Members, ", "))
	return nil
}

// ServerProjectRemoveCmd removes a project.
type ServerProjectRemoveCmd struct {
	AdminTarget
	Name string `arg:"" help:"Project name."`
}

// Run removes.
func (c *ServerProjectRemoveCmd) Run(e *env) error {
	a, err := e.admin(c.AdminTarget)
	if err != nil {
		return err
	}
	if err := a.RemoveProject(e.ctx, c.Name); err != nil {
		return err
	}
	e.printf("removed project %s\n", ops.NormalizeName(c.Name))
	return nil
}

// ServerMemberCmd manages members.
type ServerMemberCmd struct {
	Add    ServerMemberChangeCmd `cmd:"" help:"Add users to a project."`
	Remove ServerMemberChangeCmd `cmd:"" aliases:"rm" help:"Remove users from a project."`
}

// ServerMemberChangeCmd adds or removes members.
type ServerMemberChangeCmd struct {
	AdminTarget
	Project string   `arg:"" help:"Project name."`
	Users   []string `arg:"" help:"User names."`
}

// Run changes the members.
func (c *ServerMemberChangeCmd) Run(e *env) error {
	a, err := e.admin(c.AdminTarget)
	if err != nil {
		return err
	}
	var add, remove []string
	if strings.Contains(e.command, "member remove") {
		remove = c.Users
	} else {
		add = c.Users
	}
	p, err := a.SetMembers(e.ctx, c.Project, add, remove)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(p)
	}
	e.printf("project %s: members %s\n", p.Name, strings.Join(p.Members, ", "))
	return nil
}

// ServerGCCmd collects the server's store.
type ServerGCCmd struct{ AdminTarget }

// Run collects.
func (c *ServerGCCmd) Run(e *env) error {
	a, err := e.admin(c.AdminTarget)
	if err != nil {
		return err
	}
	rep, err := a.GC(e.ctx)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"live": rep.Live, "deleted": rep.Deleted, "deleted_bytes": rep.DeletedBytes})
	}
	e.printf("%s: deleted %s (%s), kept %s\n", a.Where(), plural(rep.Deleted, "chunk"), humanBytes(rep.DeletedBytes), plural(rep.Live, "chunk"))
	return nil
}

// ServerFsckCmd verifies the server's store.
type ServerFsckCmd struct{ AdminTarget }

// Run verifies.
func (c *ServerFsckCmd) Run(e *env) error {
	a, err := e.admin(c.AdminTarget)
	if err != nil {
		return err
	}
	rep, err := a.Fsck(e.ctx)
	if rep == nil {
		return err
	}
	if e.jsonOut() {
		if jerr := e.printJSON(rep); jerr != nil {
			return jerr
		}
		return err
	}
	for _, p := range rep.Problems {
		e.printf("%s\n", p)
	}
	e.printf("%s: %s verified (%s), %d corrupt, %d lost packs\n", a.Where(), plural(rep.Chunks, "chunk"), humanBytes(rep.Bytes), rep.Corrupt, rep.LostPacks)
	return err
}
