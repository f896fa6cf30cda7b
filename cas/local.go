package cas

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/swcli/swcli/internal/flock"
)

// Pack files: STORE/packs/<16 hex digits>.pack, written as STORE/packs/<n>.tmp and renamed
// once complete and synced. A pack is a header then entries, each self-describing so that a
// pack the index does not know can be re-indexed by reading it:
//
//	header  "SWPACK1\n"
//	entry   hash[32] encoding[1] contentLen[4] storedLen[4] stored bytes
const (
	packMagic     = "SWPACK1\n"
	entryHeader   = HashSize + 1 + 4 + 4
	packTarget    = 32 << 20 // seal a pack once it holds this much
	packWriterBuf = 1 << 20
)

// Local is a chunk store on local disk: pack files plus a pebble index. It is safe for
// concurrent use by many goroutines of one process; the caller keeps other processes out
// (ops holds the instance lock).
type Local struct {
	dir       string
	db        *pebble.DB
	cacheDir  string
	cacheOnce sync.Once
	cache     *pebble.DB // stat cache, opened by the first ingest; nil if none
	lock      *flock.Lock

	mu      sync.Mutex // guards the writer fields, pending and sealing
	cur     *os.File
	curBuf  *bufio.Writer
	curNum  uint64
	curOff  int64
	nextNum uint64
	pending map[Hash]loc           // chunks in the open pack
	sealing map[uint64]*sealedPack // packs being synced and indexed, still readable
	sealed  *sync.Cond             // broadcast (with mu) when a pack leaves sealing
	sealErr error                  // the first failure of a seal; the store refuses writes after it
	gcMu    sync.Mutex             // serialises Delete

	filesMu sync.RWMutex
	files   map[uint64]*os.File // open sealed packs for reading

	bufs   sync.Pool
	groups groupCache
}

var _ Store = (*Local)(nil)

// LocalOptions tune OpenLocalWith.
type LocalOptions struct {
	// OnWait is called once if another process holds the store for more than a second.
	OnWait func(pid int)
	// CacheDir, if set, holds the stat cache that lets Ingest skip reading unchanged files.
	CacheDir string
}

// OpenLocal opens (creating if needed) the store in dir; see OpenLocalWith.
func OpenLocal(dir string) (*Local, error) {
	return OpenLocalWith(context.Background(), dir, LocalOptions{})
}

// OpenLocalWith opens (creating if needed) the store in dir, waiting while another process
// uses it, and cleans up what a crash left: unfinished packs are deleted, complete packs the
// index does not know are re-indexed, and index entries of packs that are gone are dropped.
func OpenLocalWith(ctx context.Context, dir string, opt LocalOptions) (*Local, error) {
	if err := os.MkdirAll(filepath.Join(dir, "packs"), 0o755); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	lock, err := flock.Acquire(ctx, filepath.Join(dir, "lock"), opt.OnWait)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := pebble.Open(filepath.Join(dir, "index"), &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             quietLogger{},
	})
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("open store index %s: %w", dir, err)
	}
	s := &Local{dir: dir, db: db, lock: lock, pending: map[Hash]loc{}, sealing: map[uint64]*sealedPack{}, files: map[uint64]*os.File{}}
	s.sealed = sync.NewCond(&s.mu)
	fail := func(err error) (*Local, error) {
		db.Close()
		lock.Release()
		return nil, err
	}
	if err := s.checkSchema(); err != nil {
		return fail(err)
	}
	if err := s.recover(); err != nil {
		return fail(fmt.Errorf("recover store %s: %w", dir, err))
	}
	s.cacheDir = opt.CacheDir
	return s, nil
}

// Dir is the store's directory.
func (s *Local) Dir() string { return s.dir }

