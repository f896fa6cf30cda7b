package cas

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Materialize: writing a manifest's tree into a directory. Invariants:
//   - The target is missing or empty; entries are created, never opened for writing when
//     they exist (O_EXCL|O_NOFOLLOW), and a manifest's every parent is a directory entry
//     (manifest.go), so nothing is written through a link.
//   - Every chunk is verified against its hash as it is read; the manifest is verified
//     and every entry checked (OpenManifest, StreamOf) before anything is made.
//   - A directory is made before anything in it: a sorted manifest gives it first, and a
//     file goes to the writers only after the walk has passed it.

// ErrNotEmpty reports a materialisation target that already holds something.
var ErrNotEmpty = errors.New("target directory is not empty")

// MaterializeOptions tune Materialize.
type MaterializeOptions struct {
	Workers  int // default 2 × GOMAXPROCS
	Progress Progress
}

// bufGetter is the fast path of a Getter that can reuse a buffer (Local has it).
type bufGetter interface {
	GetInto(ctx context.Context, h Hash, dst []byte) ([]byte, error)
}

// Materialize writes the tree m into dir, which must be missing or empty: directories,
// files (every chunk verified as it is read), symlinks as symlinks (dangling ones too), and
// permission bits (rwx only: setuid, setgid and sticky bits from a manifest are dropped).
// The manifest is validated first, so no entry with an absolute path, a ".." component or
// a parent that is not a directory of the tree is ever written; files are created with
// O_EXCL|O_NOFOLLOW besides.
func Materialize(ctx context.Context, g Getter, m *Manifest, dir string, opt MaterializeOptions) error {
	s, err := StreamOf(m)
	if err != nil {
		return err
	}
	return MaterializeStream(ctx, g, s, dir, opt)
}

