package cas

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
//     (git's rule) and every chunk it names is known to be stored.
//   - Entries are written after the chunks they name are durable, and never synced.

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

// stat cache value: size, mtime, ctime, ino, dev, mode as uvarints (times zig-zagged), then
// the chunk hashes.
func (k fileStat) encode(chunks []Hash) []byte {
	b := make([]byte, 0, 48+len(chunks)*HashSize)
	b = binary.AppendVarint(b, k.size)
	b = binary.AppendVarint(b, k.mtime)
	b = binary.AppendVarint(b, k.ctime)
	b = binary.AppendUvarint(b, k.ino)
	b = binary.AppendUvarint(b, k.dev)
	b = binary.AppendUvarint(b, uint64(k.mode))
	for _, h := range chunks {
		b = append(b, h[:]...)
	}
	return b
}

func decodeStat(b []byte) (fileStat, []Hash, bool) {
	d := reader{b: b}
	k := fileStat{size: d.varint(), mtime: d.varint(), ctime: d.varint()}
	k.ino, k.dev, k.mode = d.uvarint(), d.uvarint(), uint32(d.uvarint())
	if d.err != nil || len(d.b)%HashSize != 0 {
		return k, nil, false
	}
	chunks := make([]Hash, len(d.b)/HashSize)
	for i := range chunks {
		copy(chunks[i][:], d.b[i*HashSize:])
	}
	return k, chunks, true
}

// statCache opens the stat cache on first use: only ingest needs it, not every command.
// A cache that cannot be opened is no cache: ingest then reads every file.
func (s *Local) statCache() *pebble.DB {
	s.cacheOnce.Do(func() {
		if s.cacheDir == "" {
			return
		}
		if err := os.MkdirAll(s.cacheDir, 0o755); err != nil {
			return
		}
		if err := fsutil.CheckFree(s.cacheDir); err != nil {
			return // a cache is not worth a full disk (pebble fails hard when it cannot write)
		}
		db, err := pebble.Open(s.cacheDir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: pebblewin.Logger(s.onError)})
		if err != nil {
			if s.onError != nil {
				s.onError(fmt.Sprintf("stat cache %s not used: %v", s.cacheDir, err))
			}
			return
		}
		s.cache = db
	})
	return s.cache
}

// statSnapshot holds the stat cache entries under the directories being stored, read in
// one pass: re-storing a tree looks up every file of it, and one scan costs a fraction of
// a Get per file.
type statSnapshot struct {
	m        map[string][]byte // statKey -> value
	complete bool              // every entry under the roots is in m
}

// maxSnapshot bounds the entries a snapshot holds; past it, look-ups go to the cache.
const maxSnapshot = 1 << 18

// loadStats reads the stat cache entries of roots (files or directories) into memory.
func (s *Local) loadStats(roots []string) *statSnapshot {
	snap := &statSnapshot{m: map[string][]byte{}, complete: true}
	cache := s.statCache()
	if cache == nil {
		return snap
	}
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
				if len(snap.m) >= maxSnapshot {
					snap.complete = false
					break
				}
				snap.m[string(it.Key())] = bytes.Clone(it.Value())
			}
			if it.Close() != nil {
				snap.complete = false
			}
		}
	}
	return snap
}

// cachedChunks returns the chunk list recorded for path if its stat is unchanged, looked up
// in snap when it holds it.
func (s *Local) cachedChunks(snap *statSnapshot, path string, k fileStat) ([]Hash, bool) {
	var buf [512]byte
	v, ok := snap.m[string(append(append(buf[:0], prefixStat), path...))]
	if !ok {
		if snap.complete {
			return nil, false
		}
		cache := s.statCache()
		if cache == nil {
			return nil, false
		}
		b, closer, err := cache.Get(statKey(path))
		if err != nil {
			return nil, false
		}
		v = bytes.Clone(b)
		closer.Close()
	}
	got, chunks, ok := decodeStat(v)
	if !ok || got != k {
		return nil, false
	}
	return chunks, true
}

type statRecord struct {
	path   string
	key    fileStat
	chunks []Hash
}

type fileRecord struct {
	hash   Hash
	chunks []Hash
}

// recordCaches writes stat cache and file map entries. It runs after Flush, so that every
// chunk named is already durable; the entries themselves are only a cache and are not synced.
func (s *Local) recordCaches(ctx context.Context, stats []statRecord, files []fileRecord) error {
	if len(stats) == 0 && len(files) == 0 {
		return nil
	}
	if cache := s.statCache(); cache != nil && len(stats) > 0 {
		b := cache.NewBatch()
		defer b.Close()
		for _, r := range stats {
			if err := b.Set(statKey(r.path), r.key.encode(r.chunks), nil); err != nil {
				return err
			}
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
	}
	if len(files) == 0 {
		return nil
	}
	return s.idx.putFiles(ctx, files)
}
