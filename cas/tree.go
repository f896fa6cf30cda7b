package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"
)

// Ingest: walking inputs into a manifest while workers chunk, hash and store what is new.
// Invariants:
//   - A chunk is stored only if this process does not know it (Local.known); new chunks go
//     into per-worker groups (group.go), so a chunk's first copy may still be in a group
//     that is being filled: inGroup keeps a second worker from storing it again. A chunk
//     leaves inGroup once its group is indexed (so the set holds the open groups' chunks,
//     not the tree's), and a worker that claims a chunk looks at the index once more, in
//     case its group was indexed between the two looks.
//   - The manifest is stored last, after every chunk it names, and Flush makes it durable
//     before Ingest returns: a tree whose hash is returned is whole in the store.
//   - Stat cache entries are written after the Flush (statcache.go), so none names a chunk
//     that is not durable, and none for a file changed as the ingest began (Racy).
//   - What the ingest keeps for its end, the manifest's entries and the stat cache's, is
//     encoded as it is made and spilled past a bound (spill.go, treesort.go): the walk and
//     the workers hold only the files in flight, whatever the tree's size.
//   - The index's working copy is loaded only for what the caches do not vouch for in the
//     store's current epoch (epoch.go): an unchanged re-store never loads it.

// Input is one thing to put in a tree: a file, link or directory on disk (walked, links kept
// as links), or in-memory content.
type Input struct {
	Src  string // on disk; empty for Data
	Dest string // path in the tree; "" puts a directory's contents at the root
	Data []byte // content when Src is empty
	Mode uint32 // permission bits for Data (default 0644)
	// Later, if set, gives the content instead of Data: it is called once every other input
	// has been walked, so that content made meanwhile (a lock file) does not hold up the
	// rest. Its error ends the ingest.
	Later func() ([]byte, error)
}

// Progress hears about an ingest or a materialisation as it goes. Calls come from several
// goroutines at once.
type Progress interface {
	// Planned announces files and bytes found by the walk.
	Planned(files int, bytes int64)
	// Done reports files and bytes finished.
	Done(files int, bytes int64)
}

// IngestOptions tune Ingest.
type IngestOptions struct {
	Workers  int      // file workers; default 2 × GOMAXPROCS
	Progress Progress // optional
	// Walked, if set, is called once every file is stored and before the manifest is
	// made: a caller may then get ready for what follows the ingest. With Unwalked set, it
	// may come earlier, beside the walk that checks the tree cache (treecache.go) of a
	// small tree; if the tree must then be made anew, Unwalked is called and Walked comes
	// again when its files are stored.
	Walked, Unwalked func()
	// Prewalk, if set, is the tree cache's walk of a directory input, begun by the caller
	// (prewalk.go); Ingest stops it.
	Prewalk *Prewalk
}

// IngestResult is what Ingest stored.
type IngestResult struct {
	Hash Hash // the manifest's hash: the tree's name
	Totals
	BytesRead int64    // file bytes read; 0 when the stat cache covered every file
	NewChunks int      // chunks this ingest added
	NewBytes  int64    // content bytes of those chunks
	NewStored int64    // their stored (compressed) bytes
	Skipped   []string // sockets, devices and pipes, which a tree cannot hold
	// Reused: the tree cache vouched for the whole tree (treecache.go): its walk found what
	// the last ingest of the same inputs found, and nothing else was looked at.
	Reused bool
}

// inMemoryLimit: files up to this size are read whole; larger ones are streamed.
const inMemoryLimit = 1 << 20

// fileJob is a file for a worker: its entry (mode set), its path and its stat.
type fileJob struct {
	entry  *Entry
	src    string
	size   int64
	key    fileStat
	hasKey bool // key is the file's stat (some systems give none)
}

