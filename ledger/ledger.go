package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/flock"
	"github.com/swcli/swcli/internal/pebblewin"
)

// Ledger is a ledger on disk. It is safe for concurrent use by the goroutines of one
// process.
//
// Pebble admits one process per database, so by default a Ledger holds the database only
// for the length of a call: each exported method opens it (waiting for another process's
// call to end), does its work and closes it again, in a few milliseconds. Long reads (Log,
// Export, Replay, Verify) work on a checkpoint taken in such a window, so that a reader
// never holds writers up for longer than the checkpoint takes. With Options.Hold the
// database stays open until Close: what a server that owns its root does.
type Ledger struct {
	dir  string
	opt  Options
	now  func() time.Time
	sync *pebble.WriteOptions // pebble.Sync; tests that append 10k events use NoSync

	win *pebblewin.Window // the database, opened for windows (internal/pebblewin)

	mu sync.Mutex // serialises appends
}

// Options tune Open.
type Options struct {
	// OnWait is called once if another process holds the ledger for more than a second.
	OnWait func(flock.Holder)
	// LockTimeout bounds each wait for another process (0: wait); past it calls fail with
	// an error matching flock.ErrBusy.
	LockTimeout time.Duration
	// Hold keeps the database open (and other processes out) from Open to Close.
	Hold bool
	// OnError is told of errors pebble meets in the background (flushes, compactions).
	OnError func(msg string)
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// readOnly, with Hold, holds the database open read-only (a checkpoint being read).
	readOnly bool
	// NoSync skips fsync on append. Only benchmarks that build large ledgers set it: a
	// crash may then lose the last appends (never corrupt the chain).
	NoSync bool
}

// Open opens (creating) the ledger in dir. It checks the schema in a first window (or, with
// Hold, opens the database for good), waiting while another process holds it.
func Open(ctx context.Context, dir string, opt Options) (*Ledger, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	l := &Ledger{dir: dir, opt: opt, now: opt.Now, sync: pebble.Sync}
	if l.now == nil {
		l.now = time.Now
	}
	if opt.NoSync {
		l.sync = pebble.NoSync
	}
	l.win = pebblewin.New(pebblewin.Config{
		What: "ledger", Dir: filepath.Join(dir, "db"), LockPath: filepath.Join(dir, "lock"), FreeDir: dir,
		Held: opt.Hold, ReadOnlyHeld: opt.readOnly, OnWait: opt.OnWait, LockTimeout: opt.LockTimeout,
		OnError: opt.OnError, CheckSchema: checkSchema,
	})
	removeStaleCheckpoints(dir)
	if err := l.win.In(ctx, false, func(*pebble.DB) error { return nil }); err != nil {
		return nil, err
	}
	return l, nil
}

// db is the open database, inside a window.
func (l *Ledger) db() *pebble.DB { return l.win.DB() }

// in runs fn inside a read window.
func (l *Ledger) in(ctx context.Context, fn func() error) error { return l.inMode(ctx, false, fn) }

// inMode runs fn inside a window, for writing if write.
func (l *Ledger) inMode(ctx context.Context, write bool, fn func() error) error {
	return l.win.In(ctx, write, func(*pebble.DB) error { return fn() })
}

func checkSchema(db *pebble.DB, rw bool) error {
	v, closer, err := db.Get([]byte{keySchema})
	if errors.Is(err, pebble.ErrNotFound) {
		if !rw {
			return nil // a new ledger, opened to read: written on the first append
		}
		return db.Set([]byte{keySchema}, binary.AppendUvarint(nil, schemaVersion), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("read ledger schema: %w", err)
	}
	defer closer.Close()
	got, n := binary.Uvarint(v)
	if n <= 0 || got != schemaVersion {
		return fmt.Errorf("ledger has schema %d; this swcli reads schema %d", got, schemaVersion)
	}
	return nil
}

// Close closes the ledger.
func (l *Ledger) Close() error { return l.win.Close() }

// Head is the last event's sequence number and hash (zero for an empty ledger).
type Head struct {
	Seq  uint64
	Hash cas.Hash
}

// Head returns the current head.
func (l *Ledger) Head() (h Head, err error) {
	err = l.in(context.Background(), func() error { h, err = readHead(l.db()); return err })
	return h, err
}

func readHead(r pebble.Reader) (Head, error) {
	v, closer, err := r.Get([]byte{keyHead})
	if errors.Is(err, pebble.ErrNotFound) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, err
	}
	defer closer.Close()
	if len(v) != 8+cas.HashSize {
		return Head{}, fmt.Errorf("ledger head is %d bytes", len(v))
	}
	var h Head
	h.Seq = binary.BigEndian.Uint64(v)
	copy(h.Hash[:], v[8:])
	return h, nil
}

