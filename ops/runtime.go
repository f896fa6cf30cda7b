package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/formats"
)

// Resolve finds the version a runtime URI names on this instance ("" means latest).
func (in *Instance) Resolve(project, name, ref string) (*ledger.Version, error) {
	if ref == "" {
		ref = "latest"
	}
	v, err := in.Ledger.Resolve(project, name, ref)
	if err != nil {
		if errors.Is(err, ledger.ErrNotFound) {
			return nil, &Error{Kind: KindNotFound, Err: err, Hint: "'swcli runtime list --show-removed' shows the versions"}
		}
		return nil, LedgerErr(err)
	}
	return v, nil
}

// tagVersion adds (or with remove, removes) user tags on a version. Built-in tags and removing
// tags the version lacks are errors unless quiet, which skips them.
func tagVersion(ctx context.Context, in *Instance, project, name, ref string, tags []string, remove, quiet, force bool) (*api.TagResult, error) {
	v, err := in.Resolve(project, name, ref)
	if err != nil {
		return nil, err
	}
	if v.Status != ledger.StatusLive {
		return nil, Errorf(KindNotFound, "recover it first", "version %s is %s", v.ID, v.Status)
	}
	res := &api.TagResult{}
	var apply []string
	for _, t := range tags {
		var problem string
		switch {
		case !ledger.ValidName(t):
			return nil, Errorf(KindUsage, "tags start with a letter or _, then letters, digits, _ . -", "invalid tag %q", t)
		case ledger.IsBuiltinTag(t):
			problem = fmt.Sprintf("%s is a built-in tag: swcli moves it", t)
		case remove && !slices.Contains(v.Tags, t):
			problem = fmt.Sprintf("version %s has no tag %s", v.ID[:12], t)
		case !remove && slices.Contains(v.Tags, t):
			problem = fmt.Sprintf("version %s already has tag %s", v.ID[:12], t)
		case !remove && !force:
			// A user tag names one version: moving it is asked for (Starwhale's --force-add).
			if other, err := in.Ledger.Resolve(project, name, t); err == nil && other.ID != v.ID && slices.Contains(other.Tags, t) {
				return nil, Errorf(KindExists, fmt.Sprintf("move it with: swcli runtime tag %s/version/%s %s --force-add", name, v.ID[:12], t),
					"tag %s is on version %s of %s", t, other.ID[:12], name)
			}
		}
		if problem != "" {
			if quiet {
				res.Skipped = append(res.Skipped, t)
				continue
			}
			return nil, Errorf(KindUsage, "-q skips such tags", "%s", problem)
		}
		if !slices.Contains(apply, t) {
			apply = append(apply, t)
		}
	}
	if len(apply) == 0 {
		return res, nil
	}
	if !remove && len(v.Tags)+len(apply) > MaxTags {
		return nil, Errorf(KindUsage, "remove some tags first: swcli runtime tag -r", "version %s would carry %d tags; %d at most", v.ID[:12], len(v.Tags)+len(apply), MaxTags)
	}
	typ := ledger.RuntimeTagged
	if remove {
		typ = ledger.RuntimeUntagged
	}
	if _, err := in.Append(ctx, typ, project, name, v.ID, ledger.TagsData{Tags: apply}); err != nil {
		return nil, err
	}
	res.Changed = apply
	return res, nil
}

