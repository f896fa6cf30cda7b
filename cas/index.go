package cas

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/swcli/swcli/internal/pebblewin"
)

// The index says where each chunk lives. Invariants:
//
//   - Its record is a pebble database (STORE/index, keys in keys.go). A chunk's entry is
//     written only in a synced batch after the pack that holds it is durable under its
//     final name (pack.go), so an indexed chunk is always readable.
//   - Pebble admits one process per database, so unless the store is held (LocalOptions
//     Hold or Exclusive) the database is open only for a window: one batch of reads or one
//     commit, under STORE/index.lock, a few milliseconds. Processes queue for windows, never
//     for each other's work.
//   - Reads go to a working copy in memory, loaded in one window on first use (restic keeps
//     its index in memory the same way). It may lack what other processes committed since:
//     presence checks then store a duplicate (garbage for gc, never a loss), and look-ups
//     of a chunk the copy lacks ask the database before answering "not found". A reader of
//     a whole tree (extract: Local.locateAll) asks the database for a window of its chunks
//     instead, unless the copy is loaded already: its memory follows the tree it reads,
//     not the store.
//   - Entries only disappear (gc) while the store is held exclusively, so a location in the
//     working copy stays valid for as long as this process holds the store at all.
type index struct {
	dir string // STORE
	win *pebblewin.Window

	mu     sync.RWMutex // guards the working copy
	loaded bool
	chunks chunkTable
	files  map[Hash][]Hash  // multi-chunk files by content hash
	packs  map[uint64]int64 // sealed packs: size
}

func newIndex(dir string, opt LocalOptions, held bool) *index {
	x := &index{dir: dir}
	x.win = pebblewin.New(pebblewin.Config{
		What: "store index", Dir: filepath.Join(dir, "index"), LockPath: filepath.Join(dir, "index.lock"),
		FreeDir: dir, Held: held, OnWait: opt.OnWait, LockTimeout: opt.LockTimeout, OnError: opt.OnError,
		SchemaKey: []byte{prefixVersion}, Schema: indexSchema,
		// Read by whole scans (the working copy) and sorted look-ups (locateAll), each
		// block once a window: 32 KiB blocks, as the ledger's, and a small block cache.
		// Pebble's 8 MiB, filled and freed by every window, left an extract of ten
		// times the ml corpus (a look-up every 8,192 files then) 12 MiB larger.
		BlockSize: 32 << 10,
		CacheSize: 1 << 20,
	})
	return x
}

// in runs fn with the database open (internal/pebblewin), for writing if write.
func (x *index) in(ctx context.Context, write bool, fn func(db *pebble.DB) error) error {
	return x.win.In(ctx, write, fn)
}

// close closes the database, held or not.
func (x *index) close() error { return x.win.Close() }

