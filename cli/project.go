package cli

import (
	"strconv"

	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/client"
)

// ProjectCmd is `swcli project`: projects of the selected instance (or of the instance a
// project URI names), local or cloud.
type ProjectCmd struct {
	Create ProjectCreateCmd `cmd:"" help:"Create a project (on a cloud instance: as its admin)."`
	List   ProjectListCmd   `cmd:"" aliases:"ls" help:"List the projects of the selected instance."`
	Select ProjectSelectCmd `cmd:"" aliases:"use" help:"Make a project the default of its instance."`
	Remove ProjectRemoveCmd `cmd:"" aliases:"rm" help:"Remove a project (on a cloud instance: as its admin)."`
}

// projectTarget resolves a project URI ("" for the selected instance) to its instance's
// alias and the project part.
func (e *env) projectTarget(uri string) (*ops.Config, string, ops.ProjectURI, error) {
	cfg, err := e.config()
	if err != nil {
		return nil, "", ops.ProjectURI{}, err
	}
	u, err := ops.ParseProjectURI(uri)
	if err != nil {
		return nil, "", u, err
	}
	alias, err := cfg.AliasOf(u.Instance)
	return cfg, alias, u, err
}

func (e *env) remoteOf(cfg *ops.Config, alias string) *client.Remote {
	ic := cfg.Instances[alias]
	return client.NewRemote(alias, ic.URL, ic.Token)
}

// ProjectCreateCmd creates a project.
type ProjectCreateCmd struct {
	Name   string   `arg:"" help:"Project name, or URI (cloud://ALIAS/project/NAME)."`
	Member []string `help:"On a cloud instance: users who may use it."`
}

// Run creates.
func (c *ProjectCreateCmd) Run(e *env) error {
	cfg, alias, u, err := e.projectTarget(c.Name)
	if err != nil {
		return err
	}
	name := u.Project
	if alias != "local" {
		p, err := (ops.AdminRemote{Remote: e.remoteOf(cfg, alias)}).CreateProject(e.ctx, name, c.Member)
		if err != nil {
			return err
		}
		return e.createdProject("cloud://"+alias, p.Name, p.ID)
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	if err := ops.CreateProject(e.ctx, in, name); err != nil {
		return err
	}
	p, err := in.Project(name)
	if err != nil {
		return err
	}
	return e.createdProject("local", p.Name, int(p.Seq))
}

func (e *env) createdProject(inst, name string, id int) error {
	if e.jsonOut() {
		return e.printJSON(map[string]any{"project": name, "id": id, "uri": inst + "/project/" + name})
	}
	e.printf("created project %s/project/%s (id %d)\n", inst, name, id)
	return nil
}

// ProjectListCmd lists projects.
type ProjectListCmd struct {
	Instance string `arg:"" optional:"" help:"Instance (local, an alias or cloud://ALIAS; default: the selected one)."`
}

// Run lists.
func (c *ProjectListCmd) Run(e *env) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	var ref ops.InstanceRef
	if c.Instance != "" {
		if ref, err = ops.ParseInstance(c.Instance); err != nil {
			return err
		}
	}
	alias, err := cfg.AliasOf(ref)
	if err != nil {
		return err
	}
	cur := cfg.Project(alias)
	type row struct {
		id      int
		name    string
		created string
	}
	var rows []row
	if alias != "local" {
		names, ids, err := e.remoteOf(cfg, alias).ProjectIDs(e.ctx)
		if err != nil {
			return err
		}
		for _, n := range names {
			rows = append(rows, row{id: ids[n], name: n})
		}
	} else if ops.Serving(e.g.root()) {
		// --root of a running server: its projects, through its socket.
		ps, err := (ops.AdminRemote{Remote: ops.NewSocketRemote(e.g.root())}).Projects(e.ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			rows = append(rows, row{id: p.ID, name: p.Name, created: humanTime(p.Created)})
		}
	} else {
		e.ledgerOnly = true
		in, err := e.open()
		if err != nil {
			return err
		}
		ps, err := in.Projects()
		in.Close()
		if err != nil {
			return err
		}
		for _, p := range ps {
			rows = append(rows, row{id: int(p.Seq), name: p.Name, created: humanTime(p.Created)})
		}
	}
	inst := "local"
	if alias != "local" {
		inst = "cloud://" + alias
	}
	if e.jsonOut() {
		out := []map[string]any{}
		for _, r := range rows {
			out = append(out, map[string]any{"id": r.id, "name": r.name, "uri": inst + "/project/" + r.name, "selected": r.name == cur})
		}
		return e.printJSON(map[string]any{"instance": inst, "projects": out})
	}
	t := [][]string{{"", "ID", "NAME", "URI"}}
	for _, r := range rows {
		mark := ""
		if r.name == cur {
			mark = "*"
		}
		t = append(t, []string{mark, strconv.Itoa(r.id), r.name, inst + "/project/" + r.name})
	}
	e.table(t)
	return nil
}

// ProjectSelectCmd selects a project.
type ProjectSelectCmd struct {
	Name string `arg:"" help:"Project name or id on the selected instance, or a project URI (cloud://ALIAS/project/NAME)."`
}

// Run selects.
func (c *ProjectSelectCmd) Run(e *env) error {
	cfg, alias, u, err := e.projectTarget(c.Name)
	if err != nil {
		return err
	}
	name := u.Project
	if alias != "local" {
		names, ids, err := e.remoteOf(cfg, alias).ProjectIDs(e.ctx)
		if err != nil {
			return err
		}
		found := ""
		for _, n := range names {
			if n == name || (ops.IsProjectID(name) && strconv.Itoa(ids[n]) == name) {
				found = n
			}
		}
		if found == "" {
			return ops.Errorf(ops.KindNotFound, "'swcli project list cloud://"+alias+"' shows the projects you may use", "no project %s on cloud://%s for you", name, alias)
		}
		name = found
	} else {
		if !ops.IsProjectID(name) && !ledger.ValidName(name) {
			return ops.Errorf(ops.KindUsage, "", "invalid project name %q", name)
		}
		in, err := e.open()
		if err != nil {
			return err
		}
		name, err = in.ProjectName(name)
		if err == nil {
			_, err = in.Project(name)
		}
		in.Close()
		if err != nil {
			return ops.Errorf(ops.KindNotFound, "swcli project create "+name, "no project %s", name)
		}
	}
	cfg.Instances[alias].CurrentProject = name
	if err := cfg.Save(); err != nil {
		return err
	}
	inst := "local"
	if alias != "local" {
		inst = "cloud://" + alias
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"selected": name, "instance": inst, "uri": inst + "/project/" + name})
	}
	e.printf("selected project %s/project/%s\n", inst, name)
	return nil
}

// ProjectRemoveCmd removes a project.
type ProjectRemoveCmd struct {
	Name string `arg:"" help:"Project name or id, or a project URI."`
}

// Run removes.
func (c *ProjectRemoveCmd) Run(e *env) error {
	cfg, alias, u, err := e.projectTarget(c.Name)
	if err != nil {
		return err
	}
	if alias != "local" {
		if err := (ops.AdminRemote{Remote: e.remoteOf(cfg, alias)}).RemoveProject(e.ctx, u.Project); err != nil {
			return err
		}
		e.printf("removed project cloud://%s/project/%s\n", alias, u.Project)
		return nil
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	name, err := in.ProjectName(u.Project)
	if err != nil {
		return err
	}
	if err := ops.RemoveProject(e.ctx, in, name); err != nil {
		return err
	}
	e.printf("removed project local/project/%s\n", name)
	return nil
}
