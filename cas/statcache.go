package cas

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/swcli/swcli/internal/fsutil"
	"github.com/swcli/swcli/internal/pebblewin"
)

// The stat cache lets an ingest skip reading files that did not change. Invariants:
//   - It is a cache in its own pebble database (ROOT/cache/stat): losing it costs a re-read.
//     A process that finds it held by another (pebble's own lock) ingests without it
//     instead of waiting.
//   - A hit is trusted only if the file's size, times, inode, device and mode are unchanged
//     (git's rule) and every chunk it names is known to be stored: at once if the entry
//     carries the store's epoch (epoch.go), else by the index, and the entry is then written
//     again with the epoch.
//   - Entries are written after the chunks they name are durable, and never synced. The
//     epoch they carry was read before the ingest began.

// Files changed as an ingest begins (git's "racy clean" entries): a file written again in
// the same tick of its filesystem's clock as the write an ingest saw keeps its whole stat,
// size included if the size is the same. Linux before 6.13 stamps files from a clock that
// moves once a tick (1–10 ms); FAT stamps every 2 s, ext3 and HFS+ every second. So a file
// whose ctime is not before the tick in which an ingest began (FSClock, read first) is
// stored but recorded in neither the stat cache nor the tree cache, and the next ingest
// reads it again; a file stamped in whole seconds, within 2 s of it. A write after an
// ingest began moves the ctime of a file older than that. ctime, not mtime: every write
// sets it from the clock, and nothing sets it back.

// FSClock returns the time by the clock files are stamped with, in nanoseconds.
func FSClock() int64 { return fsNow() }

// fsNow is FSClock's clock; this package's tests move it (export_test.go).
var fsNow = fsClock

// Racy reports whether a file stamped ts (nanoseconds) may still change without its stamp
// changing, judged by now, a reading of FSClock taken before the file was looked at.
func Racy(ts, now int64) bool {
	if ts%1e9 == 0 { // a filesystem stamping in seconds (or a stamp on the second)
		return ts >= now-2e9
	}
	return ts >= now
}

// fileStat is what must be unchanged for a file's cached chunk list to be trusted: the
// fields git's index uses.
type fileStat struct {
	size, mtime, ctime int64
	ino, dev           uint64
	mode               uint32
}

func fileStatOf(fi fs.FileInfo) (fileStat, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStat{}, false
	}
	mtime, ctime := statTimes(st)
	return fileStat{
		size:  fi.Size(),
		mtime: mtime,
		ctime: ctime,
		ino:   st.Ino,
		dev:   uint64(st.Dev),
		mode:  uint32(st.Mode),
	}, true
}

// stat cache value: the store's epoch, then size, mtime, ctime, ino, dev, mode as uvarints
// (times zig-zagged), then the chunk hashes.
func (k fileStat) encode(e epoch, chunks []Hash) []byte {
	b := make([]byte, 0, len(e)+48+len(chunks)*HashSize)
	b = k.append(append(b, e[:]...))
	for _, h := range chunks {
		b = append(b, h[:]...)
	}
	return b
}

// append appends the stat's fields: size, mtime, ctime (zig-zagged), ino, dev, mode.
func (k fileStat) append(b []byte) []byte {
	b = binary.AppendVarint(b, k.size)
	b = binary.AppendVarint(b, k.mtime)
	b = binary.AppendVarint(b, k.ctime)
	b = binary.AppendUvarint(b, k.ino)
	b = binary.AppendUvarint(b, k.dev)
	return binary.AppendUvarint(b, uint64(k.mode))
}

func decodeStat(b []byte) (epoch, fileStat, []Hash, bool) {
	var e epoch
	if len(b) < len(e) {
		return e, fileStat{}, nil, false
	}
	copy(e[:], b)
	d := reader{b: b[len(e):]}
	k := fileStat{size: d.varint(), mtime: d.varint(), ctime: d.varint()}
	k.ino, k.dev, k.mode = d.uvarint(), d.uvarint(), uint32(d.uvarint())
	if d.err != nil || len(d.b)%HashSize != 0 {
		return e, k, nil, false
	}
	chunks := make([]Hash, len(d.b)/HashSize)
	for i := range chunks {
		copy(chunks[i][:], d.b[i*HashSize:])
	}
	return e, k, chunks, true
}

// readCache runs fn with the stat cache open, nil if there is none. The cache is opened on
// first use (only ingest needs it, not every command), for reading: an unchanged rebuild
// writes nothing, and pebble's open for writing costs ~9 ms more (a new log and manifest,
// synced). One held by another process (pebble's own lock) is no cache: ingest then reads
// every file instead of waiting.
func (s *Local) readCache(fn func(db *pebble.DB)) {
	s.cacheMu.RLock()
	if !s.cacheOpen {
		s.cacheMu.RUnlock()
		s.cacheMu.Lock()
		if !s.cacheOpen {
			s.cacheOpen = true
			if s.cacheDir != "" {
				s.cache, _ = pebble.Open(s.cacheDir, pebblewin.Options(s.onError, statBlockSize, true)) // none yet: nothing to read
			}
		}
		s.cacheMu.Unlock()
		s.cacheMu.RLock()
	}
	defer s.cacheMu.RUnlock()
	fn(s.cache)
}

