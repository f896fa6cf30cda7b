package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/errs"
)

// RemoteStore is a server's chunk store seen through its HTTP API: a cas.Store, held to
// the same conformance suite as the local one (cas/storetest). Puts are compressed here and
// sent in batches of up to batchBytes bytes, when a batch fills or on Flush; until then Get
// answers them from memory, and Missing and Walk do not see them (as the contract allows).
// Walk and Delete need an admin's token: they reach every project's chunks.
type RemoteStore struct {
	c *Remote

	mu      sync.Mutex // held while a batch is sent, so a chunk is always pending or on the server
	pending map[cas.Hash]cas.Raw
	order   []cas.Hash
	size    int
}

var _ cas.Store = (*RemoteStore)(nil)

// Store returns the server's chunk store.
func (c *Remote) Store() *RemoteStore {
	return &RemoteStore{c: c, pending: map[cas.Hash]cas.Raw{}}
}

// chunkErr turns the server's not-found and corrupt answers about h into cas errors.
func chunkErr(h cas.Hash, err error) error {
	switch errs.KindOf(err) {
	case errs.KindNotFound:
		return &cas.NotFoundError{Hash: h}
	case errs.KindCorrupt:
		return &cas.CorruptError{Hash: h, Reason: err.Error()}
	}
	return err
}

func (s *RemoteStore) Put(ctx context.Context, h cas.Hash, data []byte) error {
	if len(data) > cas.MaxBlob {
		return fmt.Errorf("chunk %s: %w", h, cas.ErrTooLarge)
	}
	r := cas.Encode(data, nil)
	if r.Enc == cas.EncRaw {
		r.Data = bytes.Clone(data) // the caller may reuse data
	}
	return s.add(ctx, h, r)
}

// PutRaw checks the chunk here, so that a bad chunk fails its own call rather than the
// batch it would have travelled in; the server checks it again.
func (s *RemoteStore) PutRaw(ctx context.Context, h cas.Hash, r cas.Raw) error {
	if r.Enc == cas.EncGroup {
		return &cas.CorruptError{Hash: h, Reason: "a grouped chunk does not travel"}
	}
	if _, err := cas.Decode(h, r, nil); err != nil {
		return err
	}
	r.Data = bytes.Clone(r.Data)
	return s.add(ctx, h, r)
}

func (s *RemoteStore) add(ctx context.Context, h cas.Hash, r cas.Raw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[h]; ok {
		return nil
	}
	s.pending[h] = r
	s.order = append(s.order, h)
	s.size += len(r.Data) + api.FrameHeader
	if s.size >= api.BatchBytes {
		return s.sendLocked(ctx)
	}
	return nil
}

// sendLocked uploads the pending chunks; the server answers once they are durable.
func (s *RemoteStore) sendLocked(ctx context.Context) error {
	for len(s.order) > 0 {
		var cs []api.Chunk
		n := 0
		for _, h := range s.order {
			r := s.pending[h]
			if len(cs) > 0 && n+len(r.Data)+api.FrameHeader > api.BatchBytes {
				break
			}
			cs = append(cs, api.Chunk{Hash: h, Raw: r})
			n += len(r.Data) + api.FrameHeader
		}
		if err := s.c.PutChunks(ctx, cs); err != nil {
			return err
		}
		for _, ch := range cs {
			delete(s.pending, ch.Hash)
			s.size -= len(ch.Raw.Data) + api.FrameHeader
		}
		s.order = s.order[len(cs):]
	}
	s.order = nil
	return nil
}

func (s *RemoteStore) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendLocked(ctx)
}

func (s *RemoteStore) GetRaw(ctx context.Context, h cas.Hash) (cas.Raw, error) {
	s.mu.Lock()
	r, ok := s.pending[h]
	s.mu.Unlock()
	if ok {
		return r, nil
	}
	got := false
	err := s.c.getAll(ctx, []cas.Hash{h}, true, func(c api.Chunk) error {
		raw := c.Raw
		if raw.Enc == cas.EncGroup { // a group of this one chunk (verified, kept): take it out
			data, ok := c.Group.Chunk(h)
			if !ok {
				return &cas.CorruptError{Hash: h, Reason: "not in the group sent for it"}
			}
			raw = cas.Encode(data, nil)
			raw.Data = bytes.Clone(raw.Data)
		}
		r, got = raw, true
		return nil
	})
	if err != nil {
		return cas.Raw{}, chunkErr(h, err)
	}
	if !got {
		return cas.Raw{}, &cas.NotFoundError{Hash: h}
	}
	return r, nil
}

// Get verifies what the server sent before returning it.
func (s *RemoteStore) Get(ctx context.Context, h cas.Hash) ([]byte, error) {
	r, err := s.GetRaw(ctx, h)
	if err != nil {
		return nil, err
	}
	data, err := cas.Decode(h, r, nil)
	if err != nil {
		return nil, err
	}
	if r.Enc == cas.EncRaw {
		data = bytes.Clone(data) // pending bytes stay the store's
	}
	return data, nil
}

func (s *RemoteStore) Missing(ctx context.Context, hs []cas.Hash) ([]cas.Hash, error) {
	return s.c.Missing(ctx, hs)
}

func (s *RemoteStore) Walk(ctx context.Context, fn func(cas.ChunkInfo) error) error {
	resp, err := s.c.Do(ctx, api.RouteWalkChunks.Method, api.RouteWalkChunks.URL(), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 1<<16)
	var rec [api.WalkRecord]byte
	var n uint64
	for {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			return &errs.Error{Kind: errs.KindRemote, Err: fmt.Errorf("%s: chunk list cut short after %d chunks: %v", s.c.Name(), n, err)}
		}
		var ci cas.ChunkInfo
		copy(ci.Hash[:], rec[:cas.HashSize])
		if ci.Hash.IsZero() { // the end record carries the count
			if got := binary.BigEndian.Uint64(rec[cas.HashSize:]); got != n {
				return &errs.Error{Kind: errs.KindRemote, Err: fmt.Errorf("%s: chunk list of %d chunks says %d", s.c.Name(), n, got)}
			}
			return nil
		}
		n++
		ci.Size = int64(binary.BigEndian.Uint64(rec[cas.HashSize:]))
		ci.Stored = int64(binary.BigEndian.Uint64(rec[cas.HashSize+8:]))
		if err := fn(ci); err != nil {
			return err
		}
	}
}

func (s *RemoteStore) Delete(ctx context.Context, hs []cas.Hash) error {
	s.mu.Lock()
	for _, h := range hs {
		if r, ok := s.pending[h]; ok {
			delete(s.pending, h)
			s.size -= len(r.Data) + api.FrameHeader
			s.order = slices.DeleteFunc(s.order, func(x cas.Hash) bool { return x == h })
		}
	}
	s.mu.Unlock()
	resp, err := s.c.Do(ctx, api.RouteDeleteChunk.Method, api.RouteDeleteChunk.URL(), api.EncodeHashes(hs), "application/octet-stream")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}
