package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/flock"
	"github.com/swcli/swcli/ledger"
)

// Instance is an open standalone instance: a root directory holding the chunk store and
// the ledger.
//
//	ROOT/store/    chunk store (packs + pebble index)
//	ROOT/ledger/   the ledger (pebble)
//	ROOT/cache/    the stat cache (safe to delete)
//	ROOT/workdir/  default extraction area: workdir/<project>/<runtime>/<id[:2]>/<id>
type Instance struct {
	Root string
	Name string // "local", or the server's name
	// Store is the chunk store on disk; nil for a server on S3 (OpenOptions.Packs), whose
	// commands use Chunks.
	Store *cas.Local
	// Chunks is the chunk store whatever it is: Store, or packs in S3.
	Chunks ChunkStore
	Ledger *ledger.Ledger
	// Auth keeps a server's users and members: ROOT/auth.json, or PostgreSQL.
	Auth  AuthStore
	Actor string // user@host recorded in events
	// ToolVersion is swcli's version, recorded in build and copy events.
	ToolVersion string

	DB *pgxpool.Pool // the database replicas share; nil for an instance on one disk
}

// OpenOptions tune Open.
type OpenOptions struct {
	// OnWait is told when another process holds what this one waits for, after a second.
	OnWait func(what string, holder flock.Holder)
	// LockTimeout bounds each wait for another process (0: wait); past it the command
	// fails with KindBusy.
	LockTimeout time.Duration
	// Exclusive holds the whole instance for this process: gc, and a server that owns its
	// root. Without it (every other command) the store is shared with other processes and
	// the ledger and the store's index are open only for short windows, so that readers
	// never wait for a writer's work, only for its commits.
	Exclusive bool
	// OnError is told of errors no call returns (pebble's background work, the stat cache).
	OnError func(msg string)
	// Name is the instance's name in events; default "local".
	Name string
	// ToolVersion is recorded in build and copy events; default "dev".
	ToolVersion string
	// Ledger and Packs put a server's state in PostgreSQL (a postgres:// URL) and its
	// packs in S3 (s3://BUCKET/PREFIX): several servers on the same two are replicas of
	// one instance. Give both or neither.
	Ledger, Packs string
	// LedgerOnly is for commands that read the ledger (and may append to it) and never
	// the store: listing, history, completion. The store is neither opened nor recovered
	// (Store and Chunks are nil): its lock and the recovery check's look at the index were
	// ~6 ms of such a command's ~50 (DESIGN.md).
	LedgerOnly bool
	// Project is read as the ledger opens (ledger.Options.Projects): a build checks it
	// there before it starts.
	Project string
}

