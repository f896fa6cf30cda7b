package cas

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/swcli/swcli/internal/flock"
)

// Local is a chunk store on local disk: pack files (pack.go) plus an index (index.go),
// read through read.go and collected by repack.go. It is safe for concurrent use by many
// goroutines of one process, and by many processes:
//
//   - STORE/lock is held shared by every process that uses the store, for as long as it
//     does, and exclusively by gc and by crash recovery. Writers never wait for each other:
//     each writes packs of its own and commits their index entries in short windows.
//   - Lock order, for every process: STORE/lock, then STORE/index.lock (a window), then the
//     ledger's lock (ledger package). Windows never nest, so no process waits for a lock
//     while holding one that comes after it.
type Local struct {
	dir       string
	idx       *index
	lock      *flock.Lock
	exclusive bool
	cacheDir  string
	cacheMu   sync.RWMutex // guards the stat cache's handle: readers hold it shared
	cache     *pebble.DB   // stat cache, opened by the first ingest; nil if none
	cacheOpen bool         // an open was tried (for reading at least)
	cacheRW   bool         // cache is open for writing (or cannot be)
	onError   func(string)

	mu     sync.Mutex // guards the writer fields, pending and sealing
	cur    *os.File
	curBuf *bufio.Writer
	curNum uint64
	curOff int64
	// curAppend: the open pack is one this process sealed before and goes on with.
	curAppend bool
	reuse     []*sealedPack // small packs this process sealed, to go on with (pack.go)
	nextNum   uint64
	pending   map[Hash]loc           // chunks in the open pack
	sealing   map[uint64]*sealedPack // packs being synced and indexed, still readable
	sealed    *sync.Cond             // broadcast (with mu) when a pack leaves sealing
	sealErr   error                  // the first failure of a seal; the store refuses writes after it
	gcMu      sync.Mutex             // serialises Delete
	closed    bool

	files  packFiles
	bufs   sync.Pool
	groups groupCache
}

var _ Store = (*Local)(nil)

// LocalOptions tune OpenLocalWith.
type LocalOptions struct {
	// OnWait is called once if another process holds what this one waits for for more than
	// a second.
	OnWait func(flock.Holder)
	// LockTimeout bounds each wait for another process (0: wait); past it calls fail with
	// an error matching flock.ErrBusy.
	LockTimeout time.Duration
	// CacheDir, if set, holds the stat cache that lets Ingest skip reading unchanged files.
	CacheDir string
	// Exclusive holds the store for this process alone, its index open from open to Close
	// (gc, a server that owns its root): other processes wait, and Delete needs it.
	Exclusive bool
	// OnError is told of errors that no call returns: pebble's background work, a stat
	// cache that cannot be opened or written.
	OnError func(msg string)
	// Locked, if set, is called once the store's lock is held, before the store is
	// checked: what the caller opens next (the ledger, whose lock comes after the store's)
	// may open meanwhile.
	Locked func()
}

// OpenLocal opens (creating if needed) the store in dir for this process alone; see
// OpenLocalWith.
func OpenLocal(dir string) (*Local, error) {
	return OpenLocalWith(context.Background(), dir, LocalOptions{Exclusive: true})
}