func (s *Local) checkSchema() error {
	v, closer, err := s.db.Get([]byte{prefixVersion})
	if errors.Is(err, pebble.ErrNotFound) {
		return s.db.Set([]byte{prefixVersion}, binary.AppendUvarint(nil, indexSchema), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("read store schema: %w", err)
	}
	defer closer.Close()
	got, n := binary.Uvarint(v)
	if n <= 0 || got != indexSchema {
		return fmt.Errorf("store %s has index schema %d; this swcli reads schema %d", s.dir, got, indexSchema)
	}
	return nil
}

func (s *Local) packPath(n uint64) string {
	return filepath.Join(s.dir, "packs", fmt.Sprintf("%016x.pack", n))
}

// recover runs at open: see OpenLocal.
func (s *Local) recover() error {
	ents, err := os.ReadDir(filepath.Join(s.dir, "packs"))
	if err != nil {
		return err
	}
	onDisk := map[uint64]bool{}
	var maxNum uint64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if err := os.Remove(filepath.Join(s.dir, "packs", name)); err != nil {
				return err
			}
			continue
		}
		num, ok := strings.CutSuffix(name, ".pack")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(num, 16, 64)
		if err != nil {
			continue
		}
		onDisk[n] = true
		maxNum = max(maxNum, n)
	}
	known := map[uint64]bool{}
	lo, hi := prefixBounds(prefixPack)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		n := binary.BigEndian.Uint64(it.Key()[1:])
		known[n] = true
		maxNum = max(maxNum, n)
	}
	if err := it.Close(); err != nil {
		return err
	}
	s.nextNum = maxNum + 1
	var gone []uint64
	for n := range known {
		if !onDisk[n] {
			gone = append(gone, n)
		}
	}
	if len(gone) > 0 {
		if err := s.dropPacks(gone); err != nil {
			return err
		}
	}
	for n := range onDisk {
		if !known[n] {
			if err := s.reindex(n); err != nil {
				return fmt.Errorf("re-index pack %016x: %w", n, err)
			}
		}
	}
	return nil
}

