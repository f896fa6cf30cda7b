package cas

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
)

// ManifestStream is a stored manifest read entry by entry, for what walks a tree once
// without holding it (Materialize). A manifest in a pack of a local store is read from
// the pack again for each walk, nothing of it held but the pack's open file (until
// Close); one elsewhere is kept as stored, compressed, and decoded again for each walk.
// Ten times the ml corpus has a 16.5 MB manifest that took 22 MB of heap decoded, 5.3 MB
// as stored. Opening it verifies the bytes against the tree's hash and checks every entry
// by Validate's rules; a walk of bytes read again does both again, giving only entries
// that pass the rules and failing at its end if the bytes were not the tree's, so every
// walk gives a valid tree.
type ManifestStream struct {
	hash Hash
	raw  Raw // as stored (EncRaw or EncZstd), verified; no Data when stored reads it
	// stored is where the bytes lie in their pack, read for each walk (nil: raw holds
	// them); release lets the pack's file go.
	stored  *io.SectionReader
	release func()
	totals  Totals
}

// Close lets go of the pack the manifest is read from, if it is.
func (s *ManifestStream) Close() {
	if s.release != nil {
		s.release()
		s.release = nil
	}
}

// streamMin: a manifest stored smaller than this is decoded whole when opened.
const streamMin = 1 << 20

// OpenManifest reads the manifest named h for walking, verified and validated.
func OpenManifest(ctx context.Context, g Getter, h Hash) (*ManifestStream, error) {
	s := &ManifestStream{hash: h}
	verified, err := s.find(ctx, g)
	if err == nil {
		err = s.check(!verified)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("read manifest %s: %w", h, err)
	}
	return s, nil
}

// StreamOf is m as a ManifestStream (validated; m is encoded, not kept).
func StreamOf(m *Manifest) (*ManifestStream, error) {
	b := m.Encode()
	s := &ManifestStream{hash: Sum(b), raw: Raw{Enc: EncRaw, Len: int64(len(b)), Data: b}}
	if err := s.check(false); err != nil {
		return nil, err
	}
	return s, nil
}

// find finds the manifest as stored: to be read from its pack for each walk (a large one
// in a local store's sealed pack), else its bytes as stored (every store is a RawStore),
// else its content. It reports whether what it holds is verified already: content from
// Get is, and a small compressed manifest is decoded, and so verified, at once.
func (s *ManifestStream) find(ctx context.Context, g Getter) (bool, error) {
	rs, ok := g.(RawStore)
	if !ok {
		data, err := g.Get(ctx, s.hash)
		s.raw = Raw{Enc: EncRaw, Len: int64(len(data)), Data: data}
		return true, err
	}
	raw, err := s.fromStore(ctx, rs)
	if err != nil || s.stored != nil || raw.Enc != EncZstd || len(raw.Data) >= streamMin {
		s.raw = raw
		return false, err
	}
	data, err := Decode(s.hash, raw, nil)
	s.raw = Raw{Enc: EncRaw, Len: int64(len(data)), Data: data}
	return true, err
}

// fromStore is rs.GetRaw of the manifest, through the window reader's look-up if rs has
// one (Local's, which does not load the index's working copy for one chunk: see
// locateAll); a large one in a sealed pack is not read but held there for each walk.
func (s *ManifestStream) fromStore(ctx context.Context, rs RawStore) (Raw, error) {
	wr, ok := rs.(windowReader)
	if !ok {
		return rs.GetRaw(ctx, s.hash)
	}
	locs, err := wr.locateAll(ctx, []Hash{s.hash})
	if err != nil {
		return Raw{}, err
	}
	l, ok := locs[s.hash]
	if !ok {
		return Raw{}, &NotFoundError{Hash: s.hash}
	}
	if l.stored >= streamMin && (l.enc == EncZstd || l.enc == EncRaw) && wr.inSealedPack(l) {
		sec, release, err := wr.holdStored(l)
		if err != nil {
			return Raw{}, err
		}
		s.stored, s.release = sec, release
		return Raw{Enc: l.enc, Len: l.size}, nil
	}
	return wr.rawAt(s.hash, l)
}