// writeCache runs fn with the stat cache open for writing (made if missing), nil if it
// cannot be: a cache is not worth a full disk or a wait.
func (s *Local) writeCache(fn func(db *pebble.DB) error) error {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if !s.cacheRW {
		s.cacheOpen, s.cacheRW = true, true
		if s.cache != nil {
			s.cache.Close()
			s.cache = nil
		}
		s.cache = s.openCacheForWriting()
	}
	return fn(s.cache)
}

// statBlockSize: the cache is read by one scan per ingest; 32 KiB blocks (the ledger's
// size) make it an eighth of the block reads, each one a fresh C allocation and a checksum.
const statBlockSize = 32 << 10

func (s *Local) openCacheForWriting() *pebble.DB {
	if s.cacheDir == "" {
		return nil
	}
	if err := os.MkdirAll(s.cacheDir, 0o755); err != nil {
		return nil
	}
	if err := fsutil.CheckFree(s.cacheDir); err != nil {
		return nil // pebble fails hard when it cannot write
	}
	db, err := pebble.Open(s.cacheDir, pebblewin.Options(s.onError, statBlockSize, false))
	if err != nil {
		if s.onError != nil {
			s.onError(fmt.Sprintf("stat cache %s not used: %v", s.cacheDir, err))
		}
		return nil
	}
	// Entries from before epochs name no epoch: they go, once.
	lo, hi := prefixBounds(prefixStatV0)
	if it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi}); err == nil {
		old := it.First()
		if it.Close() == nil && old {
			db.DeleteRange(lo, hi, pebble.NoSync)
		}
	}
	return db
}

// statSnapshot holds the stat cache entries under the directories being stored, read in
// one pass: re-storing a tree looks up every file of it, and one scan costs a fraction of
// a Get per file. Entries are found by a 64-bit hash of their key, in a sorted table, with
// their values end to end in blocks: building a map of ~10k path strings, or growing one
// buffer by copying, cost more than the scan. Of two paths of one hash, either entry may
// answer a look-up; the entry's stat (size, times, inode, device, mode), which two files
// share only if they are one file, turns a wrong answer into a miss (a re-read).
type statSnapshot struct {
	seed     maphash.Seed
	blocks   [][]byte    // the entries' values, end to end
	ents     []snapEntry // sorted by hash
	complete bool        // every entry under the roots is in ents
}

type snapEntry struct {
	h           uint64
	blk, off, n uint32
}

const snapBlock = 256 << 10

// add keeps value v under hash h.
func (s *statSnapshot) add(h uint64, v []byte) {
	last := len(s.blocks) - 1
	if last < 0 || len(s.blocks[last])+len(v) > cap(s.blocks[last]) {
		s.blocks = append(s.blocks, make([]byte, 0, max(snapBlock, len(v))))
		last++
	}
	b := s.blocks[last]
	s.ents = append(s.ents, snapEntry{h: h, blk: uint32(last), off: uint32(len(b)), n: uint32(len(v))})
	s.blocks[last] = append(b, v...)
}

// get returns the value stored under key.
func (s *statSnapshot) get(key []byte) ([]byte, bool) {
	h := maphash.Bytes(s.seed, key)
	i, ok := slices.BinarySearchFunc(s.ents, h, func(e snapEntry, h uint64) int { return cmp.Compare(e.h, h) })
	if !ok {
		return nil, false
	}
	e := s.ents[i]
	return s.blocks[e.blk][e.off : e.off+e.n : e.off+e.n], true
}

// maxSnapshot bounds the entries a snapshot holds; past it, look-ups go to the cache.
const maxSnapshot = 1 << 18

// maxSnapshotBytes bounds the values it holds.
const maxSnapshotBytes = 256 << 20

// loadStats reads the stat cache entries of roots (files or directories) into memory.
func (s *Local) loadStats(roots []string) *statSnapshot {
	snap := &statSnapshot{seed: maphash.MakeSeed(), ents: make([]snapEntry, 0, 4096), complete: true}
	s.readCache(func(cache *pebble.DB) {
		if cache != nil {
			snap.load(cache, roots)
		}
	})
	slices.SortFunc(snap.ents, func(a, b snapEntry) int { return cmp.Compare(a.h, b.h) })
	return snap
}

