package cas

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/bits"

	"github.com/cockroachdb/pebble/v2"
	"github.com/zeebo/blake3"
)

// The tree cache: an ingest of the same inputs that finds on disk what the last one found
// makes the same tree, and need not make it again. Invariants:
//   - An entry is keyed by the inputs' description (sources, destinations, modes: treeKey)
//     and holds the store's epoch, the tree made, its totals and what was skipped, and the
//     walk's sum: a sum mod 2^256 of hashes, so that the walk's order does not matter: one
//     per directory read (its path on disk and in the tree, then a record of each of its
//     directories, files, links and skipped entries in name order: name, mode, a file's
//     stat, a link's target; walk.go's listWalker), one per input (its path on disk and in
//     the tree, its mode and stat, or for content held in memory its hash).
//   - A file is trusted on its stat, as the stat cache trusts it (statcache.go): the same
//     path with the same size, times, inode, device and mode is taken to hold the same bytes.
//   - It is used only in the epoch it names (epoch.go) and while the tree's manifest is
//     known stored in that epoch: every chunk the tree names is still in the store.
//   - An ingest that could not vouch for every file (a stat without inode or times) or
//     whose epoch is unknown records nothing; an input whose content comes later (a lock
//     made during the ingest) sends the ingest the usual way.
//   - A sum that differs costs one walk more (~45 ms for ml-v1, its directories read
//     twice) before the usual ingest; one that matches spares the stat cache's snapshot,
//     the workers, the manifest's sort and hash.

// walkSum is a sum of 256-bit hashes (little-endian words) and their count.
type walkSum struct {
	n uint64
	s [4]uint64
}

// add counts the record rec.
func (w *walkSum) add(rec []byte) {
	h := Sum(rec)
	var c uint64
	for i := range w.s {
		w.s[i], c = bits.Add64(w.s[i], binary.LittleEndian.Uint64(h[8*i:]), c)
	}
	w.n++
}

// merge adds o's records.
func (w *walkSum) merge(o walkSum) {
	var c uint64
	for i := range w.s {
		w.s[i], c = bits.Add64(w.s[i], o.s[i], c)
	}
	w.n += o.n
}

// Kinds of walk records.
const (
	recDir     = 'd'
	recFile    = 'f'
	recLink    = 'l'
	recSkipped = 's'
	recMemory  = 'm'
	recDirList = 'D' // a directory read: its paths and its entries' records (listWalker)
)

// walkRecord appends to buf[:0] the record of one input an ingest met: its kind, its path
// on disk, its path in the tree, its mode, a file's stat, and a link's target (or the hash
// of content held in memory). What the walks find inside a directory input is summed a
// directory at a time (walk.go's listWalker).
func walkRecord(buf []byte, kind byte, abs, dest string, mode uint32, st *fileStat, target string) []byte {
	b := append(buf[:0], kind)
	b = binary.AppendUvarint(b, uint64(len(abs)))
	b = append(b, abs...)
	b = binary.AppendUvarint(b, uint64(len(dest)))
	b = append(b, dest...)
	b = binary.AppendUvarint(b, uint64(mode))
	if st != nil {
		b = st.append(b)
	}
	b = binary.AppendUvarint(b, uint64(len(target)))
	return append(b, target...)
}

// treeKey is the tree cache's key for inputs: their sources (none for content held or
// made later), destinations and modes, in order.
func treeKey(inputs []Input) []byte {
	hr := blake3.New()
	var b []byte
	for _, in := range inputs {
		b = b[:0]
		b = binary.AppendUvarint(b, uint64(len(in.Src)))
		b = append(b, in.Src...)
		b = binary.AppendUvarint(b, uint64(len(in.Dest)))
		b = append(b, in.Dest...)
		b = binary.AppendUvarint(b, uint64(in.Mode))
		hr.Write(b)
	}
	var h Hash
	hr.Sum(h[:0])
	return append([]byte{prefixTree}, h[:]...)
}

// treeEntry is a tree cache entry.
type treeEntry struct {
	epoch   epoch
	tree    Hash
	sum     walkSum
	totals  Totals
	skipped []string
}

