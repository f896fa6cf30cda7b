package console

import (
	"strings"

	"github.com/swcli/swcli/ops"
)

// The admin page: users, tokens, projects and members, as 'swcli server user|project'.
// A new token is shown once, on the page that follows its making.

func (c *Console) adminOnly(q *req) error {
	if !q.user.Admin {
		return errNotFound
	}
	return nil
}

func (c *Console) admin(q *req) error {
	return c.adminPage(q, "", "")
}

func (c *Console) adminPage(q *req, tokenFor, token string) error {
	if err := c.adminOnly(q); err != nil {
		return err
	}
	us, err := ops.ListUsers(q.ctx(), c.in.Auth)
	if err != nil {
		return err
	}
	ps, err := ops.ListServerProjects(q.ctx(), c.in.Auth)
	if err != nil {
		return err
	}
	data := map[string]any{"Users": us, "Projects": ps, "TokenFor": tokenFor, "Token": token}
	return c.render(q, "admin", "Admin", []crumb{{"Admin", ""}}, data)
}

func (c *Console) adminAddUser(q *req) error {
	if err := c.adminOnly(q); err != nil {
		return err
	}
	name := strings.TrimSpace(q.PostForm.Get("name"))
	tok, err := ops.AddUser(q.ctx(), c.in.Auth, name, q.PostForm.Get("admin") == "1")
	if err != nil {
		return err
	}
	return c.adminPage(q, name, tok)
}

func (c *Console) adminToken(q *req) error {
	if err := c.adminOnly(q); err != nil {
		return err
	}
	tok, err := ops.IssueToken(q.ctx(), c.in.Auth, q.PathValue("u"))
	if err != nil {
		return err
	}
	return c.adminPage(q, q.PathValue("u"), tok)
}

func (c *Console) adminRevoke(q *req) error {
	if err := c.adminOnly(q); err != nil {
		return err
	}
	if err := ops.RevokeTokens(q.ctx(), c.in.Auth, q.PathValue("u")); err != nil {
		return err
	}
	return back(q, "/admin", "revoked every token of "+q.PathValue("u"))
}

func splitNames(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
}

func (c *Console) adminAddProject(q *req) error {
	if err := c.adminOnly(q); err != nil {
		return err
	}
	name := strings.TrimSpace(q.PostForm.Get("name"))
	if err := ops.CreateServerProject(q.ctx(), c.in.Auth, name, splitNames(q.PostForm.Get("members"))); err != nil {
		return err
	}
	return back(q, "/admin", "created project "+name)
}

func (c *Console) adminMembers(q *req) error {
	if err := c.adminOnly(q); err != nil {
		return err
	}
	p := q.PathValue("p")
	if _, err := ops.SetProjectMembers(q.ctx(), c.in.Auth, p, splitNames(q.PostForm.Get("add")), splitNames(q.PostForm.Get("remove"))); err != nil {
		return err
	}
	return back(q, "/admin", "members of "+p+" changed")
}