// Targets lists what remove or recover acts on: one version, or every version of the
// runtime in the wanted states.
func (in *Instance) targets(project, name, ref string, want ...ledger.Status) ([]*ledger.Version, error) {
	if ref != "" {
		var v *ledger.Version
		var err error
		if slices.Contains(want, ledger.StatusRemoved) {
			v, err = in.Ledger.ResolveRemoved(project, name, ref)
			err = LedgerErr(err)
		} else {
			v, err = in.Resolve(project, name, ref)
		}
		if err != nil {
			return nil, err
		}
		if !slices.Contains(want, v.Status) {
			return nil, Errorf(KindNotFound, "'swcli runtime list --show-removed' shows each version's state", "version %s of %s is %s", v.ID, name, v.Status)
		}
		return []*ledger.Version{v}, nil
	}
	if _, err := in.Ledger.Runtime(project, name); err != nil {
		return nil, LedgerErr(err)
	}
	all, err := in.Ledger.History(project, name)
	if err != nil {
		return nil, err
	}
	var out []*ledger.Version
	for _, v := range all {
		if slices.Contains(want, v.Status) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, Errorf(KindNotFound, "", "runtime %s has no version to act on", name)
	}
	return out, nil
}

// removeTargets returns what Remove would act on, for the confirmation prompt.
func removeTargets(in *Instance, project, name, ref string, purge bool) ([]*ledger.Version, error) {
	if purge {
		return in.targets(project, name, ref, ledger.StatusLive, ledger.StatusRemoved)
	}
	return in.targets(project, name, ref, ledger.StatusLive)
}

// removeVersions soft-deletes (or with purge, deletes for good) a version or a whole runtime.
func removeVersions(ctx context.Context, in *Instance, project, name, ref string, purge bool) ([]*ledger.Version, error) {
	vs, err := removeTargets(in, project, name, ref, purge)
	if err != nil {
		return nil, err
	}
	typ := ledger.RuntimeRemoved
	if purge {
		typ = ledger.RuntimePurged
	}
	id := ""
	if ref != "" {
		id = vs[0].ID
	}
	if _, err := in.Append(ctx, typ, project, name, id, ledger.EmptyData{}); err != nil {
		return nil, err
	}
	return vs, nil
}

// recoverVersions undoes a soft delete of a version (full id, prefix or, while live, tag) or of
// every removed version of a runtime.
func recoverVersions(ctx context.Context, in *Instance, project, name, ref string) ([]*ledger.Version, error) {
	vs, err := in.targets(project, name, ref, ledger.StatusRemoved)
	if err != nil {
		return nil, err
	}
	id := ""
	if ref != "" {
		id = vs[0].ID
	}
	if _, err := in.Append(ctx, ledger.RuntimeRecovered, project, name, id, ledger.EmptyData{}); err != nil {
		return nil, err
	}
	return vs, nil
}

// versionInfo reads a version's manifest and the small files worth showing.
func versionInfo(ctx context.Context, in *Instance, project, name, ref string) (*api.Info, error) {
	v, err := in.Resolve(project, name, ref)
	if err != nil {
		return nil, err
	}
	return InfoOf(ctx, in, v)
}

// InfoOf reads version v's manifest and the small files worth showing.
func InfoOf(ctx context.Context, in *Instance, v *ledger.Version) (*api.Info, error) {
	m, err := cas.LoadManifest(ctx, in.Chunks, v.Manifest)
	if err != nil {
		return nil, err
	}
	info := &api.Info{Version: v, Totals: m.Totals(), Manifest: m}
	for _, e := range m.Entries {
		if e.Kind != cas.KindFile || e.Size > 1<<20 {
			continue
		}
		switch e.Path {
		case "runtime.yaml", formats.LockName("venv"), formats.LockName("conda"), formats.LegacyLockName("venv"), formats.LegacyLockName("conda"):
			b, err := ReadEntry(ctx, in.Chunks, e)
			if err != nil {
				return nil, err
			}
			if e.Path == "runtime.yaml" {
				info.YAML = string(b)
			} else {
				info.Lock = string(b)
			}
		}
	}
	return info, nil
}

// ReadEntry reads a (small) file of a manifest from the store.
func ReadEntry(ctx context.Context, st cas.Getter, e cas.Entry) ([]byte, error) {
	var b []byte
	for _, h := range e.Chunks {
		d, err := st.Get(ctx, h)
		if err != nil {
			return nil, err
		}
		b = append(b, d...)
	}
	return b, nil
}
