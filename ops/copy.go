package ops

import (
	"context"
	"fmt"

	"github.com/swcli/swcli/ledger"
)

// CopyResult counts what a copy did.
type CopyResult struct {
	Versions  []string
	Skipped   []string // already at the destination
	Files     int64
	Bytes     int64 // content bytes of the versions copied
	SentBytes int64 // bytes that travelled
	SentFiles int64
}

// copiedEvent is the runtime.copied event for v arriving in project from source.
func copiedEvent(v *ledger.Version, project, source string) (ledger.Event, error) {
	return ledger.New(ledger.RuntimeCopied, project, v.Runtime, v.ID, ledger.CopiedData{
		BuiltData: ledger.BuiltData{Files: v.Files, Manifest: v.Manifest, Mode: v.Mode, Python: v.Python,
			Size: v.Size, NewBytes: 0, ToolVersion: ToolVersion},
		Source: source, SourceActor: v.Actor, Tags: nonNilTags(v.Tags)})
}

func nonNilTags(t []string) []string {
	if t == nil {
		return []string{}
	}
	return t
}

// CopyLocal copies versions between projects of one standalone instance: the chunks are
// shared already, so only runtime.copied events are written, in one batch.
func CopyLocal(ctx context.Context, in *Instance, src RuntimeURI, srcProject, dstProject string, force bool) (*CopyResult, error) {
	if _, err := in.Ledger.Project(dstProject); err != nil {
		return nil, ledgerErr(err)
	}
	vs, err := sourceVersions(in.Ledger, srcProject, src)
	if err != nil {
		return nil, err
	}
	res := &CopyResult{}
	var evs []ledger.Event
	for _, v := range vs {
		if dv, err := in.Ledger.Resolve(dstProject, v.Runtime, v.ID); err == nil && dv.Status == ledger.StatusLive && !force {
			res.Skipped = append(res.Skipped, v.ID)
			continue
		}
		e, err := copiedEvent(v, dstProject, fmt.Sprintf("%s/project/%s/runtime/%s/version/%s", in.Name, srcProject, v.Runtime, v.ID))
		if err != nil {
			return nil, err
		}
		e.Actor, e.Instance = in.Actor, in.Name
		evs = append(evs, e)
		res.Versions = append(res.Versions, v.ID)
		res.Files += v.Files
		res.Bytes += v.Size
	}
	if len(evs) > 0 {
		if _, err := in.Ledger.Append(ctx, evs...); err != nil {
			return nil, ledgerErr(err)
		}
	}
	return res, nil
}

// sourceVersions lists what a copy source names: one version, every live version of a
// runtime, or (Name "") every live version of the project, oldest first so that the
// destination's latest ends where the source's is.
func sourceVersions(l *ledger.Ledger, project string, src RuntimeURI) ([]*ledger.Version, error) {
	if src.Version != "" {
		v, err := l.Resolve(project, src.Name, src.Version)
		if err != nil {
			return nil, ledgerErr(err)
		}
		if v.Status != ledger.StatusLive {
			return nil, Errorf(KindNotFound, "recover it first", "version %s is %s", v.ID, v.Status)
		}
		return []*ledger.Version{v}, nil
	}
	vs, _, err := l.Versions(project, src.Name, ledger.ListOptions{})
	if err != nil {
		return nil, ledgerErr(err)
	}
	if len(vs) == 0 {
		return nil, Errorf(KindNotFound, "", "nothing to copy in %s", src)
	}
	// Versions lists each runtime newest first; copy oldest first, latest last.
	out := make([]*ledger.Version, 0, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		out = append(out, vs[i])
	}
	var latestLast []*ledger.Version
	var latest []*ledger.Version
	for _, v := range out {
		if v.Latest {
			latest = append(latest, v)
		} else {
			latestLast = append(latestLast, v)
		}
	}
	return append(latestLast, latest...), nil
}
