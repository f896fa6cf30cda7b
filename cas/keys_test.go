package cas

import (
	"bytes"
	"testing"
)

// Every key kind of the index and of the stat cache has its own prefix, and keys of one
// kind never start like keys of another.
func TestKeyPrefixesAreDistinct(t *testing.T) {
	seen := map[byte]bool{}
	for _, p := range append(append([]byte{}, indexPrefixes...), cachePrefixes...) {
		if seen[p] {
			t.Fatalf("prefix %q is used twice", p)
		}
		seen[p] = true
	}
	var h Hash
	keys := map[byte][]byte{prefixChunk: chunkKey(h), prefixPack: packKey(1), prefixFile: fileKey(h), prefixStat: statKey("/a"), prefixBlob: blobKey(h)}
	for want, k := range keys {
		for p := range seen {
			if bytes.HasPrefix(k, []byte{p}) != (p == want) {
				t.Fatalf("key %q and prefix %q", k, p)
			}
		}
	}
	if lo, hi := prefixBounds(prefixChunk); !bytes.HasPrefix(chunkKey(h), lo) || bytes.Compare(chunkKey(Hash{0xff}), hi) >= 0 {
		t.Fatal("prefixBounds does not cover the chunk keys")
	}
}
