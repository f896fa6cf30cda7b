package cas

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on.
var (
	// ErrNotFound: the store holds no chunk with that hash.
	ErrNotFound = errors.New("chunk not found")
	// ErrCorrupt: stored bytes do not hash to their name, or cannot be decoded.
	ErrCorrupt = errors.New("chunk corrupt")
	// ErrTooLarge: a chunk exceeds MaxBlob.
	ErrTooLarge = errors.New("chunk too large")
)

// MaxBlob is the largest single piece of content a store accepts, and what one frame on
// the wire carries (ops.MaxWireChunk): whatever one store holds, another can be sent.
// File contents are cut into chunks of at most MaxChunk; only manifests come near it.
const MaxBlob = 64 << 20

// Encoding says how a chunk's stored bytes relate to its content.
type Encoding byte

const (
	// EncRaw: the stored bytes are the content.
	EncRaw Encoding = 0
	// EncZstd: the stored bytes are one zstd frame of the content.
	EncZstd Encoding = 1
	// EncGroup: the stored bytes are one zstd frame of a group of chunks compressed
	// together (group.go). GetRaw answers a grouped chunk in EncZstd or EncRaw; a whole
	// group travels only through Transfer, VerifyGroup and PutGroup (transfer.go).
	EncGroup Encoding = 2
)

// Raw is a chunk as stored: what travels between stores, so that compressed bytes are never
// recompressed. Len is the content's length.
type Raw struct {
	Enc  Encoding
	Len  int64
	Data []byte
	// Count: for a group (EncGroup) that Transfer sends, how many chunks it holds.
	Count int
}

// ChunkInfo describes one stored chunk.
type ChunkInfo struct {
	Hash   Hash
	Size   int64 // content bytes
	Stored int64 // bytes on disk (compressed or raw)
}

// Getter reads content by hash. Every implementation verifies the hash before it returns
// bytes, and fails with an error wrapping ErrCorrupt naming the chunk when it does not match.
type Getter interface {
	Get(ctx context.Context, h Hash) ([]byte, error)
}

// Putter stores content under its hash. The caller vouches that data hashes to h (the ingest
// pipeline has just computed it); content from outside the process goes through PutRaw,
// which verifies. Putting a chunk the store holds is a cheap no-op.
type Putter interface {
	Put(ctx context.Context, h Hash, data []byte) error
}

// Stater answers which of many hashes a store lacks: in goes any list, out comes the missing
// ones in ascending order. It is the batched existence check that copy relies on.
type Stater interface {
	Missing(ctx context.Context, hs []Hash) ([]Hash, error)
}

// Walker lists every stored chunk in ascending hash order.
type Walker interface {
	Walk(ctx context.Context, fn func(ChunkInfo) error) error
}

// Deleter drops chunks; deleting an absent chunk is not an error.
type Deleter interface {
	Delete(ctx context.Context, hs []Hash) error
}

// RawStore moves chunks in their stored form. PutRaw verifies the content's hash before the
// chunk becomes visible and fails with ErrCorrupt otherwise.
type RawStore interface {
	GetRaw(ctx context.Context, h Hash) (Raw, error)
	PutRaw(ctx context.Context, h Hash, r Raw) error
}

// Flusher makes every chunk put so far durable and visible to Missing and Walk.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Batch gathers chunks verified by the caller (PutEncoded, PutGroup) until Flush makes
// them durable and visible: what a server does with one upload request. A local store's
// batch is the store itself; an S3 store's is a pack of its own (S3Batch).
type Batch interface {
	PutEncoded(ctx context.Context, h Hash, r Raw) (bool, error)
	PutGroup(ctx context.Context, g *Group) (int, error)
	Flush(ctx context.Context) error
}

// Store is the whole of a chunk store: what every backend (local packs, the HTTP client of a
// server) implements and the conformance suite in storetest checks.
type Store interface {
	Getter
	Putter
	Stater
	Walker
	Deleter
	RawStore
	Flusher
}

// CorruptError names the chunk whose bytes failed verification.
type CorruptError struct {
	Hash   Hash
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("chunk %s corrupt: %s", e.Hash, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// NotFoundError names the chunk a store lacks.
type NotFoundError struct{ Hash Hash }

func (e *NotFoundError) Error() string { return fmt.Sprintf("chunk %s not found", e.Hash) }

// Unwrap makes errors.Is(err, ErrNotFound) hold.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }
