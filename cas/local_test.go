package cas_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/cas/storetest"
	"github.com/swcli/swcli/internal/flock"
)

func openLocal(t *testing.T, dir string) *cas.Local {
	t.Helper()
	s, err := cas.OpenLocalWith(context.Background(), dir, cas.LocalOptions{Exclusive: true, CacheDir: filepath.Join(dir, "statcache")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// manifestOf loads the manifest h from g.
func manifestOf(t *testing.T, g cas.Getter, h cas.Hash) *cas.Manifest {
	t.Helper()
	m, err := cas.LoadManifest(context.Background(), g, h)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLocalConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cas.Store { return openLocal(t, t.TempDir()) })
}

func putN(t *testing.T, s cas.Store, n, size int, tag string) []cas.Hash {
	t.Helper()
	var hs []cas.Hash
	for i := range n {
		data := []byte(fmt.Sprintf("%s %d ", tag, i))
		data = append(data, noise(int64(i), size)...)
		h := cas.Sum(data)
		if err := s.Put(context.Background(), h, data); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return hs
}

func noise(seed int64, n int) []byte {
	b := make([]byte, n)
	x := uint64(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func TestLocalPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := cas.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	hs := putN(t, s, 20, 5000, "persist")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openLocal(t, dir)
	miss, err := s2.Missing(context.Background(), hs)
	if err != nil || len(miss) != 0 {
		t.Fatalf("after reopen: %d missing, %v", len(miss), err)
	}
}

func TestLocalCorruptPackNamesChunk(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	data := noise(7, 4096)
	h := cas.Sum(data)
	if err := s.Put(context.Background(), h, data); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("%d packs, want 1", len(packs))
	}
	b, _ := os.ReadFile(packs[0])
	b[len(b)-10] ^= 0xff
	if err := os.WriteFile(packs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(context.Background(), h)
	if !errors.Is(err, cas.ErrCorrupt) || !strings.Contains(err.Error(), h.String()) {
		t.Fatalf("get of a flipped byte: %v, want ErrCorrupt naming %s", err, h)
	}
	rep, err := cas.VerifyAll(context.Background(), s)
	if err != nil || len(rep.Corrupt) != 1 || rep.Chunks != 1 {
		t.Fatalf("verify: %+v, %v; want one corrupt chunk", rep, err)
	}
}

func TestLocalOpenCleansCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	s, err := cas.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	hs := putN(t, s, 10, 3000, "kept")
	s.Close()

	// A pack written by another store but never indexed here (crash between rename and the
	// index batch), and an unfinished temp pack.
	other := t.TempDir()
	o, err := cas.OpenLocal(other)
	if err != nil {
		t.Fatal(err)
	}
	orphan := putN(t, o, 5, 3000, "orphan")
	o.Close()
	src, _ := filepath.Glob(filepath.Join(other, "packs", "*.pack"))
	b, _ := os.ReadFile(src[0])
	if err := os.WriteFile(filepath.Join(dir, "packs", "00000000000000ff.pack"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "packs", "0000000000000100.tmp")
	if err := os.WriteFile(tmp, []byte("SWPACK1\npartial"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := openLocal(t, dir)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp pack survived open: %v", err)
	}
	miss, err := s2.Missing(context.Background(), append(hs, orphan...))
	if err != nil || len(miss) != 0 {
		t.Fatalf("after open: %d chunks missing (%v); the orphan pack should be re-indexed", len(miss), err)
	}
	// New packs do not collide with the adopted one.
	putN(t, s2, 3, 3000, "after")
}

func TestLocalDeleteReclaimsPacks(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	hs := putN(t, s, 400, 200<<10, "bulk") // ~80 MB of noise: several packs
	before := packBytes(t, dir)
	if err := s.Delete(context.Background(), hs[:360]); err != nil {
		t.Fatal(err)
	}
	after := packBytes(t, dir)
	if after > before/4 {
		t.Fatalf("packs hold %d bytes after deleting 90%% of %d", after, before)
	}
	for _, h := range hs[360:] {
		if _, err := s.Get(context.Background(), h); err != nil {
			t.Fatalf("survivor lost: %v", err)
		}
	}
}

func packBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	for _, p := range packs {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func TestLocalCompressesWhenItPays(t *testing.T) {
	s := openLocal(t, t.TempDir())
	ctx := context.Background()
	text := bytes.Repeat([]byte("import numpy as np\n"), 3000)
	random := noise(3, 60000)
	for _, c := range []struct {
		data []byte
		want cas.Encoding
	}{{text, cas.EncZstd}, {random, cas.EncRaw}} {
		h := cas.Sum(c.data)
		if err := s.Put(ctx, h, c.data); err != nil {
			t.Fatal(err)
		}
		r, err := s.GetRaw(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if r.Enc != c.want {
			t.Fatalf("stored with encoding %d, want %d", r.Enc, c.want)
		}
	}
}

// Stores opened shared (what commands do) by two processes at once: each sees what the
// other committed, their packs never collide, Delete is refused, and an exclusive open
// waits for both and says for whom.
func TestSharedStoresSeeEachOther(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := cas.OpenLocalWith(ctx, dir, cas.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := cas.OpenLocalWith(ctx, dir, cas.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ha := putN(t, a, 30, 5000, "a") // a's index is loaded now
	hb := putN(t, b, 30, 5000, "b")
	for _, h := range hb {
		if _, err := a.Get(ctx, h); err != nil {
			t.Fatalf("a reads b's chunk after b committed it: %v", err)
		}
	}
	if m, err := a.Missing(ctx, append(slices.Clone(ha), hb...)); err != nil || len(m) != 0 {
		t.Fatalf("missing as a sees it: %d, %v", len(m), err)
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if len(packs) != 2 {
		t.Fatalf("%d packs, want one per writer: %v", len(packs), packs)
	}
	if err := a.Delete(ctx, ha[:1]); !errors.Is(err, cas.ErrNotExclusive) {
		t.Fatalf("delete on a shared store: %v", err)
	}
	var told []flock.Holder
	_, err = cas.OpenLocalWith(ctx, dir, cas.LocalOptions{Exclusive: true, LockTimeout: 1200 * time.Millisecond,
		OnWait: func(h flock.Holder) { told = append(told, h) }})
	if !errors.Is(err, flock.ErrBusy) {
		t.Fatalf("exclusive open beside shared ones: %v, want busy", err)
	}
	if len(told) != 1 || told[0].PID != os.Getpid() {
		t.Fatalf("the waiting open named %v", told)
	}
	a.Close()
	b.Close()
	x, err := cas.OpenLocalWith(ctx, dir, cas.LocalOptions{Exclusive: true, LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("exclusive open once the others closed: %v", err)
	}
	defer x.Close()
	if rep, err := cas.VerifyAll(ctx, x); err != nil || len(rep.Corrupt) != 0 || rep.Chunks != 60 {
		t.Fatalf("verify: %d chunks, %v, %v", rep.Chunks, rep.Corrupt, err)
	}
}
