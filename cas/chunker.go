package cas

import (
	"encoding/binary"
	"errors"
	"io"

	"github.com/zeebo/blake3"
)

// The chunker's parameters are part of the store format: changing any of them, or the gear
// table, changes every chunk boundary and so every stored hash. golden_test.go pins them.
const (
	// MinChunk is the smallest chunk the chunker cuts (except a file's last one).
	// A file of at most MaxChunk bytes is stored as one chunk without cutting (tree.go).
	MinChunk = 32 << 10
	// AvgChunk is the normalisation point: cuts before it need more zero bits.
	AvgChunk = 128 << 10
	// MaxChunk is the largest chunk; a run with no cut point is cut here.
	MaxChunk = 512 << 10

	// maskS (19 bits) applies below AvgChunk, maskL (15 bits) above it: FastCDC's normalised
	// chunking at level 2. The bits are the top ones of the gear hash, which depend on the
	// last 64 bytes read.
	maskS uint64 = 0xFFFFE00000000000
	maskL uint64 = 0xFFFE000000000000
)

// gear is the FastCDC gear table: 256 pseudo-random words from blake3's output stream keyed
// by a fixed label, so that it is reproducible from this source alone.
var gear = func() [256]uint64 {
	var t [256]uint64
	var buf [256 * 8]byte
	h := blake3.New()
	_, _ = h.Write([]byte("swcli chunker gear table v1"))
	_, _ = h.Digest().Read(buf[:])
	for i := range t {
		t[i] = binary.LittleEndian.Uint64(buf[i*8:])
	}
	return t
}()

// Cut returns the length of the first chunk of b: the content-defined cut point if there is
// one, else min(len(b), MaxChunk). b should hold at least MaxChunk bytes unless it is the end
// of the input, or the cut is not the one a longer input would give.
func Cut(b []byte) int {
	n := len(b)
	if n <= MinChunk {
		return n
	}
	if n > MaxChunk {
		n = MaxChunk
	}
	barrier := AvgChunk
	if n < barrier {
		barrier = n
	}
	var fp uint64
	i := MinChunk
	s := b[:barrier]
	for ; i < len(s); i++ {
		fp = (fp << 1) + gear[s[i]]
		if fp&maskS == 0 {
			return i + 1
		}
	}
	s = b[:n]
	for ; i < len(s); i++ {
		fp = (fp << 1) + gear[s[i]]
		if fp&maskL == 0 {
			return i + 1
		}
	}
	return n
}

// Chunker splits a stream into content-defined chunks.
type Chunker struct {
	r    io.Reader
	buf  []byte
	lo   int // start of unread data in buf
	hi   int // end of data in buf
	eof  bool
	err  error
	read int64
}

// chunkerBuf is the read buffer: four maximal chunks, so refills are rare.
const chunkerBuf = 4 * MaxChunk

// NewChunker returns a Chunker reading r.
func NewChunker(r io.Reader) *Chunker {
	return &Chunker{r: r, buf: make([]byte, chunkerBuf)}
}

// Reset makes c read r from the start, keeping its buffer.
func (c *Chunker) Reset(r io.Reader) {
	c.r, c.lo, c.hi, c.eof, c.err, c.read = r, 0, 0, false, nil, 0
}

// Next returns the next chunk, valid until the following call, or io.EOF after the last.
func (c *Chunker) Next() ([]byte, error) {
	if c.hi-c.lo < MaxChunk && !c.eof {
		c.fill()
	}
	if c.err != nil {
		return nil, c.err
	}
	if c.lo == c.hi {
		return nil, io.EOF
	}
	n := Cut(c.buf[c.lo:c.hi])
	chunk := c.buf[c.lo : c.lo+n]
	c.lo += n
	return chunk, nil
}

// BytesRead is how many bytes c has read from its reader.
func (c *Chunker) BytesRead() int64 { return c.read }

func (c *Chunker) fill() {
	if c.lo > 0 {
		c.hi = copy(c.buf, c.buf[c.lo:c.hi])
		c.lo = 0
	}
	for c.hi < len(c.buf) && !c.eof {
		n, err := c.r.Read(c.buf[c.hi:])
		c.hi += n
		c.read += int64(n)
		if errors.Is(err, io.EOF) {
			c.eof = true
		} else if err != nil {
			c.err = err
			return
		}
	}
}
