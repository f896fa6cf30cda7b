// Package storetest is the conformance suite every cas.Store implementation passes.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/swcli/swcli/cas"
)

// Run checks st's behaviour against the cas.Store contract. open returns a new, empty store
// each time it is called; the suite closes nothing (use t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) cas.Store) {
	ctx := context.Background()
	t.Run("PutGet", func(t *testing.T) {
		st := open(t)
		for i, data := range samples() {
			h := cas.Sum(data)
			if err := st.Put(ctx, h, data); err != nil {
				t.Fatalf("put sample %d: %v", i, err)
			}
			got, err := st.Get(ctx, h)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("get sample %d before flush: %v (equal %v)", i, err, bytes.Equal(got, data))
			}
		}
		flush(t, st)
		for i, data := range samples() {
			got, err := st.Get(ctx, cas.Sum(data))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("get sample %d after flush: %v", i, err)
			}
		}
	})
	t.Run("GetMissingNamesChunk", func(t *testing.T) {
		st := open(t)
		h := cas.Sum([]byte("never stored"))
		_, err := st.Get(ctx, h)
		if !errors.Is(err, cas.ErrNotFound) {
			t.Fatalf("get of absent chunk: %v, want ErrNotFound", err)
		}
		if !bytes.Contains([]byte(err.Error()), []byte(h.String())) {
			t.Fatalf("error %q does not name %s", err, h)
		}
		if _, err := st.GetRaw(ctx, h); !errors.Is(err, cas.ErrNotFound) {
			t.Fatalf("get raw of absent chunk: %v, want ErrNotFound", err)
		}
	})
	t.Run("PutIsIdempotent", func(t *testing.T) {
		st := open(t)
		data := []byte("same bytes twice")
		h := cas.Sum(data)
		for range 3 {
			if err := st.Put(ctx, h, data); err != nil {
				t.Fatal(err)
			}
		}
		flush(t, st)
		if n := count(t, st); n != 1 {
			t.Fatalf("walk after three puts of one chunk: %d chunks", n)
		}
	})
	t.Run("MissingSortedBatch", func(t *testing.T) {
		st := open(t)
		var have, all []cas.Hash
		for i := range 500 {
			data := fmt.Appendf(nil, "chunk %d", i)
			h := cas.Sum(data)
			all = append(all, h)
			if i%3 == 0 {
				if err := st.Put(ctx, h, data); err != nil {
					t.Fatal(err)
				}
				have = append(have, h)
			}
		}
		flush(t, st)
		// Duplicates in the query are answered once.
		got, err := st.Missing(ctx, append(slices.Clone(all), all[1], all[2]))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSortedFunc(got, cas.Hash.Compare) {
			t.Fatal("missing hashes are not in ascending order")
		}
		if len(got) != len(all)-len(have) {
			t.Fatalf("missing %d, want %d", len(got), len(all)-len(have))
		}
		for _, h := range got {
			if slices.Contains(have, h) {
				t.Fatalf("%s reported missing but stored", h)
			}
		}
		if got, err := st.Missing(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("missing of nothing: %v %v", got, err)
		}
	})
	t.Run("WalkInOrder", func(t *testing.T) {
		st := open(t)
		want := map[cas.Hash]int64{}
		for i := range 100 {
			data := bytes.Repeat([]byte{byte(i)}, 100+i)
			h := cas.Sum(data)
			want[h] = int64(len(data))
			if err := st.Put(ctx, h, data); err != nil {
				t.Fatal(err)
			}
		}
		flush(t, st)
		var prev cas.Hash
		n := 0
		err := st.Walk(ctx, func(ci cas.ChunkInfo) error {
			if n > 0 && prev.Compare(ci.Hash) >= 0 {
				return fmt.Errorf("walk out of order at %s", ci.Hash)
			}
			if want[ci.Hash] != ci.Size {
				return fmt.Errorf("walk: %s size %d, want %d", ci.Hash, ci.Size, want[ci.Hash])
			}
			prev = ci.Hash
			n++
			return nil
		})
		if err != nil || n != len(want) {
			t.Fatalf("walk: %v, %d chunks of %d", err, n, len(want))
		}
	})
	t.Run("Delete", func(t *testing.T) {
		st := open(t)
		var hs []cas.Hash
		for i := range 50 {
			data := fmt.Appendf(nil, "deletable %d %s", i, bytes.Repeat([]byte("x"), 1000))
			h := cas.Sum(data)
			hs = append(hs, h)
			if err := st.Put(ctx, h, data); err != nil {
				t.Fatal(err)
			}
		}
		flush(t, st)
		if err := st.Delete(ctx, hs[:40]); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, []cas.Hash{cas.Sum([]byte("absent"))}); err != nil {
			t.Fatalf("delete of an absent chunk: %v", err)
		}
		for i, h := range hs {
			_, err := st.Get(ctx, h)
			if i < 40 && !errors.Is(err, cas.ErrNotFound) {
				t.Fatalf("deleted chunk %d: %v", i, err)
			}
			if i >= 40 && err != nil {
				t.Fatalf("kept chunk %d: %v", i, err)
			}
		}
		if n := count(t, st); n != 10 {
			t.Fatalf("walk after delete: %d chunks, want 10", n)
		}
	})
	t.Run("RawRoundTrip", func(t *testing.T) {
		src, dst := open(t), open(t)
		for _, data := range samples() {
			h := cas.Sum(data)
			if err := src.Put(ctx, h, data); err != nil {
				t.Fatal(err)
			}
			r, err := src.GetRaw(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			if r.Len != int64(len(data)) {
				t.Fatalf("raw length %d, want %d", r.Len, len(data))
			}
			if err := dst.PutRaw(ctx, h, r); err != nil {
				t.Fatal(err)
			}
			got, err := dst.Get(ctx, h)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("after raw copy: %v", err)
			}
		}
	})
	t.Run("PutRawRejectsMismatch", func(t *testing.T) {
		st := open(t)
		h := cas.Sum([]byte("the real content"))
		bad := cas.Raw{Enc: cas.EncRaw, Len: 5, Data: []byte("forgd")}
		if err := st.PutRaw(ctx, h, bad); !errors.Is(err, cas.ErrCorrupt) {
			t.Fatalf("put raw of wrong bytes: %v, want ErrCorrupt", err)
		}
		garbled := cas.Raw{Enc: cas.EncZstd, Len: 16, Data: []byte("not a zstd frame")}
		if err := st.PutRaw(ctx, h, garbled); !errors.Is(err, cas.ErrCorrupt) {
			t.Fatalf("put raw of garbled zstd: %v, want ErrCorrupt", err)
		}
		flush(t, st)
		if n := count(t, st); n != 0 {
			t.Fatalf("a rejected chunk was stored (%d chunks)", n)
		}
	})
	t.Run("ConcurrentPuts", func(t *testing.T) {
		st := open(t)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					data := fmt.Appendf(nil, "shared %d", (i+g)%300)
					if err := st.Put(ctx, cas.Sum(data), data); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		flush(t, st)
		if n := count(t, st); n != 207 {
			t.Fatalf("%d distinct chunks stored, want 207", n)
		}
	})
}

func flush(t *testing.T, st cas.Store) {
	t.Helper()
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, st cas.Store) int {
	t.Helper()
	n := 0
	if err := st.Walk(context.Background(), func(cas.ChunkInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// samples: empty, tiny, compressible, incompressible and maximal content.
func samples() [][]byte {
	noise := make([]byte, cas.MaxChunk)
	x := uint64(88172645463325252)
	for i := range noise {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		noise[i] = byte(x)
	}
	return [][]byte{
		{},
		[]byte("a"),
		bytes.Repeat([]byte("compressible text "), 4000),
		noise[:70000],
		noise,
	}
}