// Open opens (creating) the standalone instance at root. A new instance gets the project
// "self".
//
// Locks are taken in one order by every process (DESIGN.md, "Many processes"): the store
// (shared, or exclusive with OpenOptions.Exclusive), then windows of the store's index,
// then windows of the ledger; windows never nest, so waiting never closes a cycle.
func Open(ctx context.Context, root string, opt OpenOptions) (*Instance, error) {
	if root == "" {
		return nil, Errorf(KindUsage, "set --root or SWCLI_ROOT", "no instance root given")
	}
	if opt.cloud() {
		return openCloud(ctx, root, opt)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("open instance %s: %w", root, err)
	}
	if Serving(root) {
		// A server owns its root while it runs: waiting would be for ever.
		return nil, Errorf(KindBusy, "administer it through the server: 'swcli server project list --root "+root+"' (and user, gc, fsck); use its projects through 'swcli instance login'",
			"%s is served by a running swcli server", root)
	}
	wait := func(what string) func(flock.Holder) {
		if opt.OnWait == nil {
			return nil
		}
		return func(h flock.Holder) { opt.OnWait(what, h) }
	}
	// The ledger opens once the store's lock is held (its lock comes after the store's),
	// while the store is checked: the two opens are ~5 ms each of a command's start.
	type opened struct {
		l   *ledger.Ledger
		err error
	}
	var ledgerOpened chan opened
	openLedger := func() {
		ledgerOpened = make(chan opened, 1)
		go func() {
			l, err := ledger.Open(ctx, filepath.Join(root, "ledger"), ledger.Options{
				OnWait: wait("ledger " + root), LockTimeout: opt.LockTimeout, Hold: opt.Exclusive, OnError: opt.OnError,
				Projects: nonEmpty(opt.Project),
			})
			ledgerOpened <- opened{l, err}
		}()
	}
	var st *cas.Local
	if !opt.LedgerOnly {
		lo := cas.LocalOptions{
			OnWait: wait("store " + root), LockTimeout: opt.LockTimeout, Exclusive: opt.Exclusive,
			CacheDir: filepath.Join(root, "cache", "stat"), OnError: opt.OnError,
		}
		if !opt.Exclusive {
			lo.Locked = openLedger
		}
		var err error
		if st, err = cas.OpenLocalWith(ctx, filepath.Join(root, "store"), lo); err != nil {
			if ledgerOpened != nil {
				if o := <-ledgerOpened; o.l != nil {
					o.l.Close()
				}
			}
			return nil, busyErr(err)
		}
	}
	if ledgerOpened == nil {
		openLedger()
	}
	o := <-ledgerOpened
	l, err := o.l, o.err
	if err != nil {
		if st != nil {
			st.Close()
		}
		return nil, busyErr(err)
	}
	in := &Instance{Root: root, Name: opt.Name, Ledger: l, Auth: FileAuth{Root: root},
		Actor: Actor(), ToolVersion: opt.ToolVersion}
	if st != nil {
		in.Store, in.Chunks = st, st
	}
	if in.Name == "" {
		in.Name = "local"
	}
	if in.ToolVersion == "" {
		in.ToolVersion = "dev"
	}
	h, ok := l.OpenHead()
	if !ok {
		if h, err = l.Head(); err != nil {
			in.Close()
			return nil, busyErr(fmt.Errorf("read ledger head: %w", err))
		}
	}
	SweepWorkTemps(root) // what killed imports left
	if h.Seq == 0 {
		if _, err := in.Append(ctx, ledger.ProjectCreated, "self", "", "", ledger.EmptyData{}); err != nil && !errors.Is(err, ledger.ErrConflict) {
			in.Close()
			return nil, err
		}
	}
	return in, nil
}

// nonEmpty is s as a list: none if empty.
func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// busyErr gives a lock wait that timed out its kind.
func busyErr(err error) error {
	if errors.Is(err, flock.ErrBusy) {
		return &Error{Kind: KindBusy, Err: err, Hint: "wait for the other command, or raise --lock-timeout"}
	}
	return err
}

// Actor is user@host for this process.
func Actor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// Close flushes and closes the instance.
func (in *Instance) Close() error {
	if in.DB != nil {
		return in.closeCloud()
	}
	if in.Store == nil {
		return in.Ledger.Close()
	}
	return errors.Join(in.Store.Close(), in.Ledger.Close())
}

// Append records one event by this instance's actor.
func (in *Instance) Append(ctx context.Context, t ledger.Type, project, runtime, version string, payload any) (ledger.Event, error) {
	e, err := ledger.New(t, project, runtime, version, payload)
	if err != nil {
		return ledger.Event{}, err
	}
	e.Actor, e.Instance = in.Actor, in.Name
	out, err := in.Ledger.Append(ctx, e)
	if err != nil {
		return ledger.Event{}, LedgerErr(err)
	}
	return out[0], nil
}

// LedgerErr gives ledger errors their kind for the CLI.
func LedgerErr(err error) error {
	var amb *ledger.AmbiguousError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &amb):
		return &Error{Kind: KindUsage, Err: err, Hint: "give more characters of the version id"}
	case errors.Is(err, ledger.ErrNotFound):
		return &Error{Kind: KindNotFound, Err: err}
	case errors.Is(err, ledger.ErrConflict):
		return &Error{Kind: KindExists, Err: err}
	case errors.Is(err, ledger.ErrInvalid):
		return &Error{Kind: KindUsage, Err: err}
	}
	return busyErr(err)
}
