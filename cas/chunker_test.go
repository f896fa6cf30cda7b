package cas

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// randBytes returns n reproducible pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func chunkAll(t testing.TB, data []byte) [][]byte {
	t.Helper()
	c := NewChunker(bytes.NewReader(data))
	var out [][]byte
	for {
		ch, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(ch))
	}
}

func TestChunkerBounds(t *testing.T) {
	data := randBytes(1, 8<<20)
	chunks := chunkAll(t, data)
	if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
		t.Fatal("chunks do not reassemble the input")
	}
	for i, c := range chunks {
		if len(c) > MaxChunk || (len(c) < MinChunk && i != len(chunks)-1) {
			t.Fatalf("chunk %d has %d bytes, outside [%d, %d]", i, len(c), MinChunk, MaxChunk)
		}
	}
	avg := len(data) / len(chunks)
	if avg < AvgChunk/2 || avg > AvgChunk*2 {
		t.Fatalf("average chunk %d bytes, want near %d", avg, AvgChunk)
	}
}

func TestChunkerInsertionIsLocal(t *testing.T) {
	n := 100 << 20
	if testing.Short() {
		n = 16 << 20
	}
	data := randBytes(2, n)
	edited := append(append(append([]byte{}, data[:1000]...), []byte("a few bytes")...), data[1000:]...)
	a, b := chunkAll(t, data), chunkAll(t, edited)
	set := map[Hash]bool{}
	for _, c := range a {
		set[Sum(c)] = true
	}
	changed := 0
	for _, c := range b {
		if !set[Sum(c)] {
			changed++
		}
	}
	if changed > 2 {
		t.Fatalf("inserting 11 bytes changed %d of %d chunks, want at most 2", changed, len(b))
	}
}

func TestChunkerShortAndEmpty(t *testing.T) {
	if got := chunkAll(t, nil); len(got) != 0 {
		t.Fatalf("empty input gave %d chunks", len(got))
	}
	small := randBytes(3, 100)
	if got := chunkAll(t, small); len(got) != 1 || !bytes.Equal(got[0], small) {
		t.Fatalf("100-byte input gave %d chunks", len(got))
	}
}

func BenchmarkCut(b *testing.B) {
	data := randBytes(4, 64<<20)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rest := data
		for len(rest) > 0 {
			rest = rest[Cut(rest):]
		}
	}
}
