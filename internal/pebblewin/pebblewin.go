// Package pebblewin opens a pebble database for short windows, shared by the goroutines of
// one process, so that several processes can take turns with it (pebble admits one
// process per database). The store's index and the ledger use it.
//
// Reads open the database read-only: they work on a full disk. A window for writing waits
// for this process's read windows to close, and opens the database for writing only if the
// file system has room (pebble fails hard, not with an error, when it cannot write its
// MANIFEST at open). A held window stays open from the first use to Close.
package pebblewin

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/swcli/swcli/internal/flock"
	"github.com/swcli/swcli/internal/fsutil"
)

// Config says which database and how.
type Config struct {
	What     string // "store index", "ledger": for errors
	Dir      string // the pebble directory
	LockPath string // the lock file taken for each window
	FreeDir  string // where free space is checked before opening for writing
	// Held keeps the database open from the first window to Close.
	Held bool
	// ReadOnlyHeld, with Held, keeps it open read-only (a checkpoint being read).
	ReadOnlyHeld bool
	OnWait       func(flock.Holder)
	LockTimeout  time.Duration
	OnError      func(string) // pebble's background errors
	// BlockSize is the tables' block size (pebble's default, 4 KiB, when 0): larger blocks
	// make a long scan cheaper (fewer reads, allocations and checksums a byte).
	BlockSize int
	// CacheSize is the block cache's size (pebble's default, 8 MiB, when 0), allocated
	// for each opening, outside Go's heap.
	CacheSize int64
	// SchemaKey holds the database's format version, a uvarint, checked against Schema on
	// the first open (and written there by the first open that may write).
	SchemaKey []byte
	Schema    uint64
}

// checkSchema reads the format version, writing it into a new database opened to write.
func (w *Window) checkSchema(db *pebble.DB, rw bool) error {
	v, closer, err := db.Get(w.cfg.SchemaKey)
	if errors.Is(err, pebble.ErrNotFound) {
		if !rw {
			return nil // a new database, opened to read: written on the first write
		}
		return db.Set(w.cfg.SchemaKey, binary.AppendUvarint(nil, w.cfg.Schema), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("read %s schema: %w", w.cfg.What, err)
	}
	defer closer.Close()
	got, n := binary.Uvarint(v)
	if n <= 0 || got != w.cfg.Schema {
		return fmt.Errorf("%s %s has schema %d; this swcli reads schema %d", w.cfg.What, w.cfg.Dir, got, w.cfg.Schema)
	}
	return nil
}

// Window is a database opened for windows.
type Window struct {
	cfg   Config
	mu    sync.Mutex // guards the rest
	cond  *sync.Cond // broadcast when a window closes
	db    *pebble.DB
	rw    bool
	lock  *flock.Lock
	refs  int
	ready bool
}

// New returns a window over cfg's database; nothing is opened yet.
func New(cfg Config) *Window {
	w := &Window{cfg: cfg}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// Held reports whether the database stays open between windows.
func (w *Window) Held() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg.Held
}

// Enter opens the database (unless this process has it open in a fitting mode) and
// returns it; every Enter is matched by a Leave.
func (w *Window) Enter(ctx context.Context, write bool) (*pebble.DB, error) {
	db, _, err := w.enter(write, true, func() (*flock.Lock, bool, error) {
		l, err := flock.Acquire(ctx, w.cfg.LockPath, flock.Options{OnWait: w.cfg.OnWait, Timeout: w.cfg.LockTimeout})
		return l, err == nil, err
	})
	return db, err
}

// TryEnter is Enter for a caller that would rather not wait: when another process holds
// the database, or (to write) a reader in this one, it returns ok false and holds nothing.
func (w *Window) TryEnter(write bool) (db *pebble.DB, ok bool, err error) {
	return w.enter(write, false, func() (*flock.Lock, bool, error) { return flock.TryAcquire(w.cfg.LockPath, false) })
}

func (w *Window) enter(write, wait bool, acquire func() (*flock.Lock, bool, error)) (*pebble.DB, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	write = write || (w.cfg.Held && !w.cfg.ReadOnlyHeld)
	for w.db != nil && write && !w.rw {
		if w.refs == 0 {
			w.closeLocked()
			break
		}
		if !wait {
			return nil, false, nil
		}
		w.cond.Wait()
	}
	if w.db == nil {
		lock, ok, err := acquire()
		if err != nil {
			return nil, false, fmt.Errorf("open %s: %w", w.cfg.What, err)
		}
		if !ok {
			return nil, false, nil
		}
		db, rw, err := w.open(write)
		if err != nil {
			lock.Release()
			return nil, false, err
		}
		w.db, w.rw, w.lock = db, rw, lock
		if !w.ready && w.cfg.SchemaKey != nil {
			if err := w.checkSchema(db, rw); err != nil {
				w.closeLocked()
				return nil, false, err
			}
		}
		w.ready = true
	}
	w.refs++
	return w.db, true, nil
}

// open opens the database: read-only for reads when it exists, for writing otherwise.
func (w *Window) open(write bool) (*pebble.DB, bool, error) {
	if !write {
		if db, err := pebble.Open(w.cfg.Dir, w.options(true)); err == nil {
			return db, false, nil
		}
	}
	if err := fsutil.CheckFree(w.cfg.FreeDir); err != nil {
		return nil, false, fmt.Errorf("open %s for writing: %w", w.cfg.What, err)
	}
	db, err := pebble.Open(w.cfg.Dir, w.options(false))
	if err != nil {
		return nil, false, fmt.Errorf("open %s %s: %w", w.cfg.What, w.cfg.Dir, err)
	}
	return db, true, nil
}

// Leave ends a window; the database closes when the last one ends, unless held.
func (w *Window) Leave() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.refs--
	var err error
	if w.refs == 0 && !w.cfg.Held {
		err = w.closeLocked()
	}
	w.cond.Broadcast()
	return err
}

