package ledger

import (
	"context"
	"io"

	"github.com/swcli/swcli/cas"
)

// The queries, each in one window (see Ledger).

func viewOf(r reader) view {
	kv := roKV{r}
	return view{kv: kv, p: kvProjections{kv}}
}

// inView runs a query in a window.
func inView[T any](l *Ledger, q func(view) (T, error)) (out T, err error) {
	err = l.be.read(context.Background(), func(r reader) error {
		out, err = q(viewOf(r))
		return err
	})
	return out, err
}

// Project returns a project, or an error wrapping ErrNotFound (removed projects too).
func (l *Ledger) Project(name string) (*Project, error) {
	return inView(l, func(v view) (*Project, error) { return v.Project(name) })
}

// ProjectBySeq returns the live project whose project.created event is seq (its id).
func (l *Ledger) ProjectBySeq(seq uint64) (*Project, error) {
	return inView(l, func(v view) (*Project, error) { return v.ProjectBySeq(seq) })
}

// Projects lists the live projects by name.
func (l *Ledger) Projects() ([]*Project, error) { return inView(l, view.Projects) }

// Runtime returns a runtime of a project, or an error wrapping ErrNotFound.
func (l *Ledger) Runtime(project, name string) (*Runtime, error) {
	return inView(l, func(v view) (*Runtime, error) { return v.Runtime(project, name) })
}

// Runtimes lists a project's runtimes by name.
func (l *Ledger) Runtimes(project string) ([]*Runtime, error) {
	return inView(l, func(v view) ([]*Runtime, error) { return v.Runtimes(project) })
}

// Versions lists versions newest first, one page of them, and the total (see view.Versions).
func (l *Ledger) Versions(project, runtime string, opt ListOptions) (vs []*Version, total int, err error) {
	err = l.be.read(context.Background(), func(r reader) error {
		vs, total, err = viewOf(r).Versions(project, runtime, opt)
		return err
	})
	return vs, total, err
}

// History lists every version of a runtime, oldest first (see view.History).
func (l *Ledger) History(project, runtime string) ([]*Version, error) {
	return inView(l, func(v view) ([]*Version, error) { return v.History(project, runtime) })
}

// Resolve finds a live version by id, prefix or tag (see view.Resolve).
func (l *Ledger) Resolve(project, runtime, ref string) (*Version, error) {
	return inView(l, func(v view) (*Version, error) { return v.Resolve(project, runtime, ref) })
}

// ResolveRemoved is Resolve that also finds removed versions by their tags.
func (l *Ledger) ResolveRemoved(project, runtime, ref string) (*Version, error) {
	return inView(l, func(v view) (*Version, error) { return v.ResolveRemoved(project, runtime, ref) })
}

// Manifests lists the manifests gc must keep (see view.Manifests).
func (l *Ledger) Manifests() ([]cas.Hash, error) { return inView(l, view.Manifests) }

// Long reads. Each reads a stable view (pebble: a checkpoint taken in a short window;
// PostgreSQL: a repeatable-read transaction), so that writers are not held up by the read,
// which may be paced by a pipe (`swcli ledger log | less`) or take seconds (Replay).

// Log calls fn for every event the filter selects, in sequence order.
func (l *Ledger) Log(ctx context.Context, f Filter, fn func(Event) error) error {
	return l.be.longRead(ctx, func(r reader) error { return log(ctx, r, f, fn) })
}

// Export writes every event as JSON lines (ExportLine), in sequence order.
func (l *Ledger) Export(ctx context.Context, w io.Writer) error {
	return l.be.longRead(ctx, func(r reader) error { return export(ctx, r, w) })
}

// Replay rebuilds the projections from the events, in memory, as they were at the point
// chosen. It never reads the stored projections.
func (l *Ledger) Replay(ctx context.Context, to ReplayTo) (snap *Snapshot, err error) {
	err = l.be.longRead(ctx, func(r reader) error { snap, err = replay(ctx, r, to); return err })
	return snap, err
}

// Verify checks the ledger: the hash chain is intact and each stored hash matches its
// event's body, sequence numbers are dense from 1 up to the head, the stored projections
// equal a fresh replay, and (with store) every manifest of a live or removed version is in
// the content store. Tampering is reported at the first bad sequence number.
func (l *Ledger) Verify(ctx context.Context, store ContentChecker) (rep *VerifyReport, err error) {
	err = l.be.longRead(ctx, func(r reader) error { rep, err = verify(ctx, r, store); return err })
	return rep, err
}

// AllVersions lists every live or removed version of every project (see view.AllVersions).
func (l *Ledger) AllVersions() ([]*Version, error) { return inView(l, view.AllVersions) }
