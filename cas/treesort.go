package cas

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/zeebo/blake3"
)

// treeSort: a manifest made from entries given in any order, as the walk finds them and
// the workers finish them. Invariants:
//   - An entry is kept as its encoding in the manifest (~160 bytes a file), in a spill
//     (spill.go), sorted by path: a build's memory does not grow with its tree, but for
//     the encoded manifest at the end, which is one blob.
//   - The bytes made are Manifest.Encode's for the same entries, so a tree keeps its name,
//     and they are checked by Validate's rules (validator) as they are made.
type treeSort struct{ sp *spill }

func newTreeSort(dir string) *treeSort {
	sp := newSpill(dir, recordPath)
	sp.max = MaxBlob - int64(len(manifestMagic)) - binary.MaxVarintLen64 // a tree too large fails as it is walked
	return &treeSort{sp: sp}
}

// recordPath is the path of an encoded entry.
func recordPath(rec []byte) []byte {
	n, k := binary.Uvarint(rec)
	return rec[k : k+int(n)]
}

// add keeps e (copied).
func (t *treeSort) add(e *Entry) error {
	if t == nil { // a walk that only counts (PlanInputs)
		return nil
	}
	err := t.sp.add(entryLen(e), func(b []byte) []byte { return appendEntry(b, e) })
	if errors.Is(err, errSpillFull) {
		return fmt.Errorf("tree: manifest %w: its entries pass %d MiB", ErrTooLarge, MaxBlob>>20)
	}
	return err
}

// sum returns the hash of the manifest of every entry added, and its totals, without
// making its bytes: an unchanged tree's manifest is stored already, and at 10 × the ml
// corpus its 17 MB, in fresh pages, cost a rebuild ~50 ms.
func (t *treeSort) sum() (Hash, Totals, error) {
	hr := blake3.New()
	bw := bufio.NewWriterSize(hr, 64<<10) // whole blocks for blake3, not one record at a time
	bw.Write(t.header())
	tot, err := t.merge(func(string) Kind { return 0 }, func(rec []byte) { bw.Write(rec) })
	if err != nil {
		// An entry under a file or a link: the error names which, which needs the
		// entries before it; encode keeps them, and its checks are the same.
		if _, _, encErr := t.encode(); encErr != nil {
			return Hash{}, tot, encErr
		}
		return Hash{}, tot, err
	}
	bw.Flush() // a hash.Hash's Write never fails
	var h Hash
	hr.Sum(h[:0])
	return h, tot, nil
}

// encode returns the manifest of every entry added, and its totals.
func (t *treeSort) encode() ([]byte, Totals, error) {
	out := make([]byte, 0, len(manifestMagic)+binary.MaxVarintLen64+int(t.sp.size))
	out = append(out, t.header()...)
	start := len(out)
	tot, err := t.merge(func(p string) Kind { return kindIn(out[start:], p) }, func(rec []byte) { out = append(out, rec...) })
	if err != nil {
		return nil, tot, err
	}
	return out, tot, nil
}

// header is what the manifest's bytes begin with: its magic and its count of entries.
func (t *treeSort) header() []byte {
	return binary.AppendUvarint([]byte(manifestMagic), uint64(t.sp.count))
}

// merge gives every entry's record to fn in the manifest's order, checked by Validate's
// rules as it goes (kindOf: the kind of an earlier entry, for the error), and returns
// their totals.
func (t *treeSort) merge(kindOf func(string) Kind, fn func(rec []byte)) (Totals, error) {
	var tot Totals
	v := validator{kinds: map[string]Kind{}}
	var e Entry // one for every record: made for each, it was a tenth of a rebuild's sum
	err := t.sp.each(func(rec []byte) error {
		e = Entry{}
		d := reader{b: rec}
		nch := d.entry(uint64(v.i), &e, false)
		if d.err != nil || len(d.b) != 0 {
			return fmt.Errorf("%w: entry %d: spilled record is damaged", ErrBadManifest, v.i)
		}
		if v.i > 0 && e.Path == v.prev {
			return fmt.Errorf("tree has %q twice", e.Path)
		}
		if err := v.next(&e, nch, kindOf); err != nil {
			return err
		}
		tot.add(&e)
		fn(rec)
		return nil
	})
	return tot, err
}

// kindIn finds the kind of the entry at path p among encoded entries (0: none).
func kindIn(recs []byte, p string) Kind {
	d := reader{b: recs}
	for i := uint64(0); len(d.b) > 0 && d.err == nil; i++ {
		var e Entry
		if d.entry(i, &e, false); e.Path == p {
			return e.Kind
		}
	}
	return 0
}

// close lets go of what the sort holds.
func (t *treeSort) close() { t.sp.close() }
