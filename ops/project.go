package ops

import (
	"context"

	"github.com/swcli/swcli/ledger"
)

// CreateProject records project.created.
func CreateProject(ctx context.Context, in *Instance, name string) error {
	if !ledger.ValidName(name) {
		return Errorf(KindUsage, "names start with a letter or _, then letters, digits, _ . -; 80 at most", "invalid project name %q", name)
	}
	if _, err := in.Ledger.Project(name); err == nil {
		return Errorf(KindExists, "", "project %s already exists", name)
	}
	_, err := in.append(ctx, ledger.ProjectCreated, name, "", "", ledger.EmptyData{})
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
	_, err := in.append(ctx, ledger.ProjectRemoved, name, "", "", ledger.EmptyData{})
	return err
}
