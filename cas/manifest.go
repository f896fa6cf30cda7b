package cas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// Kind is what a manifest entry is.
type Kind uint8

const (
	KindDir  Kind = 1
	KindFile Kind = 2
	KindLink Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindDir:
		return "dir"
	case KindFile:
		return "file"
	case KindLink:
		return "symlink"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Entry is one path of a file tree. Mode holds the permission bits (with setuid, setgid and
// sticky); mtimes and owners are deliberately not part of a tree's identity.
type Entry struct {
	Path   string // slash-separated, relative, clean
	Kind   Kind
	Mode   uint32
	Size   int64  // files: content bytes
	Target string // links: the link's target, as read
	Chunks []Hash // files: contents in order
}

// Manifest is a file tree: entries sorted by path, every parent directory present. Its
// encoding is deterministic, so its hash names the tree.
type Manifest struct {
	Entries []Entry
}

// ErrBadManifest reports a manifest that cannot be decoded or breaks the rules of Validate.
var ErrBadManifest = errors.New("bad manifest")

const manifestMagic = "SWTREE1\n"

// Encode returns the canonical encoding of m:
//
//	"SWTREE1\n" uvarint(count) entries
//	entry: uvarint(len) path, kind byte, uvarint(mode), uvarint(size),
//	       uvarint(len) target, uvarint(nchunks), hash[32]...
func (m *Manifest) Encode() []byte {
	n := len(manifestMagic) + binary.MaxVarintLen64
	for i := range m.Entries {
		n += entryLen(&m.Entries[i])
	}
	b := make([]byte, 0, n)
	b = append(b, manifestMagic...)
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for i := range m.Entries {
		b = appendEntry(b, &m.Entries[i])
	}
	return b
}

// entryLen is the length of e's encoding.
func entryLen(e *Entry) int {
	return uvarintLen(uint64(len(e.Path))) + len(e.Path) + 1 + uvarintLen(uint64(e.Mode)) +
		uvarintLen(uint64(e.Size)) + uvarintLen(uint64(len(e.Target))) + len(e.Target) +
		uvarintLen(uint64(len(e.Chunks))) + len(e.Chunks)*HashSize
}

// appendEntry appends e's encoding to b.
func appendEntry(b []byte, e *Entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(e.Path)))
	b = append(b, e.Path...)
	b = append(b, byte(e.Kind))
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendUvarint(b, uint64(e.Size))
	b = binary.AppendUvarint(b, uint64(len(e.Target)))
	b = append(b, e.Target...)
	b = binary.AppendUvarint(b, uint64(len(e.Chunks)))
	for _, h := range e.Chunks {
		b = append(b, h[:]...)
	}
	return b
}

// Hash returns the hash of m's encoding: the tree's name.
func (m *Manifest) Hash() Hash { return Sum(m.Encode()) }

