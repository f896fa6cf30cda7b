// Package cas is swcli's content-addressed store: blake3 hashes, the content-defined
// chunker, chunk stores (Local: pack files indexed in pebble; S3: packs as objects indexed
// in PostgreSQL; the HTTP client of a server implements the same interfaces, in ops) and
// the file-tree manifests that name a directory by one hash.
//
// cas imports neither the ledger nor anything above it, and it never logs or prints.
package cas

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/zeebo/blake3"
)

// HashSize is the size in bytes of a Hash.
const HashSize = 32

// hashPrefix starts the one text form of a Hash, so that a hash read in a log, a JSON field
// or a file names its algorithm.
const hashPrefix = "blake3:"

// Hash is the blake3-256 digest of a piece of content. It is a comparable value and the only
// way the program names content; its text form is "blake3:" followed by 64 lowercase hex digits.
type Hash [HashSize]byte

// ErrBadHash reports text that is not the text form of a Hash.
var ErrBadHash = errors.New("not a blake3 hash")

// Sum returns the Hash of b.
func Sum(b []byte) Hash { return Hash(blake3.Sum256(b)) }

// String returns the text form of h.
func (h Hash) String() string {
	var buf [len(hashPrefix) + 2*HashSize]byte
	copy(buf[:], hashPrefix)
	hex.Encode(buf[len(hashPrefix):], h[:])
	return string(buf[:])
}

// Short returns the first n hex digits of h, for messages and tables.
func (h Hash) Short(n int) string {
	s := hex.EncodeToString(h[:])
	if n > 0 && n < len(s) {
		return s[:n]
	}
	return s
}

// IsZero reports whether h is the zero value (no content named).
func (h Hash) IsZero() bool { return h == Hash{} }

// ParseHash parses the text form produced by String.
func ParseHash(s string) (Hash, error) {
	var h Hash
	rest, ok := strings.CutPrefix(s, hashPrefix)
	if !ok || len(rest) != 2*HashSize {
		return h, fmt.Errorf("%w: %q", ErrBadHash, s)
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return h, fmt.Errorf("%w: %q", ErrBadHash, s)
		}
	}
	if _, err := hex.Decode(h[:], []byte(rest)); err != nil {
		return h, fmt.Errorf("%w: %q", ErrBadHash, s)
	}
	return h, nil
}

// MarshalText implements encoding.TextMarshaler with the text form of h.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler, accepting only the text form.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// Compare orders hashes bytewise; stores answer batched queries in this order.
func (h Hash) Compare(o Hash) int {
	for i := range h {
		if h[i] != o[i] {
			if h[i] < o[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
