package api

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/swcli/swcli/cas"
)

// The wire format of chunk transfers (README: "Copy and the wire format").
//
// A hash list (POST /api/v1/chunks/missing, /api/v1/chunks/get, and the missing answer) is
// the concatenation of 32-byte hashes, in any order (answers are sorted).
//
// A chunk stream (POST /api/v1/chunks, and the answer of /api/v1/chunks/get) is a sequence of
// frames, each a chunk as stored:
//
//	hash[32] encoding[1] contentLen[4, big-endian] storedLen[4, big-endian] stored bytes
//
// and ends at the end of the body. A frame of encoding 2 (cas.EncGroup) is a group of
// chunks compressed together, as a store keeps it: its hash is the group's name (the blake3
// of a label and its chunks' hashes, cas.groupName) and its content the group's table and
// chunks (cas/group.go). The receiver decodes and hashes every chunk, grouped or not,
// before it stores any of the batch. The answer of /api/v1/chunks/get comes in the order
// asked and ends with a frame of zero hash and no bytes whose content length is how many
// of the hashes asked for it answered.

// FrameHeader is the size of a chunk frame's header.
const FrameHeader = cas.HashSize + 1 + 4 + 4

// MaxWireChunk bounds one chunk on the wire (manifests are the largest): what a store
// accepts, so that anything stored can travel.
const MaxWireChunk = cas.MaxBlob

// WriteFrame writes one chunk frame.
func WriteFrame(w io.Writer, h cas.Hash, r cas.Raw) error {
	hdr := FrameHeaderOf(h, r)
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(r.Data)
	return err
}

// FrameHeaderOf is the header of the frame of chunk h, stored as r.
func FrameHeaderOf(h cas.Hash, r cas.Raw) [FrameHeader]byte {
	var hdr [FrameHeader]byte
	copy(hdr[:], h[:])
	hdr[cas.HashSize] = byte(r.Enc)
	binary.BigEndian.PutUint32(hdr[cas.HashSize+1:], uint32(r.Len))
	binary.BigEndian.PutUint32(hdr[cas.HashSize+5:], uint32(len(r.Data)))
	return hdr
}

// ErrBadFrame reports a chunk stream that is not well formed.
var ErrBadFrame = errors.New("malformed chunk stream")

// ReadFrames calls fn for each frame of r until its end.
func ReadFrames(r io.Reader, fn func(h cas.Hash, raw cas.Raw) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [FrameHeader]byte
	for {
		if _, err := io.ReadFull(br, hdr[:1]); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if _, err := io.ReadFull(br, hdr[1:]); err != nil {
			return fmt.Errorf("%w: truncated header: %w", ErrBadFrame, err)
		}
		var h cas.Hash
		copy(h[:], hdr[:cas.HashSize])
		size := int64(binary.BigEndian.Uint32(hdr[cas.HashSize+1:]))
		stored := binary.BigEndian.Uint32(hdr[cas.HashSize+5:])
		if stored > MaxWireChunk || size > MaxWireChunk {
			return fmt.Errorf("%w: chunk %s of %d bytes is over the %d limit", ErrBadFrame, h, stored, MaxWireChunk)
		}
		// Grown as bytes arrive, never past what the header says: a header that claims much
		// and sends little costs little, and a large frame costs its size and a half at most.
		data := make([]byte, 0, min(int(stored), 4<<20))
		for len(data) < int(stored) {
			if len(data) == cap(data) {
				grown := make([]byte, len(data), min(int(stored), 2*cap(data)))
				copy(grown, data)
				data = grown
			}
			n, err := br.Read(data[len(data):cap(data)])
			data = data[:len(data)+n]
			if err != nil && len(data) < int(stored) {
				return fmt.Errorf("%w: truncated chunk %s: %w", ErrBadFrame, h, err)
			}
		}
		if err := fn(h, cas.Raw{Enc: cas.Encoding(hdr[cas.HashSize]), Len: size, Data: data}); err != nil {
			return err
		}
	}
}

// EncodeHashes writes a hash list.
func EncodeHashes(hs []cas.Hash) []byte {
	b := make([]byte, 0, len(hs)*cas.HashSize)
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

// DecodeHashes reads a hash list.
func DecodeHashes(b []byte) ([]cas.Hash, error) {
	if len(b)%cas.HashSize != 0 {
		return nil, fmt.Errorf("%w: hash list of %d bytes", ErrBadFrame, len(b))
	}
	hs := make([]cas.Hash, len(b)/cas.HashSize)
	for i := range hs {
		copy(hs[i][:], b[i*cas.HashSize:])
	}
	return hs, nil
}

// WalkRecord is the size of one entry of GET /api/v1/chunks: hash[32] size[8] stored[8],
// big-endian; the list ends with a zero hash whose size field is the count.
const WalkRecord = cas.HashSize + 16
