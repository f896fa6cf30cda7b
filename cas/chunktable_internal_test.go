package cas

import (
	"math"
	"testing"
)

func TestChunkTable(t *testing.T) {
	h := func(b byte) Hash { var x Hash; x[0] = b; return x }
	var tb chunkTable
	tb.load(h(1), loc{pack: 7, off: 10, stored: 20, size: 30, enc: EncZstd})
	tb.load(h(3), loc{pack: 7, off: 40, stored: 5, size: 9, enc: EncGroup, inner: 2})
	tb.load(h(2), loc{pack: 8, off: 1})                  // out of order: kept beside
	tb.load(h(5), loc{pack: 9, off: math.MaxUint32 + 1}) // too far for a row: kept beside
	if len(tb.rows) != 2 || len(tb.added) != 2 {
		t.Fatalf("rows %d added %d, want 2 and 2", len(tb.rows), len(tb.added))
	}
	want := map[Hash]loc{
		h(1): {pack: 7, off: 10, stored: 20, size: 30, enc: EncZstd},
		h(3): {pack: 7, off: 40, stored: 5, size: 9, enc: EncGroup, inner: 2},
		h(2): {pack: 8, off: 1},
		h(5): {pack: 9, off: math.MaxUint32 + 1},
	}
	for k, l := range want {
		if got, ok := tb.get(k); !ok || got != l {
			t.Errorf("get %x = %+v %v, want %+v", k[0], got, ok, l)
		}
	}
	if _, ok := tb.get(h(4)); ok {
		t.Error("a chunk never added is found")
	}
	tb.set(h(1), loc{pack: 11, off: 3}) // moved (repack): the new place wins
	if got, _ := tb.get(h(1)); got.pack != 11 {
		t.Errorf("after set, pack %d, want 11", got.pack)
	}
	tb.delete(h(1))
	tb.delete(h(3))
	tb.delete(h(5))
	for _, k := range []Hash{h(1), h(3), h(5)} {
		if _, ok := tb.get(k); ok {
			t.Errorf("%x found after delete", k[0])
		}
	}
	all := tb.all()
	if len(all) != 1 || all[h(2)] != want[h(2)] {
		t.Errorf("all = %v, want only 02", all)
	}
	tb.set(h(3), loc{pack: 12}) // stored again after gc dropped it
	if got, ok := tb.get(h(3)); !ok || got.pack != 12 {
		t.Errorf("re-added: %+v %v", got, ok)
	}
}