// DecodeManifest decodes and validates an encoded manifest.
func DecodeManifest(b []byte) (*Manifest, error) {
	d := reader{b: b}
	if !strings.HasPrefix(string(b[:min(len(b), len(manifestMagic))]), manifestMagic) {
		return nil, fmt.Errorf("%w: no SWTREE1 header", ErrBadManifest)
	}
	d.b = b[len(manifestMagic):]
	count := d.uvarint()
	if count > uint64(len(d.b)) { // every entry takes at least one byte
		return nil, fmt.Errorf("%w: %d entries in %d bytes", ErrBadManifest, count, len(d.b))
	}
	m := &Manifest{Entries: make([]Entry, 0, count)}
	for i := uint64(0); i < count && d.err == nil; i++ {
		var e Entry
		if d.entry(i, &e, true); d.err == nil {
			m.Entries = append(m.Entries, e)
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadManifest, len(d.b))
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

type reader struct {
	b   []byte
	err error
}

// entry decodes the i-th entry into e, with its chunks if chunks is set (else e.Chunks
// stays nil and the hashes are skipped). It returns the number of chunks.
func (d *reader) entry(i uint64, e *Entry, chunks bool) int { return decodeEntry(d, i, e, chunks) }

// fields reads an encoding's fields: from bytes in memory (reader) or from a stream
// (streamReader, manifeststream.go). After an error every read gives zero values.
type fields interface {
	uvarint() uint64
	bytes(n uint64) []byte // valid until the next read
	skip(n uint64)
	byte() byte
	left() uint64 // bytes left at most
	failed() bool
	fail(error)
}

// decodeEntry decodes the i-th entry of d into e (see reader.entry).
func decodeEntry(d fields, i uint64, e *Entry, chunks bool) int {
	e.Path = string(d.bytes(d.uvarint()))
	e.Kind = Kind(d.byte())
	mode := d.uvarint()
	e.Mode = uint32(mode)
	size := d.uvarint()
	e.Size = int64(size)
	e.Target = string(d.bytes(d.uvarint()))
	nch := d.uvarint()
	if d.failed() {
		return 0
	}
	if mode > 0o7777 || size > 1<<62 || nch > d.left()/HashSize {
		d.fail(fmt.Errorf("entry %d: field out of range", i))
		return 0
	}
	if !chunks {
		d.skip(nch * HashSize)
		return int(nch)
	}
	if nch > 0 {
		e.Chunks = make([]Hash, nch)
		for j := range e.Chunks {
			copy(e.Chunks[j][:], d.bytes(HashSize))
		}
	}
	return int(nch)
}

func (d *reader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	if n != uvarintLen(v) { // one encoding per value: a tree has one manifest, one hash
		d.err = errors.New("non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *reader) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *reader) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errors.New("truncated")
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *reader) byte() byte {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *reader) skip(n uint64)  { d.bytes(n) }
func (d *reader) left() uint64   { return uint64(len(d.b)) }
func (d *reader) failed() bool   { return d.err != nil }
func (d *reader) fail(err error) { d.err = err }

// ValidPath reports whether p may name an entry: relative, slash-separated, clean, with no
// "." or ".." component and no NUL.
func ValidPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("absolute path %q", p)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains NUL", p)
	case !fs.ValidPath(p):
		if slices.Contains(strings.Split(p, "/"), "..") {
			return fmt.Errorf("path %q has a .. component", p)
		}
		return fmt.Errorf("path %q is not clean", p)
	}
	return nil
}

// Validate checks the rules a manifest keeps: valid paths in strictly ascending order, known
// kinds, every parent present as a directory (so nothing is written through a link), chunks
// only on files, targets only on links.
func (m *Manifest) Validate() error {
	// Only directories and links go in the map (a tree is mostly files): a parent that is
	// neither is looked up among the entries before it, which are sorted by then.
	n := 0
	for i := range m.Entries {
		if m.Entries[i].Kind != KindFile {
			n++
		}
	}
	v := validator{kinds: make(map[string]Kind, n)}
	for i := range m.Entries {
		e := &m.Entries[i]
		err := v.next(e, len(e.Chunks), func(dir string) Kind {
			if j, found := slices.BinarySearchFunc(m.Entries[:i], dir, func(e Entry, p string) int { return strings.Compare(e.Path, p) }); found {
				return m.Entries[j].Kind
			}
			return 0
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// validator checks a manifest's rules entry by entry (Validate), holding only the paths
// of directories and links.
type validator struct {
	kinds map[string]Kind
	prev  string
	i     int
}

// next checks e (with nChunks chunks), the entry after those given before. kindOf gives
// the kind of an earlier entry that is neither a directory nor a link (0: none); it is
// asked only when e's parent is not a directory.
func (v *validator) next(e *Entry, nChunks int, kindOf func(path string) Kind) error {
	if err := ValidPath(e.Path); err != nil {
		return fmt.Errorf("%w: entry %d: %v", ErrBadManifest, v.i, err)
	}
	if v.i > 0 && v.prev >= e.Path {
		return fmt.Errorf("%w: %q is out of order", ErrBadManifest, e.Path)
	}
	if dir, _, ok := cutLast(e.Path); ok && v.kinds[dir] != KindDir {
		k := v.kinds[dir]
		if k == 0 {
			k = kindOf(dir)
		}
		if k == 0 {
			return fmt.Errorf("%w: %q has no parent directory entry", ErrBadManifest, e.Path)
		}
		return fmt.Errorf("%w: %q would be written through %s %q", ErrBadManifest, e.Path, k, dir)
	}
	switch e.Kind {
	case KindDir:
		if e.Size != 0 || e.Target != "" || nChunks != 0 {
			return fmt.Errorf("%w: directory %q has content", ErrBadManifest, e.Path)
		}
	case KindFile:
		if e.Target != "" || (e.Size > 0) != (nChunks > 0) {
			return fmt.Errorf("%w: file %q: size %d with %d chunks", ErrBadManifest, e.Path, e.Size, nChunks)
		}
	case KindLink:
		if e.Target == "" || e.Size != 0 || nChunks != 0 || strings.ContainsRune(e.Target, 0) {
			return fmt.Errorf("%w: symlink %q is malformed", ErrBadManifest, e.Path)
		}
	default:
		return fmt.Errorf("%w: %q has unknown kind %d", ErrBadManifest, e.Path, e.Kind)
	}
	if e.Kind != KindFile {
		v.kinds[e.Path] = e.Kind
	}
	v.prev = e.Path
	v.i++
	return nil
}

func cutLast(p string) (dir, base string, ok bool) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p, false
	}
	return p[:i], p[i+1:], true
}

// Totals sums a manifest.
type Totals struct {
	Files, Dirs, Links int
	Size               int64 // content bytes of all files
}

// Totals counts m's entries and content bytes.
func (m *Manifest) Totals() Totals {
	var t Totals
	for i := range m.Entries {
		t.add(&m.Entries[i])
	}
	return t
}

// add counts e.
func (t *Totals) add(e *Entry) {
	switch e.Kind {
	case KindDir:
		t.Dirs++
	case KindFile:
		t.Files++
		t.Size += e.Size
	case KindLink:
		t.Links++
	}
}

// Chunks returns every distinct chunk hash m references, in first-use order.
func (m *Manifest) Chunks() []Hash {
	seen := map[Hash]bool{}
	var out []Hash
	for _, e := range m.Entries {
		for _, h := range e.Chunks {
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	return out
}
