package bench

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/corpus"
)

// mlChunks cuts ml-v1's files as ingest does (whole up to 512 KiB, FastCDC beyond) and
// returns its distinct chunks: those under cas.GroupMax, and the larger ones by file.
func mlChunks(b *testing.B) (small [][]byte, large [][][]byte) {
	dir, err := corpus.Dir()
	if err != nil {
		b.Skip(err)
	}
	seen := map[cas.Hash]bool{}
	filepath.WalkDir(filepath.Join(dir, "ml-v1"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		data, _ := os.ReadFile(p)
		var file [][]byte
		for len(data) > 0 {
			n := len(data)
			if n > cas.MaxChunk {
				n = cas.Cut(data)
			}
			c := data[:n]
			data = data[n:]
			if h := cas.Sum(c); !seen[h] {
				seen[h] = true
				if len(c) < cas.GroupMax {
					small = append(small, c)
				} else {
					file = append(file, c)
				}
			}
		}
		if len(file) > 0 {
			large = append(large, file)
		}
		return nil
	})
	return small, large
}

// groups concatenates chunks, in order, into groups of at least size bytes.
func groups(chunks [][]byte, size int) [][]byte {
	var out [][]byte
	var cur []byte
	for _, c := range chunks {
		if cur = append(cur, c...); len(cur) >= size {
			out = append(out, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// BenchmarkCompressML compresses ml-v1's new chunks on one core, one frame each or in
// groups, at zstd's default and fastest levels: the measurements behind compressing
// every chunk in a group at SpeedFastest (DESIGN.md). It reports the stored MB.
//
//	go test -run '^$' -bench CompressML -benchtime 3x -cpu 1 ./bench
func BenchmarkCompressML(b *testing.B) {
	small, byFile := mlChunks(b)
	var large [][]byte
	for _, f := range byFile {
		large = append(large, f...)
	}
	var largeGroups [][]byte
	for _, f := range byFile {
		largeGroups = append(largeGroups, groups(f, 2<<20)...)
	}
	sets := []struct {
		name   string
		frames [][]byte
	}{
		{"large/each", large},
		{"large/2MiB-groups", largeGroups},
		{"small/512KiB-groups", groups(small, 512<<10)},
		{"small/1MiB-groups", groups(small, 1<<20)},
	}
	for _, lvl := range []zstd.EncoderLevel{zstd.SpeedDefault, zstd.SpeedFastest} {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1),
			zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
		if err != nil {
			b.Fatal(err)
		}
		for _, set := range sets {
			b.Run(set.name+"/"+lvl.String(), func(b *testing.B) {
				var in, out int64
				var buf []byte
				for range b.N {
					in, out = 0, 0
					for _, f := range set.frames {
						buf = enc.EncodeAll(f, buf[:0])
						in += int64(len(f))
						out += int64(min(len(buf), len(f))) // stored raw when zstd does not help
					}
				}
				b.SetBytes(in)
				b.ReportMetric(float64(out)/1e6, "MB-stored")
			})
		}
	}
}