// Hash is the tree's name.
func (s *ManifestStream) Hash() Hash { return s.hash }

// Totals counts the tree's entries and content bytes.
func (s *ManifestStream) Totals() Totals { return s.totals }

// content opens the manifest's encoding: the stored bytes, or their one zstd frame
// decoded as it is read, never past the recorded length.
func (s *ManifestStream) content() (io.Reader, func(), error) {
	var src io.Reader = bytes.NewReader(s.raw.Data)
	if s.stored != nil {
		src = bufio.NewReaderSize(io.NewSectionReader(s.stored, 0, s.stored.Size()), 64<<10)
	}
	switch s.raw.Enc {
	case EncRaw:
		return src, func() {}, nil
	case EncZstd:
		if s.raw.Len < 0 || s.raw.Len > MaxBlob {
			return nil, nil, &CorruptError{Hash: s.hash, Reason: fmt.Sprintf("implausible length %d", s.raw.Len)}
		}
		dec, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(MaxBlob+1<<20))
		if err != nil {
			return nil, nil, &CorruptError{Hash: s.hash, Reason: "zstd: " + err.Error()}
		}
		return io.LimitReader(dec, s.raw.Len+1), dec.Close, nil
	}
	return nil, nil, &CorruptError{Hash: s.hash, Reason: fmt.Sprintf("unknown encoding %d", s.raw.Enc)}
}

// check reads the manifest once (scan), to count its entries.
func (s *ManifestStream) check(verify bool) error {
	tot, err := s.scan(verify, false, nil)
	s.totals = tot
	return err
}

// scan reads the manifest once, giving fn (if any) every entry that passes Validate's
// rules, counted, and, if verify is set, checking its bytes against the recorded length
// and the tree's hash. Bytes that do not match are reported as corrupt, before any rule
// they break; an error of fn's own ends the scan, and is what it returns. Decoding the
// same bytes again gives the same content, so a walk of bytes held reads verified bytes.
func (s *ManifestStream) scan(verify, chunks bool, fn func(e *Entry, nch int) error) (Totals, error) {
	r, done, err := s.content()
	if err != nil {
		return Totals{}, err
	}
	defer done()
	hr := &hashingReader{r: r, h: blake3.New()}
	if verify {
		r = hr
	}
	v := validator{kinds: map[string]Kind{}}
	var tot Totals
	var fnErr error
	werr := s.walkFrom(r, chunks, func(e *Entry, nch int) error {
		if err := v.next(e, nch, s.kindOf); err != nil {
			return err
		}
		tot.add(e)
		if fn != nil {
			fnErr = fn(e, nch)
		}
		return fnErr
	})
	if fnErr != nil {
		return tot, fnErr
	}
	if verify {
		if _, err := io.Copy(io.Discard, r); err != nil { // what the walk left unread
			return tot, &CorruptError{Hash: s.hash, Reason: "zstd: " + err.Error()}
		}
		if hr.n != s.raw.Len {
			return tot, &CorruptError{Hash: s.hash, Reason: fmt.Sprintf("length %d, recorded %d", hr.n, s.raw.Len)}
		}
		var got Hash
		hr.h.Sum(got[:0])
		if got != s.hash {
			return tot, &CorruptError{Hash: s.hash, Reason: "content does not match its hash"}
		}
	}
	return tot, werr
}

// hashingReader hashes and counts what is read through it.
type hashingReader struct {
	r io.Reader
	h *blake3.Hasher
	n int64
}

func (t *hashingReader) Read(p []byte) (int, error) {
	k, err := t.r.Read(p)
	t.h.Write(p[:k]) // never fails
	t.n += int64(k)
	return k, err
}

// kindOf finds the kind of the entry at path p (0: none); only a bad tree's error asks.
func (s *ManifestStream) kindOf(p string) Kind {
	var k Kind
	found := errors.New("found")
	s.decode(false, func(e *Entry, _ int) error {
		if e.Path == p {
			k = e.Kind
			return found
		}
		return nil
	})
	return k
}

