package cas

import (
	"bytes"
	"math"
	"sort"
)

// chunkTable is the index's working copy of chunk locations. What the database held when
// the copy was loaded is a slice sorted by hash, filled in the order pebble's scan gives
// (no sort, no map: 64 bytes a chunk; heap profiles of an extract of ten times the ml
// corpus gave the map 13 MB and the slice 8, its capacity included); what this process
// learns later goes in a map beside it, and rows dropped later are marked.
type chunkTable struct {
	rows  []chunkRow // sorted by hash, unique
	added map[Hash]loc
}

// chunkRow is a loc whose offsets fit 32 bits (a pack entry's header gives its lengths in
// 32 bits already); one that does not goes in added.
type chunkRow struct {
	h                 Hash
	pack              uint64
	off, stored, size uint32
	inner             uint32
	enc               Encoding
	dead              bool
}

func (r *chunkRow) loc() loc {
	return loc{pack: r.pack, off: int64(r.off), stored: int64(r.stored), size: int64(r.size), enc: r.enc, inner: int64(r.inner)}
}

func fits32(v int64) bool { return v >= 0 && v <= math.MaxUint32 }

// load adds h → l while the table is filled from the database. Rows must come in
// ascending hash order; one out of order, or that does not fit a row, goes in added.
func (t *chunkTable) load(h Hash, l loc) {
	n := len(t.rows)
	if (n == 0 || bytes.Compare(t.rows[n-1].h[:], h[:]) < 0) && fits32(l.off) && fits32(l.stored) && fits32(l.size) && fits32(l.inner) {
		t.rows = append(t.rows, chunkRow{h: h, pack: l.pack, off: uint32(l.off), stored: uint32(l.stored), size: uint32(l.size), inner: uint32(l.inner), enc: l.enc})
		return
	}
	t.set(h, l)
}

// row returns h's live row, or nil.
func (t *chunkTable) row(h Hash) *chunkRow {
	i := sort.Search(len(t.rows), func(i int) bool { return bytes.Compare(t.rows[i].h[:], h[:]) >= 0 })
	if i == len(t.rows) || t.rows[i].h != h || t.rows[i].dead {
		return nil
	}
	return &t.rows[i]
}

func (t *chunkTable) get(h Hash) (loc, bool) {
	if l, ok := t.added[h]; ok {
		return l, true
	}
	if r := t.row(h); r != nil {
		return r.loc(), true
	}
	return loc{}, false
}

// set records h → l, over any row of h.
func (t *chunkTable) set(h Hash, l loc) {
	if r := t.row(h); r != nil {
		r.dead = true
	}
	if t.added == nil {
		t.added = map[Hash]loc{}
	}
	t.added[h] = l
}

func (t *chunkTable) delete(h Hash) {
	delete(t.added, h)
	if r := t.row(h); r != nil {
		r.dead = true
	}
}

// all returns every chunk's location in a map of its own.
func (t *chunkTable) all() map[Hash]loc {
	m := make(map[Hash]loc, len(t.rows)+len(t.added))
	for i := range t.rows {
		if r := &t.rows[i]; !r.dead {
			m[r.h] = r.loc()
		}
	}
	for h, l := range t.added {
		m[h] = l
	}
	return m
}