// Ingest stores the inputs as one tree in s and returns its manifest, itself stored in s.
// Reading, hashing, chunking and compressing run on every core; whole files are deduplicated
// before they are chunked, and files whose stat is unchanged since s last stored them are
// not read at all. When Ingest returns, the tree and all it references are durable.
func Ingest(ctx context.Context, s *Local, inputs []Input, opt IngestOptions) (*IngestResult, error) {
	defer opt.Prewalk.Stop()
	workers := opt.Workers
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	in := &ingest{s: s, opt: opt, workers: workers, tree: newTreeSort(s.dir), stats: newSpill(s.dir, nil), dirs: map[string]bool{},
		began: FSClock()}
	defer in.tree.close()
	defer in.stats.close()
	for _, input := range inputs {
		if input.Src != "" {
			in.roots = append(in.roots, input.Src)
		}
	}
	// The epoch first: what the caches say is trusted only as of it (epoch.go). The stat
	// cache's snapshot loads while the walk starts. The index's working copy loads when
	// something must be looked up in it: a file the caches do not vouch for.
	in.epoch = s.idx.readEpoch()
	if s.idx.isLoaded() {
		// A working copy loaded before the epoch was read may hold entries dropped since:
		// what it vouches for is not recorded as known in this epoch.
		in.epoch = epoch{}
	}
	key := treeKey(inputs)
	res, ok, err := in.sameTree(ctx, inputs, key)
	opt.Prewalk.Stop() // taken, or not needed: the cores are the ingest's now
	if err != nil || ok {
		return res, err
	}
	var loads sync.WaitGroup
	defer loads.Wait() // none outlives the ingest (the store may be closed after it)
	loads.Go(func() { in.snapOnce.Do(func() { in.snap = s.loadStats(in.roots) }) })
	// The walk stats files as it reads their directory (walk.go) and hands the workers a
	// directory's files at a time; they wait for the snapshot, not the walk.
	jobs := make(chan []fileJob, 256)
	g, gctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			w := in.newWorker()
			for batch := range jobs {
				for _, j := range batch {
					if err := w.file(gctx, j); err != nil {
						return err
					}
					if err := in.tree.add(j.entry); err != nil {
						return err
					}
				}
			}
			return w.flushGroup(gctx)
		})
	}
	walkErr := func() error {
		defer close(jobs)
		return in.walk(gctx, inputs, jobs)
	}()
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if walkErr != nil {
		return nil, walkErr
	}
	if opt.Walked != nil {
		opt.Walked()
	}
	collectIfLarge()
	h, totals, err := in.tree.sum()
	if err != nil {
		return nil, err
	}
	if !s.blobsKnown([]Hash{h}, in.epoch) { // a new tree: its manifest's bytes are needed
		enc, _, err := in.tree.encode()
		if err != nil {
			return nil, err
		}
		if Sum(enc) != h {
			return nil, fmt.Errorf("store manifest: its bytes do not hash to the sum of its entries")
		}
		if err := s.Put(ctx, h, enc); err != nil {
			return nil, fmt.Errorf("store manifest: %w", err)
		}
		in.blobs = append(in.blobs, h)
	}
	in.tree.close()
	if err := s.Flush(ctx); err != nil {
		return nil, err
	}
	var te *treeEntry
	if in.epoch.known() && !in.unvouched.Load() {
		te = &treeEntry{epoch: in.epoch, tree: h, sum: in.sum, totals: totals, skipped: in.skipped}
	}
	if err := s.recordCaches(ctx, in.epoch, in.stats, in.blobs, in.files, key, te); err != nil {
		return nil, fmt.Errorf("record stat cache: %w", err)
	}
	return &IngestResult{
		Hash: h, Totals: totals,
		BytesRead: in.bytesRead.Load(), NewChunks: int(in.newChunks.Load()),
		NewBytes: in.newBytes.Load(), NewStored: in.newStored.Load(), Skipped: in.skipped,
	}, nil
}

type ingest struct {
	s   *Local
	opt IngestOptions

	workers  int
	roots    []string // the Src inputs
	epoch    epoch    // the store's, read before anything was looked up
	began    int64    // FSClock when it began: files changed since are not vouched for (Racy)
	snapOnce sync.Once
	snap     *statSnapshot // their stat cache entries, read by the first worker to need them

	bytesRead, newBytes, newStored, newChunks atomic.Int64

	inGroup sync.Map // small chunks waiting in some worker's group

	tree  *treeSort // the manifest's entries
	stats *spill    // stat cache records (statcache.go), written after the flush
	// listOnly: a walk that stores nothing and only sums what it finds (treecache.go).
	listOnly bool
	// unvouched: a file's stat had no inode or times, or was too recent (Racy), so
	// the sum cannot vouch for it.
	unvouched atomic.Bool

	mu      sync.Mutex
	sum     walkSum         // of what the walk found (treecache.go)
	rec     []byte          // a buffer for the records the walk's own goroutine sums
	dirs    map[string]bool // directories in the tree so far
	blobs   []Hash          // in-memory content stored or checked against the index
	files   []fileRecord
	skipped []string
}