func (t *treeEntry) encode() []byte {
	b := append([]byte(nil), t.epoch[:]...)
	b = append(b, t.tree[:]...)
	b = binary.AppendUvarint(b, t.sum.n)
	for _, w := range t.sum.s {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	b = binary.AppendUvarint(b, uint64(t.totals.Files))
	b = binary.AppendUvarint(b, uint64(t.totals.Dirs))
	b = binary.AppendUvarint(b, uint64(t.totals.Links))
	b = binary.AppendUvarint(b, uint64(t.totals.Size))
	b = binary.AppendUvarint(b, uint64(len(t.skipped)))
	for _, s := range t.skipped {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// decodeTreeEntry reads an entry; ok is false for bytes that are not one (a cache is
// trusted for what it says, not for its form).
func decodeTreeEntry(b []byte) (t treeEntry, ok bool) {
	d := reader{b: b}
	copy(t.epoch[:], d.bytes(uint64(len(t.epoch))))
	copy(t.tree[:], d.bytes(HashSize))
	t.sum.n = d.uvarint()
	for i := range t.sum.s {
		if w := d.bytes(8); len(w) == 8 { // a read past the end fails d, and gives nothing
			t.sum.s[i] = binary.LittleEndian.Uint64(w)
		}
	}
	t.totals.Files = int(d.uvarint())
	t.totals.Dirs = int(d.uvarint())
	t.totals.Links = int(d.uvarint())
	t.totals.Size = int64(d.uvarint())
	n := d.uvarint()
	if n > d.left() {
		return t, false
	}
	for range n {
		t.skipped = append(t.skipped, string(d.bytes(d.uvarint())))
	}
	return t, !d.failed() && len(d.b) == 0
}

// treeEntryOf returns the tree cache's entry for key, if it has one.
func (s *Local) treeEntryOf(key []byte) (t treeEntry, ok bool) {
	s.readCache(func(cache *pebble.DB) {
		if cache == nil {
			return
		}
		v, closer, err := cache.Get(key)
		if err != nil {
			return
		}
		t, ok = decodeTreeEntry(bytes.Clone(v))
		closer.Close()
	})
	return t, ok
}

// earlyWalked is the most records a tree cache's walk may have for Walked to come before
// it: ~12k for ml-v1 (a walk of ~45 ms); at ten times its size (~120k, a rebuild of
// 0.47 s) other processes would wait for the ledger through most of the walk.
const earlyWalked = 32 << 10

// sameTree answers for the tree cache: when it holds an entry for these inputs in the
// current epoch, whose tree is still known stored, the inputs are walked without storing
// anything, and if the walk's sum is the entry's, the entry's tree is the ingest's result.
// ok is false when the ingest must be made the usual way.
func (in *ingest) sameTree(ctx context.Context, inputs []Input, key []byte) (res *IngestResult, ok bool, err error) {
	s := in.s
	if !in.epoch.known() {
		return nil, false, nil
	}
	for _, input := range inputs {
		if input.Later != nil {
			return nil, false, nil
		}
	}
	te, ok := s.treeEntryOf(key)
	if !ok || te.epoch != in.epoch || !s.blobsKnown([]Hash{te.tree}, in.epoch) {
		return nil, false, nil
	}
	// What follows a hit (a build's ledger window, ~5-10 ms of synced writes to open) is
	// readied beside the walk when the walk is short: about as long as the usual
	// ingest's last steps, beside which the caller would have readied it anyway.
	early := te.sum.n <= earlyWalked && in.opt.Walked != nil && in.opt.Unwalked != nil
	if early {
		in.opt.Walked()
	}
	ln := &ingest{s: s, workers: in.workers, listOnly: true, opt: IngestOptions{Prewalk: in.opt.Prewalk}}
	err = ln.walk(ctx, inputs, nil)
	if err != nil || ln.unvouched.Load() || ln.sum != te.sum {
		if early {
			in.opt.Unwalked()
		}
		return nil, false, err
	}
	if p := in.opt.Progress; p != nil {
		p.Planned(te.totals.Files, te.totals.Size)
		p.Done(te.totals.Files, te.totals.Size)
	}
	if in.opt.Walked != nil && !early {
		in.opt.Walked()
	}
	return &IngestResult{Hash: te.tree, Totals: te.totals, Skipped: te.skipped, Reused: true}, true, nil
}
