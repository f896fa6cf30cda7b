package cas

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// Many small flushes (a server receiving tiny uploads) go on in the same pack instead of
// making a pack each; everything stays readable, after a reopen too.
func TestSmallFlushesShareAPack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenLocalWith(ctx, dir, LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var hs []Hash
	for i := range 200 {
		data := fmt.Appendf(nil, "tiny upload %d", i)
		h := Sum(data)
		hs = append(hs, h)
		if err := s.Put(ctx, h, data); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("200 small flushes made %d packs, want 1", len(packs))
	}
	s.Close()
	s, err = OpenLocalWith(ctx, dir, LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, h := range hs {
		if _, err := s.Get(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := VerifyAll(ctx, s); err != nil || len(rep.Corrupt) != 0 || rep.Chunks != 200 {
		t.Fatalf("verify: %d chunks, %v %v", rep.Chunks, rep.Corrupt, err)
	}
}

// However many packs a store has, reading them all keeps at most maxOpenPacks open.
func TestOpenPackFilesAreBounded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var hs []Hash
	for i := range maxOpenPacks + 40 { // a pack per process, as many processes would leave
		s, err := OpenLocalWith(ctx, dir, LocalOptions{Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		data := fmt.Appendf(nil, "pack %d", i)
		h := Sum(data)
		hs = append(hs, h)
		if err := s.Put(ctx, h, data); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenLocalWith(ctx, dir, LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if len(packs) != len(hs) {
		t.Fatalf("%d packs", len(packs))
	}
	for _, h := range hs {
		if _, err := s.Get(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.files.open(); n > maxOpenPacks {
		t.Fatalf("%d pack files open, bound %d", n, maxOpenPacks)
	}
}
