package cas_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/swcli/swcli/cas"
)

// smallTree writes n small, compressible files: what ingest stores in groups.
func smallTree(t *testing.T, n int) string {
	dir := t.TempDir()
	for i := range n {
		body := fmt.Sprintf("# module %d\n", i)
		for j := range 40 {
			body += fmt.Sprintf("def f%d_%d(x):\n    return x * %d\n", i, j, j)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("m%04d.py", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestGroupedChunks(t *testing.T) {
	ctx := context.Background()
	src := smallTree(t, 600)
	// And large files, whose chunks are grouped too (up to 2 MiB a group).
	for i := range 3 {
		var body []byte
		for j := 0; len(body) < 3<<20; j++ {
			body = fmt.Appendf(body, "line %d of file %d\n", j, i)
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("lib%d.so", i)), body, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dirA := t.TempDir()
	a := openLocal(t, dirA)
	res, err := cas.Ingest(ctx, a, []cas.Input{{Src: src}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.NewStored*5 > res.NewBytes {
		t.Fatalf("600 similar small files stored %d bytes of %d: not compressed together", res.NewStored, res.NewBytes)
	}
	chunks := res.Manifest.Chunks()

	// Each grouped chunk leaves the store on its own, verified, and enters another.
	b := openLocal(t, t.TempDir())
	for _, h := range chunks {
		r, err := a.GetRaw(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if r.Enc == cas.EncGroup {
			t.Fatalf("GetRaw of %s answered a group", h)
		}
		if err := b.PutRaw(ctx, h, r); err != nil {
			t.Fatal(err)
		}
	}

	// A pack of groups that an index does not know is re-indexed at open.
	dirC := t.TempDir()
	c, err := cas.OpenLocal(dirC)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	packs, _ := filepath.Glob(filepath.Join(dirA, "packs", "*.pack"))
	for i, p := range packs {
		data, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(dirC, "packs", fmt.Sprintf("%016x.pack", 100+i)), data, 0o644)
	}
	c = openLocal(t, dirC)
	if miss, err := c.Missing(ctx, chunks); err != nil || len(miss) != 0 {
		t.Fatalf("after re-indexing packs of groups: %d missing, %v", len(miss), err)
	}
	out := filepath.Join(t.TempDir(), "o")
	if err := cas.Materialize(ctx, c, res.Manifest, out, cas.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}

	// Deleting most chunks of the groups keeps the rest readable.
	if err := a.Delete(ctx, chunks[:500]); err != nil {
		t.Fatal(err)
	}
	for _, h := range chunks[500:] {
		if _, err := a.Get(ctx, h); err != nil {
			t.Fatalf("survivor of a repacked group: %v", err)
		}
	}
	rep, err := cas.VerifyAll(ctx, a)
	if err != nil || len(rep.Corrupt) > 0 {
		t.Fatalf("verify after delete: %v %v", rep.Corrupt, err)
	}
}
