package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/fsutil"
)

// The queries, each in one window (see Ledger).

func (l *Ledger) view() view {
	kv := dbKV{readerKV{l.db()}}
	return view{kv: kv, p: kvProjections{kv}}
}

// inView runs a query in a window.
func inView[T any](l *Ledger, q func(view) (T, error)) (out T, err error) {
	err = l.in(context.Background(), func() error {
		out, err = q(l.view())
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
	err = l.in(context.Background(), func() error {
		vs, total, err = l.view().Versions(project, runtime, opt)
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

// Long reads. Each reads a checkpoint of the database taken in a short window, so that
// writers wait for the checkpoint (milliseconds: its files are hard links), not for the
// read, which may be paced by a pipe (`swcli ledger log | less`) or take seconds (Replay).

// Log calls fn for every event the filter selects, in sequence order.
func (l *Ledger) Log(ctx context.Context, f Filter, fn func(Event) error) error {
	return l.longRead(ctx, func(r *Ledger) error { return r.log(ctx, f, fn) })
}

// Export writes every event as JSON lines (ExportLine), in sequence order.
func (l *Ledger) Export(ctx context.Context, w io.Writer) error {
	return l.longRead(ctx, func(r *Ledger) error { return r.export(ctx, w) })
}

// Replay rebuilds the projections from the events, in memory, as they were at the point
// chosen. It never reads the stored projections.
func (l *Ledger) Replay(ctx context.Context, to ReplayTo) (snap *Snapshot, err error) {
	err = l.longRead(ctx, func(r *Ledger) error { snap, err = r.replay(ctx, to); return err })
	return snap, err
}

// Verify checks the ledger: the hash chain is intact and each stored hash matches its
// event's body, sequence numbers are dense from 1 up to the head, the stored projections
// equal a fresh replay, and (with store) every manifest of a live or removed version is in
// the content store. Tampering is reported at the first bad sequence number.
func (l *Ledger) Verify(ctx context.Context, store ContentChecker) (rep *VerifyReport, err error) {
	err = l.longRead(ctx, func(r *Ledger) error { rep, err = r.verify(ctx, store); return err })
	return rep, err
}

var checkpoints atomic.Int64

// checkpointPrefix names the directories of checkpoints: read-<pid>-<n>.
const checkpointPrefix = "read-"

// longRead runs fn over the database: directly when it is held, otherwise over a
// checkpoint that is removed afterwards.
func (l *Ledger) longRead(ctx context.Context, fn func(r *Ledger) error) error {
	if l.win.Held() {
		return l.in(ctx, func() error { return fn(l) })
	}
	dir := filepath.Join(l.dir, fmt.Sprintf("%s%d-%d", checkpointPrefix, os.Getpid(), checkpoints.Add(1)))
	// A directory of this name can only be left by a killed process that had this pid
	// (pids are reused): it is stale, possibly half-written.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// A checkpoint needs the database open for writing (pebble refuses one read-only).
	if err := l.inMode(ctx, true, func() error { return l.db().Checkpoint(filepath.Join(dir, "db")) }); err != nil {
		// No room for a checkpoint (a full disk): read in a window instead, holding
		// writers up for the length of the read.
		return l.in(ctx, func() error { return fn(l) })
	}
	if afterCheckpoint != nil {
		afterCheckpoint(filepath.Join(dir, "db"))
	}
	r, err := Open(ctx, dir, Options{Hold: true, readOnly: true, OnError: l.opt.OnError})
	if err != nil {
		// A checkpoint that cannot be read (seen once after a process was killed at a random
		// point) must not make the audit fail: read in a window instead, as on a full disk.
		if l.opt.OnError != nil {
			l.opt.OnError(fmt.Sprintf("ledger checkpoint %s unreadable, reading in a window: %v", dir, err))
		}
		return l.in(ctx, func() error { return fn(l) })
	}
	err = fn(r)
	return errors.Join(err, r.Close())
}

// afterCheckpoint, when set (tests), sees each checkpoint before it is opened.
var afterCheckpoint func(db string)

// removeStaleCheckpoints deletes checkpoints whose process is gone (it was killed).
func removeStaleCheckpoints(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), checkpointPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidText); err == nil && fsutil.ProcessGone(pid) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// AllVersions lists every live or removed version of every project (see view.AllVersions).
func (l *Ledger) AllVersions() ([]*Version, error) { return inView(l, view.AllVersions) }