func (snap *statSnapshot) load(cache *pebble.DB, roots []string) {
	size := 0
	for _, root := range roots {
		// The walk names the root as given, and what is under it cleaned (filepath.Join).
		under := strings.TrimSuffix(filepath.Clean(root), "/") + "/"
		bounds := [][2][]byte{
			{statKey(root), append(statKey(root), 0)},
			{statKey(under), statKey(strings.TrimSuffix(under, "/") + "0")}, // '0' follows '/'
		}
		for _, b := range bounds {
			it, err := cache.NewIter(&pebble.IterOptions{LowerBound: b[0], UpperBound: b[1]})
			if err != nil {
				snap.complete = false
				continue
			}
			for it.First(); it.Valid(); it.Next() {
				v := it.Value()
				if len(snap.ents) >= maxSnapshot || size+len(v) > maxSnapshotBytes {
					snap.complete = false
					break
				}
				snap.add(maphash.Bytes(snap.seed, it.Key()), v)
				size += len(v)
			}
			if it.Close() != nil {
				snap.complete = false
			}
		}
	}
}

// cachedChunks returns the chunk list recorded for path if its stat is unchanged, looked up
// in snap when it holds it, and the epoch the entry was written in.
func (s *Local) cachedChunks(snap *statSnapshot, path string, k fileStat) ([]Hash, epoch, bool) {
	var buf [512]byte
	v, ok := snap.get(append(append(buf[:0], prefixStat), path...))
	if !ok {
		if snap.complete {
			return nil, epoch{}, false
		}
		s.readCache(func(cache *pebble.DB) {
			if cache == nil {
				return
			}
			if b, closer, err := cache.Get(statKey(path)); err == nil {
				v, ok = bytes.Clone(b), true
				closer.Close()
			}
		})
		if !ok {
			return nil, epoch{}, false
		}
	}
	e, got, chunks, ok := decodeStat(v)
	if !ok || got != k {
		return nil, epoch{}, false
	}
	return chunks, e, true
}

// blobsKnown reports whether every one of hs was recorded as stored in epoch e.
func (s *Local) blobsKnown(hs []Hash, e epoch) bool {
	if !e.known() || len(hs) == 0 {
		return false
	}
	known := false
	s.readCache(func(cache *pebble.DB) {
		if cache == nil {
			return
		}
		for _, h := range hs {
			b, closer, err := cache.Get(blobKey(h))
			if err != nil {
				return
			}
			same := bytes.Equal(b, e[:])
			closer.Close()
			if !same {
				return
			}
		}
		known = true
	})
	return known
}

// recordStat keeps the stat cache entry of the file at path, stored as chunks when its stat
// was key, for recordCaches: the entry's key and value, encoded.
func (in *ingest) recordStat(path string, key fileStat, chunks []Hash) error {
	k, v := statKey(path), key.encode(in.epoch, chunks)
	return in.stats.add(uvarintLen(uint64(len(k)))+len(k)+len(v), func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(k)))
		return append(append(b, k...), v...)
	})
}

type fileRecord struct {
	hash   Hash
	chunks []Hash
}

// recordCaches writes stat cache, blob and file map entries. It runs after Flush, so that
// every chunk named is already durable; the entries themselves are only a cache and are
// not synced. e is the epoch read before the chunks were known to be stored.
func (s *Local) recordCaches(ctx context.Context, e epoch, stats *spill, blobs []Hash, files []fileRecord, treeKey []byte, tree *treeEntry) error {
	if !e.known() {
		blobs, tree = nil, nil // stat entries still save a read, checked against the index
	}
	if stats.count == 0 && len(blobs) == 0 && len(files) == 0 && tree == nil {
		return nil
	}
	if stats.count+len(blobs) > 0 || tree != nil {
		err := s.writeCache(func(cache *pebble.DB) error {
			if cache == nil {
				return nil
			}
			b := cache.NewBatch()
			defer b.Close()
			err := stats.each(func(rec []byte) error {
				n, k := binary.Uvarint(rec)
				if err := b.Set(rec[k:k+int(n)], rec[k+int(n):], nil); err != nil {
					return err
				}
				if b.Len() < spillLimit { // a tree's records in batches of bounded size
					return nil
				}
				if err := b.Commit(pebble.NoSync); err != nil {
					return err
				}
				b.Reset()
				return nil
			})
			if err != nil {
				return err
			}
			for _, h := range blobs {
				if err := b.Set(blobKey(h), e[:], nil); err != nil {
					return err
				}
			}
			if tree != nil {
				if err := b.Set(treeKey, tree.encode(), nil); err != nil {
					return err
				}
			}
			return b.Commit(pebble.NoSync)
		})
		if err != nil {
			return err
		}
	}
	if len(files) == 0 {
		return nil
	}
	return s.idx.putFiles(ctx, files)
}
