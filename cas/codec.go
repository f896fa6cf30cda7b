package cas

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compression: shared encoders and one decoder (EncodeAll/DecodeAll are safe for
// concurrent use), and raw storage when zstd saves too little. Ingest compresses groups of
// chunks at SpeedFastest (group.go). A chunk encoded on its own (Put, and GetRaw of a
// grouped chunk, which travels alone) is compressed at SpeedDefault if under GroupMax, where
// the better level pays most, and at SpeedFastest if larger.
var (
	encOnce     sync.Once
	encoder     *zstd.Encoder // SpeedDefault
	fastEncoder *zstd.Encoder // SpeedFastest
	// decoder never writes past the capacity it is given: a frame that inflates beyond the
	// length its chunk declares stops there (a zstd bomb costs its declared length at most).
	decoder *zstd.Decoder
	// storeDecoder reads this store's own groups, whose content length the location does
	// not carry; it is bounded by the largest group only.
	storeDecoder *zstd.Decoder
)

func codecs() (*zstd.Encoder, *zstd.Decoder) {
	encOnce.Do(func() {
		var err error
		encoder, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
		if err != nil {
			panic(err) // only on invalid options, fixed above
		}
		fastEncoder, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false), zstd.WithWindowSize(largeGroupTarget))
		if err != nil {
			panic(err)
		}
		decoder, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxBlob+1<<20),
			zstd.WithDecodeAllCapLimit(true))
		if err != nil {
			panic(err)
		}
		storeDecoder, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxGroupContent))
		if err != nil {
			panic(err)
		}
	})
	return encoder, decoder
}

// minSaving: store compressed only when it saves at least 1/minSaving of the bytes.
const minSaving = 64

// Encode returns the stored form of data, compressed when that pays. dst is reused if large
// enough.
func Encode(data []byte, dst []byte) Raw {
	if len(data) < 64 {
		return Raw{Enc: EncRaw, Len: int64(len(data)), Data: data}
	}
	enc, _ := codecs()
	if len(data) >= GroupMax {
		enc = fastEncoder
	}
	out := enc.EncodeAll(data, dst[:0])
	if len(out) > len(data)-len(data)/minSaving {
		return Raw{Enc: EncRaw, Len: int64(len(data)), Data: data}
	}
	return Raw{Enc: EncZstd, Len: int64(len(data)), Data: out}
}

// Decode returns the content of r and checks that it hashes to h: the one place where
// stored bytes are verified. For EncRaw the content returned is r.Data itself; dst is used
// only to decompress, so a caller reusing dst must not reuse a result that is r.Data.
func Decode(h Hash, r Raw, dst []byte) ([]byte, error) {
	var data []byte
	switch r.Enc {
	case EncRaw:
		data = r.Data
	case EncZstd:
		if r.Len < 0 || r.Len > MaxBlob {
			return nil, &CorruptError{Hash: h, Reason: fmt.Sprintf("implausible length %d", r.Len)}
		}
		_, dec := codecs()
		if int64(cap(dst)) < r.Len {
			dst = make([]byte, 0, r.Len)
		}
		var err error
		data, err = dec.DecodeAll(r.Data, dst[:0:r.Len]) // no further than the declared length
		if err != nil {
			return nil, &CorruptError{Hash: h, Reason: "zstd: " + err.Error()}
		}
	default:
		return nil, &CorruptError{Hash: h, Reason: fmt.Sprintf("unknown encoding %d", r.Enc)}
	}
	if int64(len(data)) != r.Len {
		return nil, &CorruptError{Hash: h, Reason: fmt.Sprintf("length %d, recorded %d", len(data), r.Len)}
	}
	if Sum(data) != h {
		return nil, &CorruptError{Hash: h, Reason: "content does not match its hash"}
	}
	return data, nil
}
