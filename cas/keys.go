package cas

import "encoding/binary"

// Keys of the chunk index, a pebble database at STORE/index. Every key starts with one
// prefix byte; integers are big-endian so that byte order is numeric order.
//
//	'V'                      -> schema version (uvarint); checked at open
//	'c' hash[32]             -> chunk location: pack uvarint, offset uvarint, stored length
//	                            uvarint, content length uvarint, encoding byte, and for
//	                            EncGroup the chunk's offset in the decompressed group uvarint
//	'p' pack[8]              -> sealed pack: size uvarint, chunk count uvarint
//	'f' filehash[32]         -> chunk list of a multi-chunk file: hash[32]...
//
// The stat cache is a separate pebble database (LocalOptions.CacheDir), like restic's cache
// directory: losing it costs only a re-read. Its keys:
//
//	't' path                 -> stat cache entry for an absolute path: the store's epoch
//	                            when it was written, the file's stat, its chunks (statcache.go)
//	'b' hash[32]             -> epoch: content stored from memory (a lock, a manifest) was
//	                            in the store as of that epoch (epoch.go)
//	's' path                 -> the stat cache entries before epochs; dropped when found
//	'r' inputs[32]           -> tree cache entry: the epoch, the tree an ingest of these
//	                            inputs made, and the sum of what its walk found (treecache.go)
//
// A chunk's 'c' key and its pack's 'p' key are written in one synced batch, after the pack
// file is durable under its final name.
const (
	prefixVersion = 'V'
	prefixChunk   = 'c'
	prefixPack    = 'p'
	prefixFile    = 'f'
	prefixStat    = 't'
	prefixBlob    = 'b'
	prefixStatV0  = 's'
	prefixTree    = 'r'
)

// indexPrefixes and cachePrefixes list the prefixes of each database; keys_test.go checks
// that no two collide.
var (
	indexPrefixes = []byte{prefixVersion, prefixChunk, prefixPack, prefixFile}
	cachePrefixes = []byte{prefixStat, prefixBlob, prefixStatV0, prefixTree}
)

// indexSchema is the index's format version; a store written by a newer swcli is refused.
const indexSchema = 1

func chunkKey(h Hash) []byte {
	k := make([]byte, 1+HashSize)
	k[0] = prefixChunk
	copy(k[1:], h[:])
	return k
}

func packKey(n uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixPack
	binary.BigEndian.PutUint64(k[1:], n)
	return k
}

func fileKey(h Hash) []byte {
	k := make([]byte, 1+HashSize)
	k[0] = prefixFile
	copy(k[1:], h[:])
	return k
}

func statKey(path string) []byte { return append([]byte{prefixStat}, path...) }

func blobKey(h Hash) []byte {
	k := make([]byte, 1+HashSize)
	k[0] = prefixBlob
	copy(k[1:], h[:])
	return k
}

// prefixBounds returns the iterator bounds covering every key with prefix p.
func prefixBounds(p byte) (lo, hi []byte) { return []byte{p}, []byte{p + 1} }

// loc is where a chunk lives.
type loc struct {
	pack   uint64
	off    int64 // of the stored bytes in the pack (a group's, for EncGroup)
	stored int64
	size   int64 // content bytes of the chunk
	enc    Encoding
	inner  int64 // EncGroup: the chunk's offset in the decompressed group
}

func (l loc) encode() []byte {
	b := make([]byte, 0, 24)
	b = binary.AppendUvarint(b, l.pack)
	b = binary.AppendUvarint(b, uint64(l.off))
	b = binary.AppendUvarint(b, uint64(l.stored))
	b = binary.AppendUvarint(b, uint64(l.size))
	b = append(b, byte(l.enc))
	if l.enc == EncGroup {
		b = binary.AppendUvarint(b, uint64(l.inner))
	}
	return b
}

func decodeLoc(b []byte) (loc, bool) {
	var l loc
	var vals [4]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return l, false
		}
		vals[i], b = v, b[n:]
	}
	if len(b) < 1 {
		return l, false
	}
	l = loc{pack: vals[0], off: int64(vals[1]), stored: int64(vals[2]), size: int64(vals[3]), enc: Encoding(b[0])}
	b = b[1:]
	if l.enc == EncGroup {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return l, false
		}
		l.inner, b = int64(v), b[n:]
	}
	return l, len(b) == 0
}
