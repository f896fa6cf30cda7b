package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/swcli/swcli/cas"
)

func noise(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// BenchmarkChunkAndHash is FastCDC cut-point search plus blake3 of every chunk, on one
// core: the work ingest does on every new byte besides compression. Target ≥ 1 GB/s.
func BenchmarkChunkAndHash(b *testing.B) {
	data := noise(64 << 20)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		for rest := data; len(rest) > 0; {
			n := cas.Cut(rest)
			_ = cas.Sum(rest[:n])
			rest = rest[n:]
		}
	}
}

// BenchmarkMissing100k asks a store holding 200k chunks which of 100k hashes (half
// present) it lacks: copy's batched existence check. Target: well under a second.
func BenchmarkMissing100k(b *testing.B) {
	ctx := context.Background()
	s, err := cas.OpenLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var query []cas.Hash
	for i := range 200_000 {
		data := fmt.Appendf(nil, "chunk %d", i)
		h := cas.Sum(data)
		if err := s.Put(ctx, h, data); err != nil {
			b.Fatal(err)
		}
		if i%4 == 0 {
			query = append(query, h)
		}
	}
	for i := range 50_000 {
		query = append(query, cas.Sum(fmt.Appendf(nil, "absent %d", i)))
	}
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		miss, err := s.Missing(ctx, query)
		if err != nil || len(miss) != 50_000 {
			b.Fatalf("%d missing, %v", len(miss), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/100_000, "µs/hash")
}
