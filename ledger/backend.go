package ledger

import "context"

// backend is where a ledger keeps its bytes: the keys of keys.go and their values. Two
// implement it: pebble (pebble.go, the embedded default) and PostgreSQL (postgres.go, for
// servers that run as replicas). Everything above it — the hash chain, apply, the queries,
// replay and verify — is one code for both.
type backend interface {
	// read runs fn over a consistent view of the ledger (a short window).
	read(ctx context.Context, fn func(r reader) error) error
	// write runs fn in one atomic write: fn's reads see its own writes, nothing is visible
	// to others until fn returns nil, and writes of all processes (and replicas) are
	// serialised, so that fn reads the head it extends.
	write(ctx context.Context, fn func(w writer) error) error
	// longRead runs fn over a consistent view that may be read for a long time (Log,
	// Export, Replay, Verify) without holding writers up for that long.
	longRead(ctx context.Context, fn func(r reader) error) error
	close() error
}

// reader reads keys.
type reader interface {
	get(k []byte) ([]byte, bool, error)
	// scan calls fn for every key with prefix p, in key order.
	scan(p []byte, fn func(k, v []byte) error) error
	// scanRange calls fn for every key in [lo, hi), in key order, with buffers that are
	// only valid until fn returns.
	scanRange(lo, hi []byte, fn func(k, v []byte) error) error
}

// writer reads and writes keys; the first write error is returned by the commit.
type writer interface {
	reader
	set(k, v []byte)
	del(k []byte)
}

// roKV is a reader where a kv is wanted (queries): queries never write, apply only ever
// runs over a writer or a memKV.
type roKV struct{ reader }

func (k roKV) set(key, v []byte) { panic("ledger: write through a query") }
func (k roKV) del(key []byte)    { panic("ledger: write through a query") }