func (w *Window) closeLocked() error {
	if w.db == nil {
		return nil
	}
	err := w.db.Close()
	w.lock.Release()
	w.db, w.lock, w.rw = nil, nil, false
	return err
}

// Close closes the database, held or not. Closing again does nothing.
func (w *Window) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cfg.Held = false
	return w.closeLocked()
}

// In runs fn in a window, for writing if write.
func (w *Window) In(ctx context.Context, write bool, fn func(db *pebble.DB) error) error {
	db, err := w.Enter(ctx, write)
	if err != nil {
		return err
	}
	err = fn(db)
	if lerr := w.Leave(); err == nil && lerr != nil {
		err = fmt.Errorf("close %s: %w", w.cfg.What, lerr)
	}
	return err
}

// logger keeps pebble's informational chatter off the terminal and hands its errors (a
// failed background flush or compaction, which no call returns) to Config.OnError.
type logger struct{ onError func(string) }

func (logger) Infof(string, ...interface{}) {}
func (l logger) Errorf(format string, args ...interface{}) {
	if l.onError != nil {
		l.onError(fmt.Sprintf(format, args...))
	}
}
func (logger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf(format, args...))
}

// Options are swcli's options for a pebble database: the newest format, pebble's errors to
// onError, tables in blocks of blockSize (pebble's default, 4 KiB, when 0), read-only or not.
func Options(onError func(string), blockSize int, readOnly bool) *pebble.Options {
	o := &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: logger{onError}, ReadOnly: readOnly}
	if blockSize > 0 {
		o.Levels[0].BlockSize = blockSize // the other levels take L0's
	}
	return o
}

func (w *Window) options(readOnly bool) *pebble.Options {
	o := Options(w.cfg.OnError, w.cfg.BlockSize, readOnly)
	if w.cfg.CacheSize > 0 {
		o.CacheSize = w.cfg.CacheSize
	}
	return o
}

// DB is the open database, for a caller inside a window (nil outside one).
func (w *Window) DB() *pebble.DB {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.db
}