// load reads the database into the working copy, once.
func (x *index) load(ctx context.Context) error {
	x.mu.RLock()
	ok := x.loaded
	x.mu.RUnlock()
	if ok {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.loaded {
		return nil
	}
	var chunks chunkTable
	files := map[Hash][]Hash{}
	packs := map[uint64]int64{}
	err := x.in(ctx, false, func(db *pebble.DB) error {
		if err := scanChunks(db, func(h Hash, l loc) error { chunks.load(h, l); return nil }); err != nil {
			return err
		}
		if err := scanPrefix(db, prefixPack, func(k, v []byte) error {
			size, _ := binary.Uvarint(v)
			packs[binary.BigEndian.Uint64(k[1:])] = int64(size)
			return nil
		}); err != nil {
			return err
		}
		return scanPrefix(db, prefixFile, func(k, v []byte) error {
			if cs, ok := decodeHashes(v); ok {
				files[Hash(k[1:])] = cs
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load store index: %w", err)
	}
	x.chunks, x.files, x.packs, x.loaded = chunks, files, packs, true
	return nil
}

// isLoaded reports whether the working copy has been loaded.
func (x *index) isLoaded() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.loaded
}

// get returns where the working copy says h lives.
func (x *index) get(h Hash) (loc, bool) {
	x.mu.RLock()
	l, ok := x.chunks.get(h)
	x.mu.RUnlock()
	return l, ok
}

// fetch asks the database for the chunks of hs the working copy lacks (committed by
// another process since it was loaded), adds what it finds, and returns it.
func (x *index) fetch(ctx context.Context, hs []Hash) (map[Hash]loc, error) {
	found := make(map[Hash]loc, len(hs))
	if err := x.find(ctx, hs, found); err != nil {
		return nil, err
	}
	if len(found) > 0 {
		x.mu.Lock()
		for h, l := range found {
			x.chunks.set(h, l)
		}
		x.mu.Unlock()
	}
	return found, nil
}

// find asks the database where the chunks of hs are, in one window, and adds those it has
// to found; the working copy is neither loaded nor changed. hs is sorted in place (the
// window seeks forward only), and found is the caller's, sized by it: with a map of its
// own, grown from empty and then copied into locateAll's, find and locateAll made 78 MB
// of the 265 MB of garbage of an extract of ml-v1 ×10 (a heap profile).
func (x *index) find(ctx context.Context, hs []Hash, found map[Hash]loc) error {
	if len(hs) == 0 {
		return nil
	}
	slices.SortFunc(hs, Hash.Compare)
	return x.in(ctx, false, func(db *pebble.DB) error {
		lo, hi := prefixBounds(prefixChunk)
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		defer it.Close()
		k := make([]byte, 1+HashSize)
		k[0] = prefixChunk
		for i, h := range hs {
			if i%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			copy(k[1:], h[:])
			if it.SeekGE(k) && bytes.Equal(it.Key(), k) {
				l, ok := decodeLoc(it.Value())
				if !ok {
					return &CorruptError{Hash: h, Reason: "unreadable index entry"}
				}
				found[h] = l
			}
		}
		return it.Error()
	})
}

// commitPack records a durable pack and its chunks: one synced batch, then the working copy.
func (x *index) commitPack(ctx context.Context, num uint64, size int64, chunks map[Hash]loc) error {
	err := x.in(ctx, true, func(db *pebble.DB) error {
		b := db.NewBatch()
		defer b.Close()
		for h, l := range chunks {
			if err := b.Set(chunkKey(h), l.encode(), nil); err != nil {
				return err
			}
		}
		meta := binary.AppendUvarint(nil, uint64(size))
		meta = binary.AppendUvarint(meta, uint64(len(chunks)))
		if err := b.Set(packKey(num), meta, nil); err != nil {
			return err
		}
		return b.Commit(pebble.Sync)
	})
	if err != nil {
		return fmt.Errorf("index pack %016x: %w", num, err)
	}
	x.mu.Lock()
	if x.loaded { // recovery indexes packs before the working copy is loaded
		for h, l := range chunks {
			x.chunks.set(h, l)
		}
		x.packs[num] = size
	}
	x.mu.Unlock()
	return nil
}

// putFiles records multi-chunk files. They are a cache of what the manifests say, so the
// batch is not synced.
func (x *index) putFiles(ctx context.Context, files []fileRecord) error {
	err := x.in(ctx, true, func(db *pebble.DB) error {
		b := db.NewBatch()
		defer b.Close()
		for _, r := range files {
			if err := b.Set(fileKey(r.hash), encodeHashes(r.chunks), nil); err != nil {
				return err
			}
		}
		return b.Commit(pebble.NoSync)
	})
	if err != nil {
		return err
	}
	x.mu.Lock()
	if x.loaded {
		for _, r := range files {
			x.files[r.hash] = r.chunks
		}
	}
	x.mu.Unlock()
	return nil
}

// fileChunks returns the chunk list of a multi-chunk file by its content hash.
func (x *index) fileChunks(h Hash) ([]Hash, bool) {
	x.mu.RLock()
	cs, ok := x.files[h]
	x.mu.RUnlock()
	return cs, ok
}

// deleteChunks drops chunks from the index (gc; the store is held exclusively).
func (x *index) deleteChunks(ctx context.Context, hs []Hash) error {
	if len(hs) == 0 {
		return nil
	}
	if err := x.newEpoch(); err != nil { // before any entry goes (epoch.go)
		return err
	}
	err := x.in(ctx, true, func(db *pebble.DB) error {
		b := db.NewBatch()
		defer b.Close()
		for _, h := range hs {
			if err := b.Delete(chunkKey(h), nil); err != nil {
				return err
			}
		}
		return b.Commit(pebble.Sync)
	})
	if err != nil {
		return fmt.Errorf("delete chunks: %w", err)
	}
	x.mu.Lock()
	if x.loaded {
		for _, h := range hs {
			x.chunks.delete(h)
		}
	}
	x.mu.Unlock()
	return nil
}

// deletePacks drops packs, and any chunk entry still naming them, from the index.
func (x *index) deletePacks(ctx context.Context, nums []uint64) error {
	drop := map[uint64]bool{}
	for _, n := range nums {
		drop[n] = true
	}
	var gone []Hash
	err := x.in(ctx, true, func(db *pebble.DB) error {
		b := db.NewBatch()
		defer b.Close()
		err := scanChunks(db, func(h Hash, l loc) error {
			if drop[l.pack] {
				gone = append(gone, h)
				return b.Delete(chunkKey(h), nil)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(gone) > 0 {
			if err := x.newEpoch(); err != nil { // before any entry goes (epoch.go)
				return err
			}
		}
		for _, n := range nums {
			if err := b.Delete(packKey(n), nil); err != nil {
				return err
			}
		}
		return b.Commit(pebble.Sync)
	})
	if err != nil {
		return err
	}
	x.mu.Lock()
	if x.loaded {
		for _, h := range gone {
			x.chunks.delete(h)
		}
		for _, n := range nums {
			delete(x.packs, n)
		}
	}
	x.mu.Unlock()
	return nil
}

// snapshot returns the working copy's chunks (Walk, gc).
func (x *index) snapshot() map[Hash]loc {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.chunks.all()
}

// packSizes returns the sealed packs and their sizes.
func (x *index) packSizes() map[uint64]int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return maps.Clone(x.packs)
}

func scanPrefix(db pebble.Reader, p byte, fn func(k, v []byte) error) error {
	lo, hi := prefixBounds(p)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
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

func scanChunks(db pebble.Reader, fn func(Hash, loc) error) error {
	return scanPrefix(db, prefixChunk, func(k, v []byte) error {
		h := Hash(k[1:])
		l, ok := decodeLoc(v)
		if !ok {
			return &CorruptError{Hash: h, Reason: "unreadable index entry"}
		}
		return fn(h, l)
	})
}

func encodeHashes(hs []Hash) []byte {
	v := make([]byte, 0, len(hs)*HashSize)
	for _, h := range hs {
		v = append(v, h[:]...)
	}
	return v
}

func decodeHashes(v []byte) ([]Hash, bool) {
	if len(v) == 0 || len(v)%HashSize != 0 {
		return nil, false
	}
	out := make([]Hash, len(v)/HashSize)
	for i := range out {
		out[i] = Hash(v[i*HashSize:])
	}
	return out, true
}

// Recovery. It runs at open, and only while the store is held exclusively: then no other
// process is writing a pack, so an unfinished pack is a crashed writer's.

// recover deletes unfinished packs and epoch tokens, re-indexes complete packs the index
// does not know, and drops index entries of packs that are gone.
func (s *Local) recover(ctx context.Context) error {
	// A token being made is linked into place at once (epoch.go): one left beside it is a
	// crashed process's.
	if tmps, err := filepath.Glob(filepath.Join(s.dir, epochFile+".*.tmp")); err == nil {
		for _, p := range tmps {
			os.Remove(p)
		}
	}
	dir := filepath.Join(s.dir, "packs")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	onDisk := map[uint64]bool{}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
			continue
		}
		if n, ok := packNum(name); ok {
			onDisk[n] = true
		}
	}
	known := map[uint64]bool{}
	if err := s.idx.in(ctx, false, func(db *pebble.DB) error {
		return scanPrefix(db, prefixPack, func(k, _ []byte) error {
			known[binary.BigEndian.Uint64(k[1:])] = true
			return nil
		})
	}); err != nil {
		return err
	}
	// A pack whose file is gone while no chunk entry names it is what a gc that stopped
	// between deleting the file and its entry leaves: its entry goes. A pack that chunks
	// still name was lost: its entries stay for fsck to report (and quarantine), so that
	// the loss is seen, not forgotten.
	gone := map[uint64]bool{}
	for n := range known {
		if !onDisk[n] {
			gone[n] = true
		}
	}
	if len(gone) > 0 {
		if err := s.idx.in(ctx, false, func(db *pebble.DB) error {
			return scanChunks(db, func(_ Hash, l loc) error {
				delete(gone, l.pack)
				return nil
			})
		}); err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		var nums []uint64
		for n := range gone {
			nums = append(nums, n)
		}
		if err := s.idx.deletePacks(ctx, nums); err != nil {
			return err
		}
	}
	for n := range onDisk {
		if !known[n] {
			if err := s.reindex(ctx, n); err != nil {
				return fmt.Errorf("re-index pack %016x: %w", n, err)
			}
		}
	}
	return nil
}

// packNum parses a sealed pack's file name.
func packNum(name string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, ".pack")
	if !ok || len(num) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 16, 64)
	return n, err == nil
}

// reindex reads a complete pack the index does not know and indexes every entry that
// verifies; an entry that does not is left out, with the rest of the pack after it.
func (s *Local) reindex(ctx context.Context, n uint64) error {
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
	chunks := map[Hash]loc{}
	off := int64(len(packMagic))
	var hdr [entryHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break
		}
		h := Hash(hdr[:HashSize])
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
			g, err := VerifyGroup(h, Raw{Enc: EncGroup, Len: size, Data: data})
			if err != nil {
				break
			}
			for i, c := range g.hashes {
				chunks[c] = loc{pack: n, off: off + entryHeader, stored: stored, size: g.sizes[i], enc: EncGroup, inner: g.offs[i]}
			}
		} else {
			if _, err := Decode(h, Raw{Enc: enc, Len: size, Data: data}, nil); err != nil {
				break
			}
			chunks[h] = loc{pack: n, off: off + entryHeader, stored: stored, size: size, enc: enc}
		}
		off += entryHeader + stored
	}
	return s.idx.commitPack(ctx, n, off, chunks)
}
