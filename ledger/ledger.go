package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/flock"
)

// Ledger is the event log and its projections, over a backend: pebble on disk (Open) or
// PostgreSQL (OpenPostgres). It is safe for concurrent use by the goroutines of one process,
// and (by the backend's locks) by several processes or servers.
type Ledger struct {
	be  backend
	opt Options
	now func() time.Time

	mu sync.Mutex // serialises this process's appends (the backend serialises processes)
	// treeOK: the tree has had every event once; every append adds its own since.
	treeOK atomic.Bool
	// openHead is the head as Open read it (in the window that checked the schema), nil
	// if it could not.
	openHead *Head
	// openProjects are Options.Projects as Open read them, in the same window (guarded by
	// mu; none after an append).
	openProjects map[string]openProject
}

type openProject struct {
	p   *Project
	err error
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
	// Projects are read in the window Open opens anyway (OpenProject): a command that
	// checks its project before it starts its work spares a window (~3 ms) of its own.
	Projects []string
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// readOnly, with Hold, holds the database open read-only (a checkpoint being read).
	readOnly bool
	// NoSync skips fsync on append. Only benchmarks that build large ledgers set it: a
	// crash may then lose the last appends (never corrupt the chain).
	NoSync bool
}

func newLedger(be backend, opt Options) *Ledger {
	l := &Ledger{be: be, opt: opt, now: opt.Now}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// Close closes the ledger.
func (l *Ledger) Close() error { return l.be.close() }

// OpenHead returns the head as Open read it, in the window it opened anyway: a command
// that needs the head once at its start spares a window of its own. ok is false when Open
// did not read it (PostgreSQL, or a head it could not read: Head then says why).
func (l *Ledger) OpenHead() (h Head, ok bool) {
	if l.openHead == nil {
		return Head{}, false
	}
	return *l.openHead, true
}

// OpenProject returns project name as Open read it (Options.Projects), or the error
// Project gave then; read is false when Open did not read it. What it says may have
// changed since (in this process, nothing is read after its first append): it is for a
// check before a command's work, which its append checks again.
func (l *Ledger) OpenProject(name string) (p *Project, read bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, read := l.openProjects[name]
	return r.p, read, r.err
}

// Head is the last event's sequence number and hash (zero for an empty ledger).
type Head struct {
	Seq  uint64
	Hash cas.Hash
}

// Head returns the current head.
func (l *Ledger) Head() (h Head, err error) {
	err = l.be.read(context.Background(), func(r reader) error { h, err = readHead(r); return err })
	return h, err
}

func readHead(r reader) (Head, error) {
	v, ok, err := r.get([]byte{keyHead})
	if err != nil || !ok {
		return Head{}, err
	}
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

// PrepareWrite opens the ledger for writing ahead of an append expected soon, so that the
// open overlaps the caller's last work; release lets it close. Other processes' appends
// wait until release: it is for the moments just before an append. It never waits: when
// another process has the ledger, or the backend opens nothing for a write (PostgreSQL),
// it prepares nothing, and a failed open is left for the append to meet and report.
func (l *Ledger) PrepareWrite() (release func()) {
	if p, ok := l.be.(interface{ prepareWrite() (func(), bool) }); ok {
		if rel, ok := p.prepareWrite(); ok {
			return rel
		}
	}
	return func() {}
}

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
	for i := range events {
		if err := normalized(&events[i]); err != nil {
			return nil, err
		}
	}
	if err := l.CatchUpTree(ctx); err != nil { // a ledger older than the tree: in batches
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err = l.be.write(ctx, func(w writer) error {
		out, err = l.appendTo(w, want, events)
		return err
	})
	l.openProjects = nil // what Open read of them may have changed (a new instance's "self")
	return out, err
}

// appendTo writes events, their effects and the new head through w.
func (l *Ledger) appendTo(w writer, want *uint64, events []Event) ([]Event, error) {
	head, err := readHead(w)
	if err != nil {
		return nil, err
	}
	if want != nil && *want != head.Seq {
		return nil, &ConflictError{Want: *want, Got: head.Seq}
	}
	var prevTime time.Time
	if head.Seq > 0 {
		last, err := event(w, head.Seq)
		if err != nil {
			return nil, err
		}
		prevTime = last.Time
	}
	// The tree has every event before these (a ledger older than the tree catches up here).
	if _, err := catchUpTree(w, head.Seq, 0); err != nil {
		return nil, err
	}
	st := state{p: kvProjections{w}}
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
		w.set(eventKey(e.Seq), append(e.Hash[:len(e.Hash):len(e.Hash)], bodyBytes...))
		if err := addToTree(w, &e); err != nil {
			return nil, err
		}
		head.Hash = e.Hash
		out[i] = e
	}
	hv := binary.BigEndian.AppendUint64(nil, head.Seq)
	hv = append(hv, head.Hash[:]...)
	w.set([]byte{keyHead}, hv)
	return out, nil
}

// Event reads one stored event.
func (l *Ledger) Event(seq uint64) (e Event, err error) {
	err = l.be.read(context.Background(), func(r reader) error { e, err = event(r, seq); return err })
	return e, err
}

func event(r reader, seq uint64) (Event, error) {
	v, ok, err := r.get(eventKey(seq))
	if err != nil {
		return Event{}, err
	}
	if !ok {
		return Event{}, fmt.Errorf("event %d: %w", seq, ErrNotFound)
	}
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

// memKV holds projections in memory: what replay builds. Versions, runtimes and projects
// are kept as objects (state reads and writes them directly, the hot path of replay) and
// encoded only when read as bytes.
//
// Replay leaves out what follows from those objects, and derive adds it on the first read
// that needs it: each version's 'o' entry and the latest and vN tags. Apply never reads them,
// so they are only derived once the replay is over.
type memKV struct {
	m        map[string]any
	keys     []byte    // the block new keys are copied into (keyString)
	versions []Version // the block new versions come from (newVersion)
	derived  bool
	last     struct { // what memProjections handed out last: each is in m under its key
		proj *Project
		rt   *Runtime
		v    *Version
	}
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
func (k *memKV) set(key, v []byte) { k.m[string(key)] = v; k.forget() }

// put stores an object; an object already stored under key was changed in place, and
// skipping the assignment saves allocating the key again.
func (k *memKV) put(key []byte, v any) {
	if cur, ok := k.m[string(key)]; ok {
		if cur != v {
			k.m[string(key)] = v
		}
		return
	}
	k.m[k.keyString(key)] = v
}

// keyString copies a new key into the current block of keys. A replay puts a key for
// each of a million versions; in blocks they cost a few allocations instead of a million.
// The bytes of a block are never written again once handed out.
func (k *memKV) keyString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > cap(k.keys)-len(k.keys) {
		k.keys = make([]byte, 0, max(64<<10, len(b)))
	}
	off := len(k.keys)
	k.keys = append(k.keys, b...)
	return unsafe.String(&k.keys[off], len(b))
}

// newVersion hands out the next Version of the current block.
func (k *memKV) newVersion() *Version {
	if len(k.versions) == 0 {
		k.versions = make([]Version, 256)
	}
	v := &k.versions[0]
	k.versions = k.versions[1:]
	return v
}
func (k *memKV) del(key []byte) { delete(k.m, string(key)); k.forget() }

// forget drops what memProjections remembers: a raw set or delete may have replaced it.
func (k *memKV) forget() { k.last.proj, k.last.rt, k.last.v = nil, nil, nil }

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

// normalized refuses an event whose project or runtime name is not in the form names are
// kept in (lowercase, SPEC: Names): a name stored as "CON" could never be addressed, since
// every command looks names up lowercased. Callers normalise names on every path in; this
// is the ledger's guarantee that none slipped through. (Replay does not apply it: history
// written before it stays readable.)
func normalized(e *Event) error {
	for _, n := range []string{e.Project, e.Runtime} {
		if n != strings.ToLower(n) {
			return fmt.Errorf("%w: name %q is not lowercase", ErrInvalid, n)
		}
	}
	return nil
}
