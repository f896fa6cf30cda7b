package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/swcli/swcli/internal/fsutil"
	"github.com/swcli/swcli/internal/pebblewin"
)

// pebbleBackend keeps the ledger in a pebble database, LEDGER/db.
//
// Pebble admits one process per database, so by default the database is held only for the
// length of a call: each read or write opens it (waiting for another process's call to
// end), does its work and closes it again, in a few milliseconds. Long reads work on a
// checkpoint taken in such a window, so that a reader never holds writers up for longer
// than the checkpoint takes. With Options.Hold the database stays open until close: what a
// server that owns its root does.
type pebbleBackend struct {
	dir  string
	opt  Options
	sync *pebble.WriteOptions // pebble.Sync; tests that append 10k events use NoSync
	win  *pebblewin.Window
}

// Open opens (creating) the ledger in dir. It checks the schema in a first window (or, with
// Hold, opens the database for good), waiting while another process holds it.
func Open(ctx context.Context, dir string, opt Options) (*Ledger, error) {
	// The window that checks the schema also reads the head and whether the tree has every
	// event: the first command's own windows for them are spared. What it cannot read is
	// left to those (a damaged head is for verify to name, not for Open to refuse).
	var head *Head
	treeOK := false
	projects := map[string]openProject{}
	be, err := openPebble(ctx, dir, opt, func(r reader) {
		for _, name := range opt.Projects {
			p, err := viewOf(r).Project(name)
			projects[name] = openProject{p, err}
		}
		h, err := readHead(r)
		if err != nil {
			return
		}
		head = &h
		if size, err := treeSize(r); err == nil && size >= h.Seq {
			treeOK = true
		}
	})
	if err != nil {
		return nil, err
	}
	l := newLedger(be, opt)
	l.openHead = head
	l.openProjects = projects
	l.treeOK.Store(treeOK)
	return l, nil
}

// ledgerBlockSize: a ledger is read mostly by long scans (replay, verify, log, export).
const ledgerBlockSize = 32 << 10

func openPebble(ctx context.Context, dir string, opt Options, atOpen func(reader)) (*pebbleBackend, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	b := &pebbleBackend{dir: dir, opt: opt, sync: pebble.Sync}
	if opt.NoSync {
		b.sync = pebble.NoSync
	}
	b.win = pebblewin.New(pebblewin.Config{
		What: "ledger", Dir: filepath.Join(dir, "db"), LockPath: filepath.Join(dir, "lock"), FreeDir: dir,
		Held: opt.Hold, ReadOnlyHeld: opt.readOnly, OnWait: opt.OnWait, LockTimeout: opt.LockTimeout,
		OnError: opt.OnError, SchemaKey: []byte{keySchema}, Schema: schemaVersion, BlockSize: ledgerBlockSize,
	})
	removeStaleCheckpoints(dir)
	if err := b.win.In(ctx, false, func(db *pebble.DB) error {
		if atOpen != nil {
			atOpen(readerKV{db})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *pebbleBackend) close() error { return b.win.Close() }

// prepareWrite opens a write window, if no one else has the ledger, until release.
func (b *pebbleBackend) prepareWrite() (func(), bool) {
	if _, ok, err := b.win.TryEnter(true); !ok || err != nil {
		return nil, false
	}
	return func() { b.win.Leave() }, true
}

func (b *pebbleBackend) read(ctx context.Context, fn func(reader) error) error {
	return b.win.In(ctx, false, func(db *pebble.DB) error { return fn(readerKV{db}) })
}

func (b *pebbleBackend) write(ctx context.Context, fn func(writer) error) error {
	return b.win.In(ctx, true, func(db *pebble.DB) error {
		batch := db.NewIndexedBatch()
		defer batch.Close()
		w := &batchKV{readerKV: readerKV{batch}, b: batch}
		if err := fn(w); err != nil {
			return err
		}
		if w.err != nil {
			return fmt.Errorf("write ledger batch: %w", w.err)
		}
		if err := batch.Commit(b.sync); err != nil {
			return fmt.Errorf("commit ledger: %w", err)
		}
		return nil
	})
}

var checkpoints atomic.Int64

// checkpointPrefix names the directories of checkpoints: read-<pid>-<n>.
const checkpointPrefix = "read-"

// longRead runs fn over the database: directly when it is held, otherwise over a
// checkpoint that is removed afterwards.
func (b *pebbleBackend) longRead(ctx context.Context, fn func(reader) error) error {
	if b.win.Held() {
		return b.read(ctx, fn)
	}
	dir := filepath.Join(b.dir, fmt.Sprintf("%s%d-%d", checkpointPrefix, os.Getpid(), checkpoints.Add(1)))
	// A directory of this name can only be left by a killed process that had this pid
	// (pids are reused): it is stale, possibly half-written.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// A checkpoint needs the database open for writing (pebble refuses one read-only).
	if err := b.win.In(ctx, true, func(db *pebble.DB) error { return db.Checkpoint(filepath.Join(dir, "db")) }); err != nil {
		// No room for a checkpoint (a full disk): read in a window instead, holding
		// writers up for the length of the read.
		return b.read(ctx, fn)
	}
	if afterCheckpoint != nil {
		afterCheckpoint(filepath.Join(dir, "db"))
	}
	r, err := openPebble(ctx, dir, Options{Hold: true, readOnly: true, OnError: b.opt.OnError}, nil)
	if err != nil {
		// A checkpoint that cannot be read (seen once after a process was killed at a random
		// point) must not make the audit fail: read in a window instead, as on a full disk.
		if b.opt.OnError != nil {
			b.opt.OnError(fmt.Sprintf("ledger checkpoint %s unreadable, reading in a window: %v", dir, err))
		}
		return b.read(ctx, fn)
	}
	err = r.read(ctx, fn)
	return errors.Join(err, r.close())
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

// readerKV reads a pebble.Reader: the database (queries) or an indexed batch (Append,
// so that later events of one call see the effects of earlier ones).
type readerKV struct{ r pebble.Reader }

func (k readerKV) get(key []byte) ([]byte, bool, error) {
	v, closer, err := k.r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, true, nil
}

// scan hands fn copies: queries keep what they decode.
func (k readerKV) scan(p []byte, fn func(k, v []byte) error) error {
	return k.scanRange(p, upper(p), func(k, v []byte) error { return fn(bytes.Clone(k), bytes.Clone(v)) })
}

// scanRange hands fn the iterator's own key and value buffers, valid until fn returns.
func (k readerKV) scanRange(lo, hi []byte, fn func(k, v []byte) error) error {
	it, err := k.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// batchKV reads through an indexed batch and writes into it, keeping the first write error
// for the commit to return.
type batchKV struct {
	readerKV
	b   *pebble.Batch
	err error
}

func (k *batchKV) set(key, v []byte) {
	if err := k.b.Set(key, v, nil); err != nil && k.err == nil {
		k.err = err
	}
}

func (k *batchKV) del(key []byte) {
	if err := k.b.Delete(key, nil); err != nil && k.err == nil {
		k.err = err
	}
}