// MaterializeStream is Materialize of a stored tree read as a stream (OpenManifest), so
// that what it holds does not grow with the tree: a window of files and the batches in
// flight, the paths of directories and links (to check each entry's parent), and those
// of directories whose mode is set last; the manifest too, as stored, unless it is read
// again from a local store's pack.
func MaterializeStream(ctx context.Context, g Getter, s *ManifestStream, dir string, opt MaterializeOptions) error {
	if err := prepareTarget(dir); err != nil {
		return err
	}
	if opt.Progress != nil {
		t := s.Totals()
		opt.Progress.Planned(t.Files, t.Size)
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	jobs := make(chan job, 64)
	plan := &readPlan{}
	umask := readUmask()
	eg, ectx := errgroup.WithContext(ctx)
	for range workers {
		eg.Go(func() error {
			var buf []byte
			for j := range jobs {
				for _, e := range j.files {
					var err error
					if buf, err = writeFile(ectx, g, j.locs, j.ahead, plan, umask, dir, e, buf); err != nil {
						return err
					}
					if opt.Progress != nil {
						opt.Progress.Done(1, e.Size)
					}
				}
			}
			return nil
		})
	}
	// Directories and links as the walk meets them (a directory before anything in it),
	// directories writable by us until the end: one is made with its mode when the umask
	// leaves it whole and it lets us in (0755 under 022), else 0700 and remembered, its
	// mode set last (ml-v1 ×10's 11,303 directories were all remembered, 1.6 MB, and each
	// chmod'ed). Files by the writers, in batches cut from windows sorted by where their
	// chunks are.
	var dirs []dirMode
	eg.Go(func() error {
		defer close(jobs)
		var locs map[Hash]loc // the window's chunks, if g finds them by the window
		var ahead *prefetch
		send := func(batch []*Entry) error {
			if len(batch) == 0 {
				return nil
			}
			select {
			case jobs <- job{batch, locs, ahead}:
				return nil
			case <-ectx.Done():
				return ectx.Err()
			}
		}
		var b batcher
		var win window
		flush := func() error {
			var err error
			if locs, err = locateWindow(ectx, g, win.files, win.chunks); err != nil {
				return err
			}
			for _, e := range win.files {
				for _, h := range e.Chunks {
					if l, ok := locs[h]; ok {
						plan.add(l)
					}
				}
			}
			files := win.sorted(locs)
			ahead = nil
			if wr, ok := g.(windowReader); ok && locs != nil {
				ahead = newPrefetch(files, locs)
				eg.Go(func() error { ahead.run(ectx, wr); return nil })
			}
			for _, e := range files {
				if err := send(b.add(e)); err != nil {
					return err
				}
			}
			return send(b.flush())
		}
		err := s.Each(func(e *Entry) error {
			switch e.Kind {
			case KindDir:
				if err := ectx.Err(); err != nil {
					return err
				}
				perm := e.Mode & 0o777
				made := perm
				if perm&0o700 != 0o700 || !umaskKeeps(umask, perm) {
					made = 0o700 // its mode set at the end
				}
				if err := os.Mkdir(filepath.Join(dir, filepath.FromSlash(e.Path)), os.FileMode(made)); err != nil {
					return fmt.Errorf("materialise %s: %w", e.Path, err)
				}
				if made != perm {
					dirs = append(dirs, dirMode{e.Path, perm})
				}
			case KindLink:
				if err := os.Symlink(e.Target, filepath.Join(dir, filepath.FromSlash(e.Path))); err != nil {
					return fmt.Errorf("materialise %s: %w", e.Path, err)
				}
			case KindFile:
				if win.add(e) {
					return flush()
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return flush()
	})
	if err := eg.Wait(); err != nil {
		return err
	}
	// Directory modes last, deepest first, so read-only directories could be filled.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := syscall.Chmod(filepath.Join(dir, filepath.FromSlash(d.path)), d.perm); err != nil {
			return fmt.Errorf("materialise %s: chmod: %w", d.path, err)
		}
	}
	return nil
}

// dirMode is a directory whose mode is set after everything in it is written.
type dirMode struct {
	path string
	perm uint32
}

// Writers take a directory's files together (a run of its files in the order they are
// written, in batches of at most batchFiles files or batchBytes bytes, so that a large
// directory is still shared): writers creating files in one directory at once contend
// for it in the kernel (two to four writers spent 1.5 × a single writer's system time on
// ext4), and files of different directories do not.
const (
	batchFiles = 128
	batchBytes = 32 << 20
)

// Files are written in windows of the tree's order (at most windowFiles files or
// windowBytes bytes), each sorted by where its first chunk is stored: chunks are
// decompressed a group at a time, groups hold the files ingest read one after another
// (its walk's order, not the tree's), and a window's files in the tree's order asked for
// each group 2.6 times over (ml-v1: 900 MB decompressed for 343 MB of files, with the
// group cache's 32 MiB then). The batches are then cut from the sorted window. A group holding
// files of two windows is decompressed for each: ml-v1 ×10 in windows of 8,192 files
// decompressed its 2,125 groups 2,386 times, in windows of 16,384 2,265 times (ml-v1's
// 219 groups: 231 and 219 times). A window's entries and their chunks' locations are
// ~500 bytes a file (×10's extract: 6–8 MB live for them, by heap profiles mid-run).
// A window is also cut at windowChunks chunks: its look-up holds a location for each
// (~100 bytes), and a manifest may name up to MaxBlob/32 of them.
const (
	windowFiles  = 16384
	windowBytes  = 512 << 20
	windowChunks = 1 << 17
)

// job is a batch of files for a writer, with where the chunks of their window are.
type job struct {
	files []*Entry
	locs  map[Hash]loc
	ahead *prefetch // nil: none
}

// prefetch decompresses a window's groups a few ahead of its writers, in the order the
// window's files read them: without it the writers, reading neighbouring files of one
// group at once, waited for whichever of them decompressed it, then all moved to the next
// group together (0.68-0.89 s of waiting summed over four writers in a 0.62-0.77 s
// extract of ml-v1).
type prefetch struct {
	groups  []chunkAt // a chunk of each group, in reading order
	index   map[[2]uint64]int
	reached atomic.Int64 // the furthest group a writer has asked for
	wake    chan struct{}
}

// chunkAt is a chunk and where it is stored.
type chunkAt struct {
	h Hash
	l loc
}

// prefetchAhead: groups decompressed ahead of the furthest a writer reads.
const prefetchAhead = 2

func newPrefetch(files []*Entry, locs map[Hash]loc) *prefetch {
	p := &prefetch{index: map[[2]uint64]int{}, wake: make(chan struct{}, 1)}
	p.reached.Store(-1)
	for _, e := range files {
		for _, h := range e.Chunks {
			l, ok := locs[h]
			if !ok || l.enc != EncGroup {
				continue
			}
			if _, seen := p.index[groupKey(l)]; !seen {
				p.index[groupKey(l)] = len(p.groups)
				p.groups = append(p.groups, chunkAt{h, l})
			}
		}
	}
	return p
}

// reach records that a writer reads the group of l.
func (p *prefetch) reach(l loc) {
	i, ok := p.index[groupKey(l)]
	if !ok {
		return
	}
	for {
		r := p.reached.Load()
		if int64(i) <= r || p.reached.CompareAndSwap(r, int64(i)) {
			break
		}
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run decompresses the groups ahead of the writers until the last or ctx's end.
func (p *prefetch) run(ctx context.Context, w interface{ warm(Hash, loc) }) {
	for j := range p.groups {
		for int64(j) > p.reached.Load()+prefetchAhead {
			select {
			case <-p.wake:
			case <-ctx.Done():
				return
			}
		}
		if int64(j) > p.reached.Load() { // not yet being read
			w.warm(p.groups[j].h, p.groups[j].l)
		}
	}
}

// windowReader is the fast path of a Getter that finds a window's chunks at once and
// reads a chunk where it was found (Local).
type windowReader interface {
	locateAll(ctx context.Context, hs []Hash) (map[Hash]loc, error)
	getAt(h Hash, l loc, dst []byte) ([]byte, error)
	rawAt(h Hash, l loc) (Raw, error)
	inSealedPack(l loc) bool
	holdStored(l loc) (*io.SectionReader, func(), error)
	release(l loc)
	warm(h Hash, l loc)
}

// locateWindow finds the chunks of files, if g can (else nil: the window keeps the tree's
// order and every chunk is looked up as it is read).
func locateWindow(ctx context.Context, g Getter, files []*Entry, chunks int) (map[Hash]loc, error) {
	wr, ok := g.(windowReader)
	if !ok || len(files) == 0 {
		return nil, nil
	}
	hs := make([]Hash, 0, chunks)
	for _, e := range files {
		hs = append(hs, e.Chunks...)
	}
	return wr.locateAll(ctx, hs)
}

// place orders stored chunks: by pack, then offset in it, then offset in its group.
type place struct {
	pack       uint64
	off, inner int64
}

func (a place) compare(b place) int {
	if c := cmp.Compare(a.pack, b.pack); c != 0 {
		return c
	}
	if c := cmp.Compare(a.off, b.off); c != 0 {
		return c
	}
	return cmp.Compare(a.inner, b.inner)
}

// placeOf returns where e's first chunk is stored, by locs (else the zero place).
func placeOf(locs map[Hash]loc, e *Entry) place {
	if len(e.Chunks) > 0 {
		if l, ok := locs[e.Chunks[0]]; ok {
			return place{pack: l.pack, off: l.off, inner: l.inner}
		}
	}
	return place{}
}

// window gathers files to be sorted by place.
type window struct {
	files  []*Entry
	bytes  int64
	chunks int
}

// add adds e, and reports whether the window is full.
func (w *window) add(e *Entry) bool {
	w.files = append(w.files, e)
	w.bytes += e.Size
	w.chunks += len(e.Chunks)
	return len(w.files) >= windowFiles || w.bytes >= windowBytes || w.chunks >= windowChunks
}

type placedFile struct {
	e  *Entry
	at place
}

// sorted empties the window and returns its files by the place of their first chunk in
// locs (the tree's order among files of one place, and for all of them when locs is nil).
func (w *window) sorted(locs map[Hash]loc) []*Entry {
	files := make([]placedFile, len(w.files))
	for i, e := range w.files {
		files[i] = placedFile{e, placeOf(locs, e)}
	}
	slices.SortStableFunc(files, func(a, b placedFile) int { return a.at.compare(b.at) })
	out := make([]*Entry, len(files))
	for i, f := range files {
		out[i] = f.e
	}
	clear(w.files)
	w.files, w.bytes, w.chunks = w.files[:0], 0, 0
	return out
}

// batcher cuts files, given in the order they are to be written, into batches.
type batcher struct {
	cur   []*Entry
	dir   string
	bytes int64
}

// add adds the file e, and returns the batch it completes, if any.
func (b *batcher) add(e *Entry) []*Entry {
	d, _, _ := cutLast(e.Path)
	var done []*Entry
	if len(b.cur) > 0 && (d != b.dir || len(b.cur) >= batchFiles || b.bytes+e.Size > batchBytes) {
		done = b.flush()
	}
	b.cur = append(b.cur, e)
	b.dir = d
	b.bytes += e.Size
	return done
}

// flush returns the batch being filled.
func (b *batcher) flush() []*Entry {
	done := b.cur
	b.cur, b.bytes = nil, 0
	return done
}

func prepareTarget(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("materialise into %s: %w", dir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("materialise into %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("materialise into %s: %w", dir, ErrNotEmpty)
	}
	return nil
}

// writeFile writes the file e, its chunks read where locs says, if it does (each read
// counted done in plan).
func writeFile(ctx context.Context, g Getter, locs map[Hash]loc, ahead *prefetch, plan *readPlan, umask uint32, dir string, e *Entry, buf []byte) ([]byte, error) {
	p := filepath.Join(dir, filepath.FromSlash(e.Path))
	perm := e.Mode & 0o777 // never setuid, setgid or sticky
	created := uint32(0o600)
	if umaskKeeps(umask, perm) {
		created = perm // no fchmod after
	}
	fd, err := createExcl(p, created) // a descriptor, not an os.File (rawfile.go)
	if err != nil {
		return buf, fmt.Errorf("materialise %s: %w", e.Path, err)
	}
	closed := false
	defer func() {
		if !closed {
			unix.Close(fd)
		}
	}()
	bg, fast := g.(bufGetter)
	wr, _ := g.(windowReader)
	var written int64
	for _, h := range e.Chunks {
		var data []byte
		if l, ok := locs[h]; ok && wr != nil {
			if ahead != nil {
				ahead.reach(l)
			}
			data, err = wr.getAt(h, l, buf)
			if err == nil && cap(data) > cap(buf) {
				buf = data[:0]
			}
			if err == nil && plan.done(l) {
				wr.release(l)
			}
		} else if fast {
			data, err = bg.GetInto(ctx, h, buf)
			if err == nil && cap(data) > cap(buf) {
				buf = data[:0]
			}
		} else {
			data, err = g.Get(ctx, h)
		}
		if err != nil {
			return buf, fmt.Errorf("materialise %s: %w", e.Path, err)
		}
		// The size is enforced as the chunks are written: a manifest that says 32 bytes
		// gets at most 32 bytes on disk, whatever its chunks hold.
		if written+int64(len(data)) > e.Size {
			return buf, fmt.Errorf("materialise %s: %w: its chunks hold more than the %d bytes the manifest says", e.Path, ErrCorrupt, e.Size)
		}
		if err := writeAll(fd, data); err != nil {
			return buf, fmt.Errorf("materialise %s: write %s: %w", e.Path, p, err)
		}
		written += int64(len(data))
	}
	if written != e.Size {
		return buf, fmt.Errorf("materialise %s: %w: wrote %d bytes, manifest says %d", e.Path, ErrCorrupt, written, e.Size)
	}
	if created != perm {
		if err := ignoringEINTR(func() error { return unix.Fchmod(fd, perm) }); err != nil {
			return buf, fmt.Errorf("materialise %s: chmod: %w", e.Path, err)
		}
	}
	closed = true
	if err := unix.Close(fd); err != nil {
		return buf, fmt.Errorf("materialise %s: close %s: %w", e.Path, p, err)
	}
	return buf, nil
}

// createExcl creates the file p for writing, with mode perm less the umask: never one
// that exists, never through a link.
func createExcl(p string, perm uint32) (int, error) {
	return openRaw(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, perm)
}

// umaskKeeps reports whether a file or directory created with perm gets it whole.
func umaskKeeps(umask, perm uint32) bool { return perm&^umask == perm }

// readUmask is the process's umask as /proc/self/status gives it (Linux 4.7 on); 0o777
// where it cannot be read (every file is then created 0600 and chmod'ed). Reading it by
// setting it would race with other goroutines creating files; it is read once a
// materialisation, as a server sets its own when it starts.
func readUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o777
}

// LoadManifest reads and decodes the manifest named h.
func LoadManifest(ctx context.Context, g Getter, h Hash) (*Manifest, error) {
	b, err := g.Get(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", h, err)
	}
	m, err := DecodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", h, err)
	}
	return m, nil
}