// modeOf returns the permission bits (with setuid, setgid, sticky) of a file.
func modeOf(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint32(st.Mode) & 0o7777
	}
	return uint32(fi.Mode().Perm())
}

// walk lists the inputs, sending files to the workers as it finds them and giving the
// other entries to the tree.
func (in *ingest) walk(ctx context.Context, inputs []Input, jobs chan<- []fileJob) error {
	addParents := func(p string) error {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if err := in.addDir(&Entry{Path: dir, Kind: KindDir, Mode: 0o755}); err != nil {
				return err
			}
		}
		return nil
	}
	send := func(j fileJob, size int64) error {
		if in.opt.Progress != nil {
			in.opt.Progress.Planned(1, size)
		}
		select {
		case jobs <- []fileJob{j}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ordered := make([]Input, 0, len(inputs))
	for _, input := range inputs {
		if input.Later == nil {
			ordered = append(ordered, input)
		}
	}
	for _, input := range inputs {
		if input.Later != nil {
			ordered = append(ordered, input)
		}
	}
	// In-memory content is stored once the directories have been walked: storing needs
	// the index's working copy, which loads meanwhile.
	type heldInput struct {
		e    *Entry
		data []byte
	}
	var held []heldInput
	storeHeld := func() error {
		for _, h := range held {
			if err := in.storeBytes(ctx, h.e, h.data); err != nil {
				return err
			}
			if err := in.tree.add(h.e); err != nil {
				return err
			}
		}
		held = nil
		return nil
	}
	for _, input := range ordered {
		if input.Later != nil { // after every other input (ordered): the held ones first
			if err := storeHeld(); err != nil {
				return err
			}
		}
		if input.Dest != "" {
			if err := ValidPath(input.Dest); err != nil {
				return fmt.Errorf("tree input %q: %w", input.Dest, err)
			}
			if err := addParents(input.Dest); err != nil {
				return err
			}
		}
		if input.Src == "" {
			mode := input.Mode
			if mode == 0 {
				mode = 0o644
			}
			data := input.Data
			if input.Later != nil {
				var err error
				if data, err = input.Later(); err != nil {
					return err
				}
			}
			sum := Sum(data)
			in.record(recMemory, "", input.Dest, mode, nil, string(sum[:]))
			if in.listOnly {
				continue
			}
			e := &Entry{Path: input.Dest, Kind: KindFile, Mode: mode, Size: int64(len(data))}
			switch {
			case len(data) > 0 && input.Later == nil:
				held = append(held, heldInput{e, data}) // stored after the walks
			case len(data) > 0:
				if err := in.storeBytes(ctx, e, data); err != nil {
					return err
				}
				fallthrough
			default:
				if err := in.tree.add(e); err != nil {
					return err
				}
			}
			if p := in.opt.Progress; p != nil {
				// Counted as every other file, so that the bar ends at the count that the
				// summary and info give.
				if input.Later != nil {
					p.Planned(1, int64(len(data)))
				}
				p.Done(1, int64(len(data)))
			}
			continue
		}
		root := input.Src
		fi, err := os.Lstat(root)
		if err != nil {
			return fmt.Errorf("walk %s: %w", root, err)
		}
		dest := input.Dest
		switch {
		case fi.IsDir():
			if dest != "" {
				in.record(recDir, root, dest, modeOf(fi), nil, "")
				if err := in.addDir(&Entry{Path: dest, Kind: KindDir, Mode: modeOf(fi)}); err != nil {
					return err
				}
			}
			if in.listOnly {
				if sum, skipped, ok := in.opt.Prewalk.take(filepath.Clean(root), dest); ok {
					in.mu.Lock()
					in.sum.merge(sum)
					in.mu.Unlock()
					in.skipped = append(in.skipped, skipped...)
					continue
				}
			}
			// The stat cache is keyed by the paths the walk makes: the root cleaned, then
			// names joined to it.
			skipped, err := in.walkTree(ctx, filepath.Clean(root), dest, jobs)
			if err != nil {
				return err
			}
			in.skipped = append(in.skipped, skipped...)
		case fi.Mode().IsRegular():
			if dest == "" {
				return fmt.Errorf("tree input %s: a file needs a destination path", root)
			}
			e := &Entry{Path: dest, Kind: KindFile, Mode: modeOf(fi)}
			key, hasKey := fileStatOf(fi)
			if !hasKey {
				in.unvouched.Store(true)
			}
			in.record(recFile, root, dest, modeOf(fi), &key, "")
			if in.listOnly {
				continue
			}
			if err := send(fileJob{entry: e, src: root, size: fi.Size(), key: key, hasKey: hasKey}, fi.Size()); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			if dest == "" {
				return fmt.Errorf("tree input %s: a link needs a destination path", root)
			}
			target, err := os.Readlink(root)
			if err != nil {
				return fmt.Errorf("read link %s: %w", root, err)
			}
			in.record(recLink, root, dest, 0o777, nil, target)
			if err := in.tree.add(&Entry{Path: dest, Kind: KindLink, Mode: 0o777, Target: target}); err != nil {
				return err
			}
		default:
			in.record(recSkipped, root, "", 0, nil, "")
			in.skipped = append(in.skipped, root)
		}
	}
	return storeHeld()
}

// record counts one thing the walk's own goroutine found (the walkers keep sums of their
// own: listWalker).
func (in *ingest) record(kind byte, abs, dest string, mode uint32, st *fileStat, target string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rec = walkRecord(in.rec, kind, abs, dest, mode, st, target)
	in.sum.add(in.rec)
}

// addDir gives the tree the directory e, unless it has it already (a parent of an input's
// Dest, or a directory another input had): the first one made stays.
func (in *ingest) addDir(e *Entry) error {
	if in.tree == nil { // a walk that only counts (PlanInputs)
		return nil
	}
	in.mu.Lock()
	made := in.dirs[e.Path]
	in.dirs[e.Path] = true
	in.mu.Unlock()
	if made {
		return nil
	}
	return in.tree.add(e)
}

// storeBytes stores in-memory content for e, unless the blob cache says the store has it.
func (in *ingest) storeBytes(ctx context.Context, e *Entry, data []byte) error {
	if hs := chunkHashes(data); in.s.blobsKnown(hs, in.epoch) {
		e.Chunks = hs
		return nil
	}
	if err := in.s.idx.load(ctx); err != nil {
		return err
	}
	w := in.newWorker()
	chunks, err := w.chunkBytes(ctx, data)
	e.Chunks = chunks
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.blobs = append(in.blobs, chunks...)
	in.mu.Unlock()
	return w.flushGroup(ctx)
}

// chunkHashes names the chunks chunkBytes stores data as.
func chunkHashes(data []byte) []Hash {
	if len(data) == 0 {
		return nil
	}
	if len(data) <= MaxChunk {
		return []Hash{Sum(data)}
	}
	var hs []Hash
	cutEach(data, func(h Hash, _ []byte) error { hs = append(hs, h); return nil })
	return hs
}

type worker struct {
	in  *ingest
	buf []byte // file contents, up to inMemoryLimit
	ch  *Chunker

	// chunks waiting to be compressed together: small ones, and large ones
	small, large group
	bufs         groupBufs
}

// group is chunks waiting to be stored as one compressed group: data is groupHeadroom
// bytes of room for the group's table, then the chunks. Its buffers are reused.
type group struct {
	hashes []Hash
	sizes  []int64
	data   []byte
}

func (in *ingest) newWorker() *worker { return &worker{in: in} }

// file stores the file of j.
func (w *worker) file(ctx context.Context, j fileJob) error {
	s := w.in.s
	key, hasKey := j.key, j.hasKey
	if hasKey {
		w.in.snapOnce.Do(func() { w.in.snap = s.loadStats(w.in.roots) })
		if chunks, e, ok := s.cachedChunks(w.in.snap, j.src, key); ok {
			trusted := e.known() && e == w.in.epoch
			if !trusted {
				if err := s.idx.load(ctx); err != nil {
					return err
				}
			}
			if trusted || w.allPresent(ctx, chunks) {
				j.entry.Size, j.entry.Chunks = j.size, chunks
				if !trusted && w.in.epoch.known() { // checked now: trusted in this epoch from here on
					if err := w.in.recordStat(j.src, key, chunks); err != nil {
						return err
					}
				}
				w.done(j.size)
				return nil
			}
		}
	}
	if err := s.idx.load(ctx); err != nil {
		return err
	}
	// Not through a link: the walk saw a regular file here.
	fd, err := openRaw(j.src, syscall.O_RDONLY|syscall.O_NOFOLLOW, 0) // rawfile.go
	if err != nil {
		return fmt.Errorf("read %s: %w", j.src, err)
	}
	f := rawFile(fd)
	defer f.Close()
	var size int64
	var chunks []Hash
	if j.size <= inMemoryLimit {
		if cap(w.buf) < int(j.size)+1 {
			w.buf = make([]byte, 0, max(int(j.size)+1, 64<<10))
		}
		// Room for one byte past the stated size, to notice a file that grew.
		n, err := f.readSized(w.buf[:j.size+1], int(j.size))
		if err != nil {
			return fmt.Errorf("read %s: %w", j.src, err)
		}
		if int64(n) != j.size {
			return fmt.Errorf("read %s: file changed while it was being stored", j.src)
		}
		size = int64(n)
		w.in.bytesRead.Add(size)
		chunks, err = w.chunkBytes(ctx, w.buf[:n])
		if err != nil {
			return fmt.Errorf("store %s: %w", j.src, err)
		}
	} else {
		size, chunks, err = w.chunkStream(ctx, f, j.src)
		if err != nil {
			return err
		}
		if size != j.size {
			return fmt.Errorf("read %s: file changed while it was being stored", j.src)
		}
	}
	j.entry.Size, j.entry.Chunks = size, chunks
	switch {
	case hasKey && Racy(key.ctime, w.in.began):
		w.in.unvouched.Store(true) // read again next time
	case hasKey:
		if err := w.in.recordStat(j.src, key, chunks); err != nil {
			return err
		}
	}
	w.done(size)
	return nil
}

func (w *worker) done(size int64) {
	if p := w.in.opt.Progress; p != nil {
		p.Done(1, size)
	}
}

func (w *worker) allPresent(ctx context.Context, chunks []Hash) bool {
	for _, h := range chunks {
		if !w.in.s.known(h) {
			return false
		}
	}
	return true
}

// chunkBytes stores data held in memory: one chunk directly, several after a look-up of the
// whole content in the file map.
func (w *worker) chunkBytes(ctx context.Context, data []byte) ([]Hash, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if len(data) <= MaxChunk {
		h := Sum(data)
		return []Hash{h}, w.put(ctx, h, data)
	}
	whole := Sum(data)
	if chunks, ok := w.in.s.idx.fileChunks(whole); ok && w.allPresent(ctx, chunks) {
		return chunks, nil
	}
	var chunks []Hash
	err := cutEach(data, func(h Hash, c []byte) error {
		chunks = append(chunks, h)
		return w.put(ctx, h, c)
	})
	if err != nil {
		return nil, err
	}
	w.recordFile(whole, chunks)
	return chunks, nil
}

// cutEach calls fn with each chunk of data held in memory (Cut's boundaries) and its hash.
func cutEach(data []byte, fn func(h Hash, c []byte) error) error {
	for rest := data; len(rest) > 0; {
		n := Cut(rest)
		if err := fn(Sum(rest[:n]), rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// chunkStream stores a large file: one pass to hash it whole, then, unless the file map
// knows it, a second to chunk it.
func (w *worker) chunkStream(ctx context.Context, f io.ReadSeeker, src string) (int64, []Hash, error) {
	hasher := blake3.New()
	if w.buf == nil || cap(w.buf) < 1<<20 {
		w.buf = make([]byte, 0, 1<<20)
	}
	n, err := io.CopyBuffer(hasherWriter{hasher}, f, w.buf[:cap(w.buf)])
	if err != nil {
		return 0, nil, fmt.Errorf("read %s: %w", src, err)
	}
	w.in.bytesRead.Add(n)
	var whole Hash
	hasher.Sum(whole[:0])
	if chunks, ok := w.in.s.idx.fileChunks(whole); ok && w.allPresent(ctx, chunks) {
		return n, chunks, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, nil, fmt.Errorf("read %s: %w", src, err)
	}
	if w.ch == nil {
		w.ch = NewChunker(f)
	} else {
		w.ch.Reset(f)
	}
	var chunks []Hash
	for {
		c, err := w.ch.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, nil, fmt.Errorf("read %s: %w", src, err)
		}
		h := Sum(c)
		if err := w.put(ctx, h, c); err != nil {
			return 0, nil, fmt.Errorf("store %s: %w", src, err)
		}
		chunks = append(chunks, h)
	}
	size := w.ch.BytesRead()
	w.in.bytesRead.Add(size)
	w.recordFile(whole, chunks)
	return size, chunks, nil
}

// hasherWriter hides blake3.Hasher's ReadFrom-less Write from io.CopyBuffer's fast paths.
type hasherWriter struct{ h *blake3.Hasher }

func (h hasherWriter) Write(p []byte) (int, error) { return h.h.Write(p) }

func (w *worker) recordFile(whole Hash, chunks []Hash) {
	w.in.mu.Lock()
	w.in.files = append(w.in.files, fileRecord{hash: whole, chunks: chunks})
	w.in.mu.Unlock()
}

// flushGroup stores the worker's waiting chunks.
func (w *worker) flushGroup(ctx context.Context) error {
	if err := w.flush(ctx, &w.small); err != nil {
		return err
	}
	return w.flush(ctx, &w.large)
}

func (w *worker) flush(ctx context.Context, g *group) error {
	if len(g.hashes) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	isNew, stored, err := w.in.s.putGroup(g.hashes, g.sizes, g.data, &w.bufs)
	if err != nil {
		return err
	}
	for i, n := range isNew {
		if n {
			w.in.newChunks.Add(1)
			w.in.newBytes.Add(g.sizes[i])
		}
	}
	w.in.newStored.Add(stored)
	for _, h := range g.hashes { // indexed now: known answers for them from here on
		w.in.inGroup.Delete(h)
	}
	g.hashes, g.sizes, g.data = g.hashes[:0], g.sizes[:0], g.data[:0]
	return nil
}

// put stores one chunk unless the store has it, compressing only new chunks; chunks
// under GroupMax wait to be compressed with others.
func (w *worker) put(ctx context.Context, h Hash, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.in.s.known(h) {
		return nil
	}
	if _, dup := w.in.inGroup.LoadOrStore(h, true); dup {
		return nil
	}
	if w.in.s.known(h) { // its group was stored between the two looks
		w.in.inGroup.Delete(h)
		return nil
	}
	g, target := &w.small, groupTarget
	if len(data) >= GroupMax {
		g, target = &w.large, largeGroupTarget
	}
	if len(g.data) == 0 {
		if cap(g.data) < groupHeadroom {
			g.data = make([]byte, 0, groupHeadroom+target+MaxChunk)
		}
		g.data = g.data[:groupHeadroom]
	}
	g.hashes = append(g.hashes, h)
	g.sizes = append(g.sizes, int64(len(data)))
	g.data = append(g.data, data...)
	if len(g.data)-groupHeadroom >= target {
		return w.flush(ctx, g)
	}
	return nil
}

// PlanInputs counts the files and content bytes Ingest will read from inputs (a stat walk,
// no reads, by the walk Ingest uses): the total a progress bar needs before the work
// starts. Content made later (Input.Later) is not counted; what cannot be read is not
// either (Ingest reports it).
func PlanInputs(inputs []Input) (files int, bytes int64) {
	var c planCount
	for _, input := range inputs {
		if input.Src == "" {
			if input.Later == nil {
				c.Planned(1, int64(len(input.Data)))
			}
			continue
		}
		fi, err := os.Lstat(input.Src)
		switch {
		case err != nil:
		case fi.IsDir():
			in := &ingest{opt: IngestOptions{Progress: &c}, workers: 2 * runtime.GOMAXPROCS(0)}
			in.walkTree(context.Background(), filepath.Clean(input.Src), "", nil)
		case fi.Mode().IsRegular():
			c.Planned(1, fi.Size())
		}
	}
	return c.files, c.bytes
}

// planCount adds up what a walk plans.
type planCount struct {
	mu    sync.Mutex
	files int
	bytes int64
}

func (c *planCount) Planned(n int, b int64) {
	c.mu.Lock()
	c.files += n
	c.bytes += b
	c.mu.Unlock()
}

func (c *planCount) Done(int, int64) {}

// collectAbove is the live heap past which the workers' end is followed by a collection:
// above what a tree the size of the ml corpus leaves (~40 MiB), where one costs ~10 ms of
// a build of seconds.
const collectAbove = 48 << 20

// collectIfLarge runs the collector once the workers are done, if the heap is large: their
// buffers and groups are garbage then, and without a collection the manifest's making is
// given room beside them (Go lets the heap grow to twice what was live at the last
// collection).
func collectIfLarge() {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindUint64 && sample[0].Value.Uint64() > collectAbove {
		runtime.GC()
	}
}
