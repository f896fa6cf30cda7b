package cas

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// These values are part of the store format. If a change makes one of them fail, it changes
// every chunk boundary or tree hash already stored: that needs a new format version, not a
// new golden value.

func TestGoldenGearTable(t *testing.T) {
	var b []byte
	for _, g := range gear {
		b = binary.LittleEndian.AppendUint64(b, g)
	}
	const want = "blake3:908f8fbf968d742af4888b6f7a80967f398ff7e3133fb784d87e7647b0459af8"
	if got := Sum(b).String(); got != want {
		t.Fatalf("gear table hash %s, want %s", got, want)
	}
}

func TestGoldenCutPoints(t *testing.T) {
	data := randBytes(42, 2<<20)
	var cuts []string
	for off := 0; off < len(data); {
		n := Cut(data[off:])
		off += n
		cuts = append(cuts, fmt.Sprint(off))
	}
	const want = "199384 422655 615691 748047 893576 1033015 1219718 1302416 1460014 1504089 1694989 1850570 1971581 2097152"
	if got := strings.Join(cuts, " "); got != want {
		t.Fatalf("cut points\n got %s\nwant %s", got, want)
	}
}

func TestGoldenManifestHash(t *testing.T) {
	m := &Manifest{Entries: []Entry{
		{Path: "bin", Kind: KindDir, Mode: 0o755},
		{Path: "bin/python", Kind: KindLink, Mode: 0o777, Target: "/usr/bin/python3"},
		{Path: "runtime.yaml", Kind: KindFile, Mode: 0o644, Size: 5, Chunks: []Hash{Sum([]byte("name:"))}},
	}}
	const want = "blake3:58bd0b417dabc830728d10307843382e80afedb575a4bd7a5aeb2cff1453103d"
	if got := m.Hash().String(); got != want {
		t.Fatalf("manifest hash %s, want %s", got, want)
	}
}

func TestGoldenHashText(t *testing.T) {
	const want = "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
	if got := Sum(nil).String(); got != want {
		t.Fatalf("hash of nothing %s, want %s (blake3's published empty digest)", got, want)
	}
}
