package ops

import (
	"context"
	"strconv"

	"github.com/swcli/swcli/ledger"
)

// CreateProject records project.created.
func CreateProject(ctx context.Context, in *Instance, name string) error {
	name = NormalizeName(name)
	if !ledger.ValidName(name) {
		return Errorf(KindUsage, "names start with a letter or _, then letters, digits, _ . -; 80 at most", "invalid project name %q", name)
	}
	if _, err := in.Ledger.Project(name); err == nil {
		return Errorf(KindExists, "", "project %s already exists", name)
	}
	_, err := in.Append(ctx, ledger.ProjectCreated, name, "", "", ledger.EmptyData{})
	return err
}

// RemoveProject records project.removed. A project with live versions is refused.
func RemoveProject(ctx context.Context, in *Instance, name string) error {
	if _, err := in.Ledger.Project(name); err != nil {
		return Errorf(KindNotFound, "'swcli project list' shows the projects", "no project %s", name)
	}
	if _, total, err := in.Ledger.Versions(name, "", ledger.ListOptions{}); err != nil {
		return err
	} else if total > 0 {
		return Errorf(KindExists, "remove its runtimes first", "project %s has %d live versions", name, total)
	}
	_, err := in.Append(ctx, ledger.ProjectRemoved, name, "", "", ledger.EmptyData{})
	return err
}

// ProjectName turns a project reference into the project's name: a numeric id is the
// sequence number of the event that created the project (shown by 'swcli project list').
func (in *Instance) ProjectName(ref string) (string, error) {
	if !IsProjectID(ref) {
		return ref, nil
	}
	seq, _ := strconv.ParseUint(ref, 10, 64)
	p, err := in.Ledger.ProjectBySeq(seq)
	if err != nil {
		return "", Errorf(KindNotFound, "'swcli project list' shows the projects and their ids", "no project with id %s", ref)
	}
	return p.Name, nil
}
