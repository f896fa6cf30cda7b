package cas

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
)

// spill: records an ingest keeps for its end (the manifest's entries, the stat cache's),
// in memory bounded whatever the tree's size. Invariants:
//   - Records are byte strings, added in any order from any goroutine. Past limit bytes
//     the records held are written to a temporary file as one run (sorted first, if the
//     spill has an order) and memory is reused: what a build holds does not grow with
//     the number of files it walks.
//   - The file is unlinked as soon as it is made: a crash leaves nothing behind.
//   - each gives every record, after the last add, as often as it is called: in order
//     (runs merged), or in the order they came.

type spill struct {
	dir   string
	limit int
	max   int64                   // bound on the records' bytes (0: none)
	key   func(rec []byte) []byte // records come back in the order of their keys; nil: as they came

	mu    sync.Mutex
	buf   []byte   // records held: uvarint(len) bytes, ...
	offs  []uint32 // where each record held starts in buf
	count int      // records added
	size  int64    // their bytes (the records', without lengths)
	f     *os.File // runs written so far, back to back
	end   int64
	runs  []spillRun
}

type spillRun struct{ off, n int64 }

// spillLimit is what a spill holds in memory before it writes a run.
var spillLimit = 4 << 20

// errSpillFull is add's answer past a spill's max.
var errSpillFull = errors.New("spill: past its bound")

func newSpill(dir string, key func(rec []byte) []byte) *spill {
	return &spill{dir: dir, limit: spillLimit, key: key}
}

// add keeps the record of n bytes that write appends to the slice it is given.
func (s *spill) add(n int, write func([]byte) []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.max > 0 && s.size+int64(n) > s.max {
		return errSpillFull
	}
	if s.buf == nil {
		// Room for a run at once: grown by append instead, ml-v1's 1.8 MB of entries cost
		// an unchanged rebuild 15–21 ms more (copies, and fresh pages).
		s.buf = make([]byte, 0, s.limit+64<<10)
	}
	s.offs = append(s.offs, uint32(len(s.buf)))
	s.buf = binary.AppendUvarint(s.buf, uint64(n))
	at := len(s.buf)
	if s.buf = write(s.buf); len(s.buf)-at != n {
		panic("spill: record of the wrong length")
	}
	s.count++
	s.size += int64(n)
	if len(s.buf) < s.limit {
		return nil
	}
	return s.writeRun()
}

// record returns the record held at buf[off:], alone and with its length before it.
func (s *spill) record(off uint32) (rec, framed []byte) {
	n, k := binary.Uvarint(s.buf[off:])
	framed = s.buf[off : int(off)+k+int(n)]
	return framed[k:], framed
}

// sorted orders the records held. Their keys are found once, not at each comparison,
// and many are sorted in two halves at once, then merged: a tree's sort is on a build's
// path after its walk (ml-v1's 12k entries: 4.5–9 → 3.3–4 ms of a rebuild's ~120).
func (s *spill) sorted() {
	if s.key == nil {
		return
	}
	ks := make([]keyedRecord, len(s.offs))
	for i, off := range s.offs {
		rec, _ := s.record(off)
		ks[i] = keyedRecord{s.key(rec), off}
	}
	cmp := func(a, b keyedRecord) int { return bytes.Compare(a.key, b.key) }
	if len(ks) < sortSplit {
		slices.SortFunc(ks, cmp)
		for i, k := range ks {
			s.offs[i] = k.off
		}
		return
	}
	a, b := ks[:len(ks)/2], ks[len(ks)/2:]
	var wg sync.WaitGroup
	wg.Go(func() { slices.SortFunc(a, cmp) })
	slices.SortFunc(b, cmp)
	wg.Wait()
	out := s.offs[:0]
	for len(a) > 0 && len(b) > 0 {
		if cmp(b[0], a[0]) < 0 {
			out, b = append(out, b[0].off), b[1:]
		} else {
			out, a = append(out, a[0].off), a[1:]
		}
	}
	for _, k := range a {
		out = append(out, k.off)
	}
	for _, k := range b {
		out = append(out, k.off)
	}
}

type keyedRecord struct {
	key []byte
	off uint32
}

// sortSplit is the number of records from which sorted sorts halves at once.
const sortSplit = 4096

// writeRun writes the records held to the file as one run and forgets them.
func (s *spill) writeRun() error {
	if len(s.offs) == 0 {
		return nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, ".spill-*")
		if err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return fmt.Errorf("spill: %w", err)
		}
		s.f = f
	}
	s.sorted()
	bw := bufio.NewWriterSize(io.NewOffsetWriter(s.f, s.end), 64<<10)
	var n int64
	for _, off := range s.offs {
		_, framed := s.record(off)
		k, _ := bw.Write(framed) // an error stays with bw: Flush returns it
		n += int64(k)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	s.runs = append(s.runs, spillRun{off: s.end, n: n})
	s.end += n
	s.buf, s.offs = s.buf[:0], s.offs[:0]
	return nil
}

// each calls fn with every record, in order if the spill has one; rec is valid only during
// the call. It may be called again (a tree is summed, then encoded if new) and gives the
// same records: once runs are written the last records held join them, and every call
// reads the runs back from the file.
func (s *spill) each(fn func(rec []byte) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.runs) == 0 {
		s.sorted()
		for _, off := range s.offs {
			rec, _ := s.record(off)
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.writeRun(); err != nil {
		return err
	}
	s.buf, s.offs = nil, nil
	h := &runHeap{key: s.key}
	for _, r := range s.runs {
		rr := &runReader{r: bufio.NewReaderSize(io.NewSectionReader(s.f, r.off, r.n), 32<<10)}
		if err := rr.next(); err != nil {
			return err
		}
		if rr.ok {
			h.rs = append(h.rs, rr)
		}
	}
	if s.key == nil { // in the order written: run after run
		for _, rr := range h.rs {
			for rr.ok {
				if err := fn(rr.rec); err != nil {
					return err
				}
				if err := rr.next(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	heap.Init(h)
	for h.Len() > 0 {
		rr := h.rs[0]
		if err := fn(rr.rec); err != nil {
			return err
		}
		if err := rr.next(); err != nil {
			return err
		}
		if !rr.ok {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
	}
	return nil
}

// close lets go of the file and the records.
func (s *spill) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.buf, s.offs = nil, nil
}

// runReader reads one run's records back.
type runReader struct {
	r   *bufio.Reader
	ok  bool   // rec is a record: the run has not ended
	rec []byte // the current record
	buf []byte
}

func (rr *runReader) next() error {
	n, err := binary.ReadUvarint(rr.r)
	if err == io.EOF {
		rr.ok, rr.rec = false, nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	if uint64(cap(rr.buf)) < n {
		rr.buf = make([]byte, n)
	}
	rr.rec = rr.buf[:n]
	if _, err := io.ReadFull(rr.r, rr.rec); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	rr.ok = true
	return nil
}

// runHeap orders runs by their current records.
type runHeap struct {
	rs  []*runReader
	key func(rec []byte) []byte
}

func (h *runHeap) Len() int { return len(h.rs) }
func (h *runHeap) Less(i, j int) bool {
	return bytes.Compare(h.key(h.rs[i].rec), h.key(h.rs[j].rec)) < 0
}
func (h *runHeap) Swap(i, j int) { h.rs[i], h.rs[j] = h.rs[j], h.rs[i] }
func (h *runHeap) Push(x any)    { h.rs = append(h.rs, x.(*runReader)) }
func (h *runHeap) Pop() any {
	x := h.rs[len(h.rs)-1]
	h.rs = h.rs[:len(h.rs)-1]
	return x
}
