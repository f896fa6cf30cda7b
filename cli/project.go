package cli

import (
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"strconv"
)

// ProjectCmd is `swcli project`.
type ProjectCmd struct {
	Create ProjectCreateCmd `cmd:"" help:"Create a project."`
	List   ProjectListCmd   `cmd:"" aliases:"ls" help:"List projects."`
	Select ProjectSelectCmd `cmd:"" aliases:"use" help:"Make a project the default."`
	Remove ProjectRemoveCmd `cmd:"" aliases:"rm" help:"Remove a project."`
}

// ProjectCreateCmd creates a project.
type ProjectCreateCmd struct {
	Name string `arg:"" help:"Project name."`
}

// Run creates.
func (c *ProjectCreateCmd) Run(e *env) error {
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	if err := ops.CreateProject(e.ctx, in, c.Name); err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"project": c.Name})
	}
	e.printf("created project %s\n", ops.NormalizeName(c.Name))
	return nil
}

// ProjectListCmd lists projects.
type ProjectListCmd struct{}

// Run lists.
func (c *ProjectListCmd) Run(e *env) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	ps, err := in.Ledger.Projects()
	if err != nil {
		return err
	}
	cur := cfg.Project("local")
	if e.jsonOut() {
		rows := []map[string]any{}
		for _, p := range ps {
			rows = append(rows, map[string]any{"id": p.Seq, "name": p.Name, "created": p.Created, "selected": p.Name == cur})
		}
		return e.printJSON(map[string]any{"projects": rows})
	}
	rows := [][]string{{"", "ID", "NAME", "CREATED"}}
	for _, p := range ps {
		mark := ""
		if p.Name == cur {
			mark = "*"
		}
		rows = append(rows, []string{mark, strconv.FormatUint(p.Seq, 10), p.Name, humanTime(p.Created)})
	}
	e.table(rows)
	return nil
}

// ProjectSelectCmd selects the default project.
type ProjectSelectCmd struct {
	Name string `arg:"" help:"Project name."`
}

// Run selects.
func (c *ProjectSelectCmd) Run(e *env) error {
	if !ops.IsProjectID(c.Name) && !ledger.ValidName(c.Name) {
		return ops.Errorf(ops.KindUsage, "", "invalid project name %q", c.Name)
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	c.Name, err = in.ProjectName(ops.NormalizeName(c.Name))
	if err != nil {
		in.Close()
		return err
	}
	_, perr := in.Ledger.Project(c.Name)
	in.Close()
	if perr != nil {
		return ops.Errorf(ops.KindNotFound, "'swcli project create "+c.Name+"' makes it", "no project %s", c.Name)
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	cfg.Instances["local"].CurrentProject = c.Name
	if err := cfg.Save(); err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"selected": c.Name})
	}
	e.printf("selected project %s\n", c.Name)
	return nil
}

// ProjectRemoveCmd removes a project.
type ProjectRemoveCmd struct {
	Name string `arg:"" help:"Project name."`
}

// Run removes.
func (c *ProjectRemoveCmd) Run(e *env) error {
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	if c.Name, err = in.ProjectName(ops.NormalizeName(c.Name)); err != nil {
		return err
	}
	if err := ops.RemoveProject(e.ctx, in, c.Name); err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"removed": c.Name})
	}
	e.printf("removed project %s\n", c.Name)
	return nil
}