// OpenLocalWith opens (creating if needed) the store in dir, waiting while another process
// holds it exclusively. When no other process uses it, it first cleans up what a crash
// left: unfinished packs are deleted, complete packs the index does not know are
// re-indexed, and index entries of packs that are gone are dropped.
func OpenLocalWith(ctx context.Context, dir string, opt LocalOptions) (*Local, error) {
	if err := os.MkdirAll(filepath.Join(dir, "packs"), 0o755); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	lockPath := filepath.Join(dir, "lock")
	var lock *flock.Lock
	exclusive := opt.Exclusive
	if !exclusive {
		// Recovery needs the store to itself; take it if no one else is using it.
		l, ok, err := flock.TryAcquire(lockPath, false)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		lock, exclusive = l, ok
	}
	if lock == nil {
		var err error
		lock, err = flock.Acquire(ctx, lockPath, flock.Options{Shared: !opt.Exclusive, OnWait: opt.OnWait, Timeout: opt.LockTimeout})
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	s := &Local{dir: dir, lock: lock, exclusive: opt.Exclusive, cacheDir: opt.CacheDir, onError: opt.OnError,
		pending: map[Hash]loc{}, sealing: map[uint64]*sealedPack{}}
	s.idx = newIndex(dir, opt, opt.Exclusive)
	s.sealed = sync.NewCond(&s.mu)
	if opt.Locked != nil {
		opt.Locked()
	}
	fail := func(err error) (*Local, error) {
		s.idx.close()
		lock.Release()
		return nil, err
	}
	if !exclusive {
		// The schema is checked by the first window; recovery opens one below.
		if err := s.idx.in(ctx, false, func(*pebble.DB) error { return nil }); err != nil {
			return fail(err)
		}
		return s, nil
	}
	if err := s.recover(ctx); err != nil {
		if opt.Exclusive || ctx.Err() != nil {
			return fail(fmt.Errorf("recover store %s: %w", dir, err))
		}
		// Recovery writes (it re-indexes a crashed writer's packs); on a full or read-only
		// disk it cannot, and a command that opened the store to read must not fail for
		// it: what recovery would add belongs to no version yet. It runs again at the next
		// open.
		if opt.OnError != nil {
			opt.OnError(fmt.Sprintf("recover store %s: %v (left for the next open)", dir, err))
		}
	}
	if !opt.Exclusive {
		if err := lock.Share(ctx, flock.Options{OnWait: opt.OnWait, Timeout: opt.LockTimeout}); err != nil {
			return fail(fmt.Errorf("open store: %w", err))
		}
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Local) Dir() string { return s.dir }

// Has reports whether the store holds h (sealed or not).
func (s *Local) Has(ctx context.Context, h Hash) (bool, error) {
	_, ok, err := s.lookup(ctx, h)
	return ok, err
}

// known reports whether this process knows h to be stored, without asking the index
// database: what writers check. A chunk another process stored since the index was
// loaded is then stored again, which costs space until gc, never correctness.
func (s *Local) known(h Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presentLocked(h)
}

// Put implements Putter.
func (s *Local) Put(ctx context.Context, h Hash, data []byte) error {
	if len(data) > MaxBlob {
		return fmt.Errorf("put %s: %w (%d bytes)", h, ErrTooLarge, len(data))
	}
	if err := s.idx.load(ctx); err != nil || s.known(h) {
		return err
	}
	bp := s.getBuf()
	defer s.bufs.Put(bp)
	raw := Encode(data, *bp)
	_, err := s.append(h, raw, false)
	return err
}

// PutRaw implements RawStore: it verifies r against h before storing.
func (s *Local) PutRaw(ctx context.Context, h Hash, r Raw) error {
	if r.Len > MaxBlob || int64(len(r.Data)) > MaxBlob {
		return fmt.Errorf("put %s: %w (%d bytes)", h, ErrTooLarge, r.Len)
	}
	if err := s.idx.load(ctx); err != nil || s.known(h) {
		return err
	}
	bp := s.getBuf()
	defer s.bufs.Put(bp)
	if _, err := Decode(h, r, *bp); err != nil {
		return err
	}
	_, err := s.append(h, r, false)
	return err
}

// PutEncoded stores a chunk the caller has hashed and encoded itself (the ingest pipeline),
// reporting whether it was new.
func (s *Local) PutEncoded(ctx context.Context, h Hash, r Raw) (bool, error) {
	if err := s.idx.load(ctx); err != nil {
		return false, err
	}
	return s.append(h, r, false)
}

func (s *Local) getBuf() *[]byte {
	if bp, ok := s.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, MaxChunk+MaxChunk/8)
	return &b
}

// Flush implements Flusher: the unsealed pack is sealed and indexed.
// Packs other goroutines were sealing when Flush was called are waited for too.
func (s *Local) Flush(ctx context.Context) error {
	s.mu.Lock()
	var earlier []uint64
	for n := range s.sealing {
		earlier = append(earlier, n)
	}
	sp, err := s.detachLocked()
	s.mu.Unlock()
	if sp != nil {
		err = s.seal(sp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		busy := false
		for _, n := range earlier {
			if _, ok := s.sealing[n]; ok {
				busy = true
			}
		}
		if !busy {
			break
		}
		s.sealed.Wait()
	}
	if err == nil {
		err = s.sealErr
	}
	return err
}

// Close seals what was put and closes the store. Closing again does nothing.
func (s *Local) Close() error {
	s.mu.Lock()
	closed := s.closed
	s.closed = true
	s.mu.Unlock()
	if closed {
		return nil
	}
	ferr := s.Flush(context.Background())
	s.mu.Lock()
	s.dropReuseLocked()
	s.mu.Unlock()
	s.files.closeAll()
	if err := s.idx.close(); err != nil && ferr == nil {
		ferr = err
	}
	s.cacheMu.Lock()
	s.cacheOpen, s.cacheRW = true, true // no cache opens after Close
	if s.cache != nil {
		s.cache.Close()
		s.cache = nil
	}
	s.cacheMu.Unlock()
	s.lock.Release()
	return ferr
}

// NewBatch returns the store itself: its Flush makes every chunk put so far durable.
func (s *Local) NewBatch() Batch { return s }

// Keep is Missing: a local store condemns nothing (see S3.Keep).
func (s *Local) Keep(ctx context.Context, hs []Hash) ([]Hash, error) { return s.Missing(ctx, hs) }

// Missing implements Stater: the working copy of the index answers, and the database
// once for the hashes it lacks.
func (s *Local) Missing(ctx context.Context, hs []Hash) ([]Hash, error) {
	sorted := slices.Clone(hs)
	slices.SortFunc(sorted, Hash.Compare)
	sorted = slices.Compact(sorted)
	_, oks, err := s.locate(ctx, sorted)
	if err != nil {
		return nil, err
	}
	var missing []Hash
	for i, h := range sorted {
		if !oks[i] {
			missing = append(missing, h)
		}
	}
	return missing, nil
}

// Walk implements Walker over sealed chunks, in hash order, as of the working copy of
// the index.
func (s *Local) Walk(ctx context.Context, fn func(ChunkInfo) error) error {
	if err := s.idx.load(ctx); err != nil {
		return err
	}
	all := s.idx.snapshot()
	hs := make([]Hash, 0, len(all))
	for h := range all {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, Hash.Compare)
	for i, h := range hs {
		if i%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		l := all[h]
		if err := fn(ChunkInfo{Hash: h, Size: l.size, Stored: l.stored}); err != nil {
			return err
		}
	}
	return nil
}