// ConflictError is returned by AppendIf when the head moved.
type ConflictError struct{ Want, Got uint64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("ledger moved: expected head %d, found %d", e.Want, e.Got)
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Append appends events in order, each with its effect on the projections, in one synced
// batch: after a crash either all of them are there or none. It fills in Seq, Time (if
// zero), Prev and Hash, and returns the events as stored. An event the projections refuse
// (a tag on a missing version, …) fails the whole call and nothing is written.
func (l *Ledger) Append(ctx context.Context, events ...Event) ([]Event, error) {
	return l.append(ctx, nil, events)
}

// AppendIf is Append conditioned on the head: it fails with a *ConflictError if another
// append happened since the caller read head seq.
func (l *Ledger) AppendIf(ctx context.Context, seq uint64, events ...Event) ([]Event, error) {
	return l.append(ctx, &seq, events)
}

func (l *Ledger) append(ctx context.Context, want *uint64, events []Event) (out []Event, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err = l.inMode(ctx, true, func() error {
		out, err = l.appendLocked(want, events)
		return err
	})
	return out, err
}

func (l *Ledger) appendLocked(want *uint64, events []Event) ([]Event, error) {
	head, err := readHead(l.db())
	if err != nil {
		return nil, err
	}
	if want != nil && *want != head.Seq {
		return nil, &ConflictError{Want: *want, Got: head.Seq}
	}
	var prevTime time.Time
	if head.Seq > 0 {
		last, err := l.event(head.Seq)
		if err != nil {
			return nil, err
		}
		prevTime = last.Time
	}
	b := l.db().NewIndexedBatch()
	defer b.Close()
	bkv := &batchKV{readerKV: readerKV{b}, b: b}
	st := state{p: kvProjections{bkv}}
	out := make([]Event, len(events))
	for i, e := range events {
		head.Seq++
		e.Seq = head.Seq
		e.Prev = head.Hash
		if e.Time.IsZero() {
			e.Time = l.now()
		}
		e.Time = e.Time.UTC()
		if e.Time.Before(prevTime) { // the log's times never go back, so --at TIME is a prefix
			e.Time = prevTime
		}
		prevTime = e.Time
		if len(e.Data) == 0 {
			e.Data = []byte("{}")
		}
		bodyBytes := e.Body()
		e.Hash = cas.Sum(bodyBytes)
		if err := st.apply(&e); err != nil {
			return nil, fmt.Errorf("%s %s/%s: %w", e.Type, e.Project, e.Runtime, err)
		}
		if err := b.Set(eventKey(e.Seq), append(e.Hash[:len(e.Hash):len(e.Hash)], bodyBytes...), nil); err != nil {
			return nil, err
		}
		head.Hash = e.Hash
		out[i] = e
	}
	hv := binary.BigEndian.AppendUint64(nil, head.Seq)
	hv = append(hv, head.Hash[:]...)
	if err := b.Set([]byte{keyHead}, hv, nil); err != nil {
		return nil, err
	}
	if bkv.err != nil {
		return nil, fmt.Errorf("write ledger batch: %w", bkv.err)
	}
	if err := b.Commit(l.sync); err != nil {
		return nil, fmt.Errorf("commit ledger: %w", err)
	}
	return out, nil
}

// Event reads one stored event.
func (l *Ledger) Event(seq uint64) (e Event, err error) {
	err = l.in(context.Background(), func() error { e, err = l.event(seq); return err })
	return e, err
}

func (l *Ledger) event(seq uint64) (Event, error) {
	v, closer, err := l.db().Get(eventKey(seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return Event{}, fmt.Errorf("event %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return Event{}, err
	}
	defer closer.Close()
	return decodeStored(v)
}

func decodeStored(v []byte) (Event, error) { return decodeStoredIntern(v, nil) }

func decodeStoredIntern(v []byte, intern map[string]string) (Event, error) {
	if len(v) < cas.HashSize {
		return Event{}, fmt.Errorf("%w: stored event is %d bytes", ErrBadEvent, len(v))
	}
	e, err := decodeBody(v[cas.HashSize:], intern)
	if err != nil {
		return Event{}, err
	}
	copy(e.Hash[:], v)
	return e, nil
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

func (k readerKV) scan(p []byte, fn func(k, v []byte) error) error {
	it, err := k.r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upper(p)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(bytes.Clone(it.Key()), bytes.Clone(it.Value())); err != nil {
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

// memKV holds projections in memory: what replay builds. Versions, runtimes and projects
// are kept as objects (state reads and writes them directly, the hot path of replay) and
// encoded only when read as bytes.
//
// Replay leaves out what follows from those objects, and derive adds it on the first read
// that needs it: each version's 'o' entry and the latest and vN tags. Apply never reads them,
// so they are only derived once the replay is over.
type memKV struct {
	m       map[string]any
	derived bool
}

func newMemKV(hint int) *memKV { return &memKV{m: make(map[string]any, hint)} }

func encodeObj(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case *string:
		return []byte(*x)
	case *Version:
		return encodeVersion(x)
	case *Runtime:
		return encodeRuntime(x)
	case *Project:
		return encodeProject(x)
	}
	return nil
}

// derive adds the 'o' entries and the built-in tags. Only read a memKV after it (get and
// scan call it when they need to).
func (k *memKV) derive() {
	if k.derived {
		return
	}
	k.derived = true
	type entry struct {
		key string
		obj any
	}
	var add []entry // m is not changed while ranging over it
	for key, obj := range k.m {
		switch x := obj.(type) {
		case *Version:
			if key[0] != keyVersion {
				continue
			}
			add = append(add, entry{string(orderKey(x.Project, x.Runtime, x.Seq)), x})
			if x.Status != StatusPurged {
				id := x.ID
				add = append(add, entry{string(tagKey(x.Project, x.Runtime, vnTag(x.VN))), &id})
			}
		case *Runtime:
			if x.Latest != "" {
				id := x.Latest
				add = append(add, entry{string(tagKey(x.Project, x.Name, "latest")), &id})
			}
		}
	}
	for _, e := range add {
		k.m[e.key] = e.obj
	}
}

// derivedPrefix reports whether keys with prefix p may be derived ones.
func derivedPrefix(p []byte) bool {
	return len(p) == 0 || p[0] == keyOrder || p[0] == keyTag
}

func (k *memKV) get(key []byte) ([]byte, bool, error) {
	if derivedPrefix(key) {
		k.derive()
	}
	v, ok := k.m[string(key)]
	if !ok {
		return nil, false, nil
	}
	return encodeObj(v), true, nil
}
func (k *memKV) set(key, v []byte) { k.m[string(key)] = v }

// put stores an object; an object already stored under key was changed in place, and
// skipping the assignment saves allocating the key again.
func (k *memKV) put(key []byte, v any) {
	if cur, ok := k.m[string(key)]; ok && cur == v {
		return
	}
	k.m[string(key)] = v
}
func (k *memKV) del(key []byte) { delete(k.m, string(key)) }

func (k *memKV) scan(p []byte, fn func(k, v []byte) error) error {
	if derivedPrefix(p) {
		k.derive()
	}
	var keys []string
	for key := range k.m {
		if len(key) >= len(p) && key[:len(p)] == string(p) {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	for _, key := range keys {
		if err := fn([]byte(key), encodeObj(k.m[key])); err != nil {
			return err
		}
	}
	return nil
}
