package ledger

import (
	"encoding/binary"
	"strconv"
)

// Every key of the ledger's pebble database (LEDGER/ is its own database). One prefix byte,
// then the fields; integers big-endian so that byte order is numeric order; names are joined
// with a 0x00 byte, which a name cannot contain.
//
//	'S'                              -> schema version, uvarint; checked at open
//	'H'                              -> head: seq[8] hash[32]
//	'e' seq[8]                       -> event: hash[32] then its canonical JSON body
//	'P' project                      -> Project (projection codec, codec.go)
//	'R' project 0 runtime            -> Runtime
//	'v' project 0 runtime 0 id       -> Version
//	'o' project 0 runtime 0 ^seq[8]  -> Version again: a runtime's versions, newest first
//	't' project 0 runtime 0 tag      -> id: latest, vN and user tags
//	'a' project 0 runtime 0 origin   -> id: the id a version had where it was made
//	'm' index[8]                     -> a hash of the Merkle tree over the log (tree.go)
//	'M'                              -> how many events the tree has
//	'K' name                         -> a secret replicas share (tree.go)
//
// Records of truth ('e', 'H') and the projections they change are written in one batch
// committed with pebble.Sync.
const (
	keySchema  = 'S'
	keyHead    = 'H'
	keyEvent   = 'e'
	keyProject = 'P'
	keyRuntime = 'R'
	keyVersion = 'v'
	keyOrder   = 'o'
	keyTag     = 't'
	keyAlias   = 'a'
)

// allPrefixes lists every prefix above; keys_test.go checks that no two collide.
var allPrefixes = []byte{keySchema, keyHead, keyEvent, keyProject, keyRuntime, keyVersion, keyOrder, keyTag, keyAlias, keyTree, keyTreeSize, keySecret}

// projectionPrefixes are the prefixes replay rebuilds and verify compares.
var projectionPrefixes = []byte{keyProject, keyRuntime, keyVersion, keyOrder, keyTag, keyAlias}

// schemaVersion is the ledger's format version.
const schemaVersion = 1

func eventKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = keyEvent
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func joinKey(prefix byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + 1
	}
	return appendKey(make([]byte, 0, n), prefix, parts...)
}

// appendKey appends a key to dst; with a stack buffer, map look-ups by it allocate nothing.
func appendKey(dst []byte, prefix byte, parts ...string) []byte {
	dst = append(dst, prefix)
	for i, p := range parts {
		if i > 0 {
			dst = append(dst, 0)
		}
		dst = append(dst, p...)
	}
	return dst
}

// vnTag is the built-in tag of the n-th version.
func vnTag(n int) string { return "v" + strconv.Itoa(n) }

// builtin names a built-in tag without spelling it: a version number, or latest. Replay
// moves a million of them and stores none, so it should not format them.
type builtin int

const latest builtin = -1

func (b builtin) String() string {
	if b == latest {
		return "latest"
	}
	return vnTag(int(b))
}

func projectKey(p string) []byte        { return joinKey(keyProject, p) }
func runtimeKey(p, r string) []byte     { return joinKey(keyRuntime, p, r) }
func versionKey(p, r, id string) []byte { return joinKey(keyVersion, p, r, id) }
func tagKey(p, r, tag string) []byte    { return joinKey(keyTag, p, r, tag) }
func aliasKey(p, r, o string) []byte    { return joinKey(keyAlias, p, r, o) }
func runtimePrefix(prefix byte, p, r string) []byte {
	return append(joinKey(prefix, p, r), 0)
}

func orderKey(p, r string, seq uint64) []byte {
	k := runtimePrefix(keyOrder, p, r)
	return binary.BigEndian.AppendUint64(k, ^seq)
}

// upper returns the smallest key greater than every key with prefix p.
func upper(p []byte) []byte {
	u := append([]byte{}, p...)
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] < 0xff {
			u[i]++
			return u[:i+1]
		}
	}
	return nil
}