// Each gives every entry to fn in the tree's order, each a new Entry (fn may keep it).
func (s *ManifestStream) Each(fn func(e *Entry) error) error {
	return s.walk(true, func(e *Entry, _ int) error { return fn(e) })
}

// walk decodes the entries, with their chunks if chunks is set, giving each and its
// number of chunks to fn; bytes read again from their pack are checked again (scan).
func (s *ManifestStream) walk(chunks bool, fn func(e *Entry, nch int) error) error {
	if s.stored != nil {
		_, err := s.scan(true, chunks, fn)
		return err
	}
	return s.decode(chunks, fn)
}

// decode is walk without the checks: for bytes held, verified when opened, or where only
// an error's message depends on it (kindOf).
func (s *ManifestStream) decode(chunks bool, fn func(e *Entry, nch int) error) error {
	r, done, err := s.content()
	if err != nil {
		return err
	}
	defer done()
	return s.walkFrom(r, chunks, fn)
}

// walkFrom is walk over r, the manifest's encoding.
func (s *ManifestStream) walkFrom(r io.Reader, chunks bool, fn func(e *Entry, nch int) error) error {
	d := &streamReader{r: bufio.NewReaderSize(r, 64<<10), n: uint64(s.raw.Len)}
	if magic := d.bytes(uint64(len(manifestMagic))); string(magic) != manifestMagic {
		return fmt.Errorf("%w: no SWTREE1 header", ErrBadManifest)
	}
	count := d.uvarint()
	if count > d.left() { // every entry takes at least one byte
		return fmt.Errorf("%w: %d entries in %d bytes", ErrBadManifest, count, d.left())
	}
	for i := uint64(0); i < count && d.err == nil; i++ {
		e := &Entry{}
		nch := decodeEntry(d, i, e, chunks)
		if d.err != nil {
			break
		}
		if err := fn(e, nch); err != nil {
			return err
		}
	}
	if d.err != nil {
		return fmt.Errorf("%w: %v", ErrBadManifest, d.err)
	}
	if d.n != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadManifest, d.n)
	}
	return nil
}

// streamReader reads fields (manifest.go) from a stream that holds n more bytes.
type streamReader struct {
	r   *bufio.Reader
	n   uint64
	buf []byte
	err error
}

var errTruncated = errors.New("truncated")

func (d *streamReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var v uint64
	for i, shift := 0, uint(0); ; i, shift = i+1, shift+7 {
		c := d.byte()
		if d.err != nil {
			return 0
		}
		if i == 9 && c > 1 || i > 9 { // past 64 bits: binary.Uvarint's overflow
			d.err = errTruncated
			return 0
		}
		if c < 0x80 {
			v |= uint64(c) << shift
			if i+1 != uvarintLen(v) { // one encoding per value, as reader checks
				d.err = errors.New("non-minimal varint")
				return 0
			}
			return v
		}
		v |= uint64(c&0x7f) << shift
	}
}

func (d *streamReader) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.n == 0 {
		d.err = errTruncated
		return 0
	}
	c, err := d.r.ReadByte()
	if err != nil {
		d.err = errTruncated
		return 0
	}
	d.n--
	return c
}

func (d *streamReader) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > d.n {
		d.err = errTruncated
		return nil
	}
	if uint64(cap(d.buf)) < n {
		d.buf = make([]byte, n)
	}
	b := d.buf[:n]
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.err = errTruncated
		return nil
	}
	d.n -= n
	return b
}

func (d *streamReader) skip(n uint64) {
	if d.err != nil {
		return
	}
	if n > d.n {
		d.err = errTruncated
		return
	}
	if _, err := d.r.Discard(int(n)); err != nil {
		d.err = errTruncated
		return
	}
	d.n -= n
}

func (d *streamReader) left() uint64   { return d.n }
func (d *streamReader) failed() bool   { return d.err != nil }
func (d *streamReader) fail(err error) { d.err = err }