// dropPacks removes the index entries of packs whose files are gone.
func (s *Local) dropPacks(nums []uint64) error {
	drop := map[uint64]bool{}
	for _, n := range nums {
		drop[n] = true
	}
	b := s.db.NewBatch()
	defer b.Close()
	err := s.scanChunks(func(h Hash, l loc) error {
		if drop[l.pack] {
			return b.Delete(chunkKey(h), nil)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range nums {
		if err := b.Delete(packKey(n), nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// reindex reads a complete pack the index does not know and indexes every entry that
// verifies; an entry that does not is left out, with the rest of the pack after it.
func (s *Local) reindex(n uint64) error {
	f, err := os.Open(s.packPath(n))
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, packWriterBuf)
	magic := make([]byte, len(packMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != packMagic {
		return os.Remove(s.packPath(n))
	}
	b := s.db.NewBatch()
	defer b.Close()
	off := int64(len(packMagic))
	count := 0
	var hdr [entryHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break
		}
		var h Hash
		copy(h[:], hdr[:HashSize])
		enc := Encoding(hdr[HashSize])
		size := int64(binary.BigEndian.Uint32(hdr[HashSize+1:]))
		stored := int64(binary.BigEndian.Uint32(hdr[HashSize+5:]))
		if stored > MaxBlob {
			break
		}
		data := make([]byte, stored)
		if _, err := io.ReadFull(r, data); err != nil {
			break
		}
		if enc == EncGroup {
			if err := s.reindexGroup(b, h, n, off+entryHeader, size, data); err != nil {
				break
			}
			off += entryHeader + stored
			count++
			continue
		}
		if _, err := Decode(h, Raw{Enc: enc, Len: size, Data: data}, nil); err != nil {
			break
		}
		l := loc{pack: n, off: off + entryHeader, stored: stored, size: size, enc: enc}
		if err := b.Set(chunkKey(h), l.encode(), nil); err != nil {
			return err
		}
		off += entryHeader + stored
		count++
	}
	meta := binary.AppendUvarint(nil, uint64(off))
	meta = binary.AppendUvarint(meta, uint64(count))
	if err := b.Set(packKey(n), meta, nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// reindexGroup indexes every chunk of a group entry named h, content length size, checked
// as a group that travelled is (VerifyGroup).
func (s *Local) reindexGroup(b *pebble.Batch, h Hash, pack uint64, off, size int64, stored []byte) error {
	g, err := VerifyGroup(h, Raw{Enc: EncGroup, Len: size, Data: stored})
	if err != nil {
		return err
	}
	for i, c := range g.hashes {
		l := loc{pack: pack, off: off, stored: int64(len(stored)), size: g.sizes[i], enc: EncGroup, inner: g.offs[i]}
		if err := b.Set(chunkKey(c), l.encode(), nil); err != nil {
			return err
		}
	}
	return nil
}

func (s *Local) scanChunks(fn func(Hash, loc) error) error {
	lo, hi := prefixBounds(prefixChunk)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		var h Hash
		copy(h[:], it.Key()[1:])
		l, ok := decodeLoc(it.Value())
		if !ok {
			it.Close()
			return &CorruptError{Hash: h, Reason: "unreadable index entry"}
		}
		if err := fn(h, l); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// lookup returns where h is stored: in the unsealed pack or a sealed one.
func (s *Local) lookup(h Hash) (loc, bool, error) {
	s.mu.Lock()
	l, ok := s.unindexedLocked(h)
	s.mu.Unlock()
	if ok {
		return l, true, nil
	}
	v, closer, err := s.db.Get(chunkKey(h))
	if errors.Is(err, pebble.ErrNotFound) {
		return loc{}, false, nil
	}
	if err != nil {
		return loc{}, false, fmt.Errorf("look up chunk %s: %w", h, err)
	}
	defer closer.Close()
	l, ok = decodeLoc(v)
	if !ok {
		return loc{}, false, &CorruptError{Hash: h, Reason: "unreadable index entry"}
	}
	return l, true, nil
}

// presence answers many Has questions with one index iterator (a Get each costs setting up
// iterators over every level): what an ingest worker asks for every chunk it meets. Chunks
// indexed after the iterator was made are missed, which only costs the caller a redundant
// store: writes check presence again under the store's lock.
type presence struct {
	s  *Local
	it *pebble.Iterator
}

func (p *presence) has(h Hash) (bool, error) {
	s := p.s
	s.mu.Lock()
	_, ok := s.unindexedLocked(h)
	s.mu.Unlock()
	if ok {
		return true, nil
	}
	if p.it == nil {
		lo, hi := prefixBounds(prefixChunk)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return false, err
		}
		p.it = it
	}
	k := chunkKey(h)
	if p.it.SeekGE(k) && bytes.Equal(p.it.Key(), k) {
		return true, nil
	}
	return false, p.it.Error()
}

func (p *presence) close() {
	if p.it != nil {
		p.it.Close()
		p.it = nil
	}
}

// Has reports whether the store holds h (sealed or not).
func (s *Local) Has(ctx context.Context, h Hash) (bool, error) {
	_, ok, err := s.lookup(h)
	return ok, err
}

// Put implements Putter.
func (s *Local) Put(ctx context.Context, h Hash, data []byte) error {
	if len(data) > MaxBlob {
		return fmt.Errorf("put %s: %w (%d bytes)", h, ErrTooLarge, len(data))
	}
	if ok, err := s.Has(ctx, h); err != nil || ok {
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
	if ok, err := s.Has(ctx, h); err != nil || ok {
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
	return s.append(h, r, false)
}

func (s *Local) getBuf() *[]byte {
	if bp, ok := s.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, MaxChunk+MaxChunk/8)
	return &b
}

// append writes one entry to the open pack and seals the pack once full. With force it
// writes even if the index has the chunk (repacking moves live chunks). It reports whether
// the chunk was new.
func (s *Local) append(h Hash, r Raw, force bool) (bool, error) {
	s.mu.Lock()
	isNew, full, err := s.appendLocked(h, r, force)
	var sp *sealedPack
	if err == nil && full {
		sp, err = s.detachLocked()
	}
	s.mu.Unlock()
	if sp != nil {
		err = s.seal(sp)
	}
	return isNew, err
}

// presentLocked reports whether h is stored or being stored (s.mu held).
func (s *Local) presentLocked(h Hash) bool {
	if _, ok := s.unindexedLocked(h); ok {
		return true
	}
	if _, closer, err := s.db.Get(chunkKey(h)); err == nil {
		closer.Close()
		return true
	}
	return false
}

// unindexedLocked finds h among the chunks written but not yet indexed: in the open pack
// or a pack being sealed (s.mu held).
func (s *Local) unindexedLocked(h Hash) (loc, bool) {
	if l, ok := s.pending[h]; ok {
		return l, true
	}
	for _, sp := range s.sealing {
		if l, ok := sp.chunks[h]; ok {
			return l, true
		}
	}
	return loc{}, false
}

// writeEntryLocked appends one entry to the open pack and returns the offset of its stored
// bytes (s.mu held).
func (s *Local) writeEntryLocked(h Hash, r Raw) (int64, error) {
	if s.sealErr != nil {
		return 0, s.sealErr
	}
	if s.cur == nil {
		if err := s.startPack(); err != nil {
			return 0, err
		}
	}
	var hdr [entryHeader]byte
	copy(hdr[:], h[:])
	hdr[HashSize] = byte(r.Enc)
	binary.BigEndian.PutUint32(hdr[HashSize+1:], uint32(r.Len))
	binary.BigEndian.PutUint32(hdr[HashSize+5:], uint32(len(r.Data)))
	if _, err := s.curBuf.Write(hdr[:]); err != nil {
		return 0, s.abortPack(err)
	}
	if _, err := s.curBuf.Write(r.Data); err != nil {
		return 0, s.abortPack(err)
	}
	off := s.curOff + entryHeader
	s.curOff += entryHeader + int64(len(r.Data))
	return off, nil
}

// appendLocked writes the entry with s.mu held and reports whether the pack is full.
func (s *Local) appendLocked(h Hash, r Raw, force bool) (isNew, full bool, err error) {
	if s.sealErr != nil {
		return false, false, s.sealErr
	}
	if _, ok := s.pending[h]; ok {
		return false, false, nil
	}
	if !force && s.presentLocked(h) {
		return false, false, nil
	}
	off, err := s.writeEntryLocked(h, r)
	if err != nil {
		return false, false, err
	}
	s.pending[h] = loc{pack: s.curNum, off: off, stored: int64(len(r.Data)), size: r.Len, enc: r.Enc}
	return true, s.curOff >= packTarget, nil
}

func (s *Local) tmpPath(n uint64) string {
	return filepath.Join(s.dir, "packs", fmt.Sprintf("%016x.tmp", n))
}

func (s *Local) startPack() error {
	n := s.nextNum
	f, err := os.OpenFile(s.tmpPath(n), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("start pack: %w", err)
	}
	s.nextNum++
	s.cur, s.curNum, s.curOff = f, n, int64(len(packMagic))
	if s.curBuf == nil {
		s.curBuf = bufio.NewWriterSize(f, packWriterBuf)
	} else {
		s.curBuf.Reset(f)
	}
	if _, err := s.curBuf.WriteString(packMagic); err != nil {
		return s.abortPack(err)
	}
	return nil
}

// abortPack drops the open pack after a write error; its chunks were never indexed.
func (s *Local) abortPack(cause error) error {
	if s.cur != nil {
		s.cur.Close()
		os.Remove(s.tmpPath(s.curNum))
	}
	s.cur = nil
	s.pending = map[Hash]loc{}
	return fmt.Errorf("write pack: %w", cause)
}

// sealedPack is a pack detached from the writer, on its way to being durable and indexed.
type sealedPack struct {
	num    uint64
	f      *os.File
	size   int64
	chunks map[Hash]loc
}

// detachLocked takes the open pack out of the writer (its buffered bytes flushed) so that
// it can be sealed without holding s.mu; reads still find its chunks in s.sealing.
func (s *Local) detachLocked() (*sealedPack, error) {
	if s.cur == nil {
		return nil, nil
	}
	if err := s.curBuf.Flush(); err != nil {
		return nil, s.abortPack(err)
	}
	sp := &sealedPack{num: s.curNum, f: s.cur, size: s.curOff, chunks: s.pending}
	s.sealing[sp.num] = sp
	s.cur = nil
	s.pending = map[Hash]loc{}
	return sp, nil
}

// seal makes a detached pack durable, then indexes its chunks: file synced, renamed,
// directory synced, then one synced pebble batch. Only then do its chunks count as stored.
func (s *Local) seal(sp *sealedPack) error {
	err := s.sealFile(sp)
	s.mu.Lock()
	delete(s.sealing, sp.num)
	s.sealed.Broadcast()
	if err != nil {
		sp.f.Close()
		os.Remove(s.tmpPath(sp.num))
		if s.sealErr == nil {
			s.sealErr = err
		}
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.filesMu.Lock()
	s.files[sp.num] = sp.f
	s.filesMu.Unlock()
	return nil
}

func (s *Local) sealFile(sp *sealedPack) error {
	if err := sp.f.Sync(); err != nil {
		return fmt.Errorf("sync pack %016x: %w", sp.num, err)
	}
	if err := os.Rename(s.tmpPath(sp.num), s.packPath(sp.num)); err != nil {
		return fmt.Errorf("seal pack %016x: %w", sp.num, err)
	}
	if err := syncDir(filepath.Join(s.dir, "packs")); err != nil {
		return fmt.Errorf("seal pack %016x: %w", sp.num, err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	for h, l := range sp.chunks {
		if err := b.Set(chunkKey(h), l.encode(), nil); err != nil {
			return err
		}
	}
	meta := binary.AppendUvarint(nil, uint64(sp.size))
	meta = binary.AppendUvarint(meta, uint64(len(sp.chunks)))
	if err := b.Set(packKey(sp.num), meta, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("index pack %016x: %w", sp.num, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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

// Close seals what was put and closes the store.
func (s *Local) Close() error {
	ferr := s.Flush(context.Background())
	s.filesMu.Lock()
	for n, f := range s.files {
		f.Close()
		delete(s.files, n)
	}
	s.filesMu.Unlock()
	if err := s.db.Close(); err != nil && ferr == nil {
		ferr = err
	}
	s.cacheOnce.Do(func() {}) // no cache opens after Close
	if s.cache != nil {
		s.cache.Close()
	}
	s.lock.Release()
	return ferr
}

// GetRaw implements RawStore. The bytes are returned as stored, unverified; Get and PutRaw
// verify.
func (s *Local) GetRaw(ctx context.Context, h Hash) (Raw, error) {
	l, ok, err := s.lookup(h)
	if err != nil {
		return Raw{}, err
	}
	if !ok {
		return Raw{}, &NotFoundError{Hash: h}
	}
	if l.enc == EncGroup {
		data, err := s.groupChunk(h, l)
		if err != nil {
			return Raw{}, err
		}
		r := Encode(data, nil)
		if r.Enc == EncRaw {
			r.Data = bytes.Clone(data)
		}
		return r, nil
	}
	data := make([]byte, l.stored)
	if err := s.readAt(h, l, data); err != nil {
		return Raw{}, err
	}
	return Raw{Enc: l.enc, Len: l.size, Data: data}, nil
}

func (s *Local) readAt(h Hash, l loc, data []byte) error {
	s.mu.Lock()
	if s.cur != nil && l.pack == s.curNum {
		// Still in the open pack: flush buffered bytes and read the temp file.
		err := s.curBuf.Flush()
		if err == nil {
			_, err = s.cur.ReadAt(data, l.off)
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("read chunk %s: %w", h, err)
		}
		return nil
	}
	if sp := s.sealing[l.pack]; sp != nil {
		s.mu.Unlock()
		if _, err := sp.f.ReadAt(data, l.off); err != nil {
			return fmt.Errorf("read chunk %s: %w", h, err)
		}
		return nil
	}
	s.mu.Unlock()
	f, err := s.packFile(l.pack)
	if err != nil {
		return fmt.Errorf("read chunk %s: %w", h, err)
	}
	if _, err := f.ReadAt(data, l.off); err != nil {
		if errors.Is(err, io.EOF) {
			return &CorruptError{Hash: h, Reason: fmt.Sprintf("pack %016x is truncated", l.pack)}
		}
		return fmt.Errorf("read chunk %s: %w", h, err)
	}
	return nil
}

func (s *Local) packFile(n uint64) (*os.File, error) {
	s.filesMu.RLock()
	f := s.files[n]
	s.filesMu.RUnlock()
	if f != nil {
		return f, nil
	}
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	if f := s.files[n]; f != nil {
		return f, nil
	}
	f, err := os.Open(s.packPath(n))
	if err != nil {
		return nil, err
	}
	s.files[n] = f
	return f, nil
}

// Get implements Getter.
func (s *Local) Get(ctx context.Context, h Hash) ([]byte, error) {
	return s.GetInto(ctx, h, nil)
}

// GetInto is Get that reuses dst's capacity for the content when it can.
func (s *Local) GetInto(ctx context.Context, h Hash, dst []byte) ([]byte, error) {
	l, ok, err := s.lookup(h)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &NotFoundError{Hash: h}
	}
	if l.enc == EncGroup {
		data, err := s.groupChunk(h, l)
		if err != nil {
			return nil, err
		}
		return append(dst[:0], data...), nil
	}
	if l.enc == EncRaw {
		if int64(cap(dst)) < l.stored {
			dst = make([]byte, l.stored)
		}
		dst = dst[:l.stored]
		if err := s.readAt(h, l, dst); err != nil {
			return nil, err
		}
		return Decode(h, Raw{Enc: l.enc, Len: l.size, Data: dst}, nil)
	}
	bp := s.getBuf()
	defer s.bufs.Put(bp)
	stored := *bp
	if int64(cap(stored)) < l.stored {
		stored = make([]byte, l.stored)
	}
	stored = stored[:l.stored]
	if err := s.readAt(h, l, stored); err != nil {
		return nil, err
	}
	return Decode(h, Raw{Enc: l.enc, Len: l.size, Data: stored}, dst)
}

// Missing implements Stater with one pass of a sorted iterator.
func (s *Local) Missing(ctx context.Context, hs []Hash) ([]Hash, error) {
	sorted := slices.Clone(hs)
	slices.SortFunc(sorted, Hash.Compare)
	sorted = slices.Compact(sorted)
	s.mu.Lock()
	pend := make(map[Hash]bool, len(s.pending))
	for h := range s.pending {
		pend[h] = true
	}
	for _, sp := range s.sealing {
		for h := range sp.chunks {
			pend[h] = true
		}
	}
	s.mu.Unlock()
	lo, hi := prefixBounds(prefixChunk)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var missing []Hash
	for i, h := range sorted {
		if i%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if pend[h] {
			continue
		}
		k := chunkKey(h)
		if !it.SeekGE(k) || !bytes.Equal(it.Key(), k) {
			missing = append(missing, h)
		}
	}
	return missing, it.Error()
}

// Walk implements Walker over sealed chunks.
func (s *Local) Walk(ctx context.Context, fn func(ChunkInfo) error) error {
	n := 0
	return s.scanChunks(func(h Hash, l loc) error {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		return fn(ChunkInfo{Hash: h, Size: l.size, Stored: l.stored})
	})
}

// repackBelow: a pack whose live bytes fall under this share of its size is rewritten.
const repackBelow = 0.5

// Delete implements Deleter. Packs left with no live chunk are removed; packs left mostly
// garbage have their live chunks rewritten to a new pack and are then removed.
func (s *Local) Delete(ctx context.Context, hs []Hash) error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if err := s.Flush(ctx); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, h := range hs {
		if err := b.Delete(chunkKey(h), nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("delete chunks: %w", err)
	}
	// Live bytes per pack, from the index.
	live := map[uint64]int64{}
	byPack := map[uint64][]Hash{}
	where := map[Hash]loc{}
	counted := map[[2]int64]bool{} // a group's bytes count once, however many chunks live in it
	if err := s.scanChunks(func(h Hash, l loc) error {
		if k := [2]int64{int64(l.pack), l.off}; !counted[k] {
			counted[k] = true
			live[l.pack] += entryHeader + l.stored
		}
		byPack[l.pack] = append(byPack[l.pack], h)
		where[h] = l
		return nil
	}); err != nil {
		return err
	}
	packs, err := s.packSizes()
	if err != nil {
		return err
	}
	var dead []uint64
	for n, size := range packs {
		switch {
		case live[n] == 0:
			dead = append(dead, n)
		case float64(live[n]) < repackBelow*float64(size):
			hs := byPack[n]
			slices.SortFunc(hs, func(a, b Hash) int { return cmpLoc(where[a], where[b]) })
			for _, h := range hs {
				r, err := s.getSealedRaw(h)
				if err != nil {
					return err
				}
				if _, err := s.append(h, r, true); err != nil {
					return err
				}
			}
			dead = append(dead, n)
		}
	}
	// Live chunks moved out of the dead packs are durable and re-indexed before the packs go.
	if err := s.Flush(ctx); err != nil {
		return err
	}
	for _, n := range dead {
		s.filesMu.Lock()
		if f := s.files[n]; f != nil {
			f.Close()
			delete(s.files, n)
		}
		s.filesMu.Unlock()
		if err := os.Remove(s.packPath(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	b2 := s.db.NewBatch()
	defer b2.Close()
	for _, n := range dead {
		if err := b2.Delete(packKey(n), nil); err != nil {
			return err
		}
	}
	return b2.Commit(pebble.Sync)
}

func (s *Local) packSizes() (map[uint64]int64, error) {
	out := map[uint64]int64{}
	lo, hi := prefixBounds(prefixPack)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	for it.First(); it.Valid(); it.Next() {
		size, _ := binary.Uvarint(it.Value())
		out[binary.BigEndian.Uint64(it.Key()[1:])] = int64(size)
	}
	return out, it.Close()
}

// getSealedRaw reads and verifies a chunk of a sealed pack.
func (s *Local) getSealedRaw(h Hash) (Raw, error) {
	r, err := s.GetRaw(context.Background(), h)
	if err != nil {
		return Raw{}, fmt.Errorf("repack %s: %w", h, err)
	}
	if _, err := Decode(h, r, nil); err != nil {
		return Raw{}, err
	}
	return r, nil
}

// cmpLoc orders chunks as they lie in the packs, so that reading in this order reads each
// group once.
func cmpLoc(a, b loc) int {
	switch {
	case a.pack != b.pack:
		return cmp.Compare(a.pack, b.pack)
	case a.off != b.off:
		return cmp.Compare(a.off, b.off)
	}
	return cmp.Compare(a.inner, b.inner)
}

// InPackOrder sorts hashes the way they lie in the packs (unknown ones last): reading
// many chunks in this order decompresses each group once.
func (s *Local) InPackOrder(hs []Hash) {
	locs := make(map[Hash]loc, len(hs))
	for _, h := range hs {
		if l, ok, _ := s.lookup(h); ok {
			locs[h] = l
		} else {
			locs[h] = loc{pack: ^uint64(0)}
		}
	}
	slices.SortStableFunc(hs, func(a, b Hash) int { return cmpLoc(locs[a], locs[b]) })
}

// quietLogger keeps pebble's informational chatter off the terminal; errors surface through
// returned errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{})  {}
func (quietLogger) Errorf(string, ...interface{}) {}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf(format, args...))
}
