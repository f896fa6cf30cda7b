package ledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/swcli/swcli/cas"
)

// Filter selects events for Log. Zero fields match everything.
type Filter struct {
	Project, Runtime string
	Types            []Type
	Since, Until     time.Time // Since inclusive, Until exclusive
	FromSeq          uint64
}

// Match says whether the filter selects e.
func (f *Filter) Match(e *Event) bool { return f.match(e) }

func (f *Filter) match(e *Event) bool {
	return (f.Project == "" || e.Project == f.Project) &&
		(f.Runtime == "" || e.Runtime == f.Runtime) &&
		(len(f.Types) == 0 || slices.Contains(f.Types, e.Type)) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until))
}

// Log calls fn for every event the filter selects, in sequence order.
func log(ctx context.Context, r reader, f Filter, fn func(Event) error) error {
	return scanEvents(ctx, r, max(f.FromSeq, 1), 0, false, func(e *Event) error {
		if f.match(e) {
			return fn(*e)
		}
		return nil
	})
}

// scanEvents decodes events from seq from to to (0: the head) and calls fn in order.
// Reading and decoding (payloads included) run ahead on other goroutines while fn runs.
// With forApply, payloads are decoded ahead too, keeping only what apply reads: such
// events must not leave the package.
func scanEvents(ctx context.Context, r reader, from, to uint64, forApply bool, fn func(*Event) error) error {
	lo := eventKey(from)
	hi := []byte{keyEvent + 1}
	if to > 0 {
		hi = eventKey(to + 1)
	}
	// A batch holds the stored values back to back in one buffer, the events decoded from
	// them, and (forApply) their payloads. With forApply, fn keeps nothing of an event, so
	// batches go round: a million events cost a few batches, not a million small
	// allocations for the collector to chase.
	type batch struct {
		buf  []byte
		ends []int
		evs  []Event
		pre  []CopiedData
		err  error
	}
	const size = 2048
	workers := runtime.GOMAXPROCS(0)
	raws := make(chan *batch, 1)    // read, to decode
	batches := make(chan *batch, 2) // decoded, to fn
	free := make(chan *batch, 4)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }() // before the read ends: the goroutine uses r
	// Reading the values runs beside decoding the batch before.
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(raws)
		next := func() *batch {
			select {
			case b := <-free:
				b.buf, b.ends = b.buf[:0], b.ends[:0]
				return b
			default:
				return &batch{ends: make([]int, 0, size)}
			}
		}
		send := func(b *batch) bool {
			select {
			case raws <- b:
				return true
			case <-stop:
				return false
			}
		}
		b := next()
		errStop := errors.New("stop")
		err := r.scanRange(lo, hi, func(_, v []byte) error {
			b.buf = append(b.buf, v...)
			b.ends = append(b.ends, len(b.buf))
			if len(b.ends) == size {
				if !send(b) {
					return errStop
				}
				b = next()
			}
			return nil
		})
		switch {
		case err == errStop:
		case err != nil:
			send(&batch{err: err})
		case len(b.ends) > 0:
			send(b)
		}
	}()
	// Decoding runs on every core, a batch at a time, in order.
	go func() {
		defer wg.Done()
		defer close(batches)
		interns := make([]map[string]string, workers)
		for i := range interns {
			interns[i] = map[string]string{}
		}
		for b := range raws {
			if b.err == nil {
				b.err = decodeBatch(b.buf, b.ends, &b.evs, &b.pre, forApply, interns)
			}
			select {
			case batches <- b:
			case <-stop:
				return
			}
		}
	}()
	for b := range batches {
		if b.err != nil {
			return b.err
		}
		for i := range b.evs {
			if err := fn(&b.evs[i]); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if forApply {
			select {
			case free <- b:
			default:
			}
		}
	}
	return nil
}

// decodeBatch decodes the stored events in buf (each ending at ends[i]) into *evs and,
// forApply, their payloads into *pre, one share per worker (one intern table each).
func decodeBatch(buf []byte, ends []int, evs *[]Event, pre *[]CopiedData, forApply bool, interns []map[string]string) error {
	n := len(ends)
	if cap(*evs) < n {
		*evs = make([]Event, n)
		if forApply {
			*pre = make([]CopiedData, n)
		}
	}
	*evs = (*evs)[:n]
	workers := len(interns)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, n)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi && errs[w] == nil; i++ {
				from := 0
				if i > 0 {
					from = ends[i-1]
				}
				e := &(*evs)[i]
				*e, errs[w] = decodeStoredIntern(buf[from:ends[i]:ends[i]], interns[w])
				if errs[w] == nil && forApply {
					errs[w] = e.parsePayload(interns[w], &(*pre)[i])
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Snapshot is the state replayed from the events up to a point: the same queries as the
// Ledger answers from its projections.
type Snapshot struct {
	view
	Head Head
	Time time.Time // of the last event replayed
	kv   *memKV
}

// ReplayTo selects how far Replay goes: up to and including Seq, or every event at or
// before Time; zero values mean the whole log.
type ReplayTo struct {
	Seq  uint64
	Time time.Time
}

// Replay rebuilds the projections from the events, in memory, as they were at the point
// chosen. It never reads the stored projections.
func replay(ctx context.Context, r reader, to ReplayTo) (*Snapshot, error) {
	head, err := readHead(r)
	if err != nil {
		return nil, err
	}
	hint := int(head.Seq) // most events make a version
	if to.Seq > 0 {
		hint = int(min(to.Seq, head.Seq))
	}
	kv := newMemKV(hint)
	mp := memProjections{kv}
	st := state{p: mp}
	snap := &Snapshot{view: view{kv: kv, p: mp}, kv: kv}
	errStop := fmt.Errorf("stop")
	err = scanEvents(ctx, r, 1, to.Seq, true, func(e *Event) error {
		if !to.Time.IsZero() && e.Time.After(to.Time) {
			return errStop
		}
		if err := st.apply(e); err != nil {
			return fmt.Errorf("replay event %d (%s): %w", e.Seq, e.Type, err)
		}
		snap.Head = Head{Seq: e.Seq, Hash: e.Hash}
		snap.Time = e.Time
		return nil
	})
	if err != nil && err != errStop {
		return nil, err
	}
	return snap, nil
}

// Problem is one finding of Verify.
type Problem struct {
	Seq    uint64 // the first bad event, or 0 for projection and store findings
	Detail string
}

func (p Problem) String() string {
	if p.Seq > 0 {
		return fmt.Sprintf("event %d: %s", p.Seq, p.Detail)
	}
	return p.Detail
}

// VerifyReport is what Verify found; OK when Problems is empty.
type VerifyReport struct {
	Events   uint64
	Head     Head
	Problems []Problem
}

// ContentChecker is the content store as Verify checks it (cas.Local fits): which chunks
// it cannot serve (not indexed, or in a pack that is lost), and manifests to read.
type ContentChecker interface {
	Absent(ctx context.Context, hs []cas.Hash) ([]cas.Hash, error)
	Get(ctx context.Context, h cas.Hash) ([]byte, error)
}

// maxProblems bounds the report; the first problem is what matters.
const maxProblems = 20

// Verify checks the ledger: the hash chain is intact and each stored hash matches its
// event's body, sequence numbers are dense from 1 up to the head, the stored projections
// equal a fresh replay, and (with store) every manifest of a live or removed version is in
// the content store. Tampering is reported at the first bad sequence number.
func verify(ctx context.Context, r reader, store ContentChecker) (*VerifyReport, error) {
	rep := &VerifyReport{}
	add := func(seq uint64, format string, args ...any) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, Problem{Seq: seq, Detail: fmt.Sprintf(format, args...)})
		}
	}
	head, err := readHead(r)
	if err != nil {
		return nil, err
	}
	rep.Head = head

	// 1. The chain, read raw so that a record that no longer decodes is reported, not fatal.
	var prev cas.Hash
	var want uint64 = 1
	var roots rootStack
	chainOK := true
	errStop := errors.New("stop")
	err = r.scan([]byte{keyEvent}, func(key, v []byte) error {
		if !chainOK {
			return errStop
		}
		seq := uint64(0)
		if len(key) == 9 {
			seq = be64(key[1:])
		}
		rep.Events++
		switch {
		case seq != want:
			add(want, "missing (next stored event is %d)", seq)
			chainOK = false
			return nil
		case len(v) < cas.HashSize:
			add(seq, "record truncated")
			chainOK = false
			return nil
		}
		var stored cas.Hash
		copy(stored[:], v)
		body := v[cas.HashSize:]
		e, derr := DecodeBody(body)
		switch {
		case derr != nil:
			add(seq, "does not decode: %v", derr)
			chainOK = false
		case cas.Sum(body) != stored:
			add(seq, "content does not match its hash (edited)")
			chainOK = false
		case e.Seq != seq:
			add(seq, "holds event %d (reordered)", e.Seq)
			chainOK = false
		case e.Prev != prev:
			add(seq, "previous-hash link broken (an event before it was edited, removed or reordered)")
			chainOK = false
		case !bytes.Equal(e.Body(), body):
			add(seq, "body is not in canonical form")
			chainOK = false
		}
		if chainOK {
			e.Hash = stored
			roots.add(tlog.RecordHash(e.ExportLine()))
		}
		prev = stored
		want++
		return nil
	})
	if err != nil && err != errStop {
		return nil, err
	}
	if chainOK && (want-1 != head.Seq || prev != head.Hash) {
		add(want, "head says %d events ending %s; the log has %d", head.Seq, head.Hash.Short(12), want-1)
		chainOK = false
	}
	if !chainOK {
		return rep, nil // replaying a broken chain would only repeat the finding
	}
	// The Merkle tree's root over the events, recomputed, against the stored tree's.
	if size, err := treeSize(r); err != nil {
		add(0, "tree size: %v", err)
	} else if size != 0 && size != head.Seq {
		add(0, "the Merkle tree has %d events, the log %d", size, head.Seq)
	} else if size != 0 {
		if got, err := tlog.TreeHash(int64(size), treeHashes{r}); err != nil {
			add(0, "Merkle tree: %v", err)
		} else if got != roots.root() {
			add(0, "the Merkle tree's root %s is not the root of the events (%s): a tree hash was changed", got, roots.root())
		}
	}

	// 2. Projections equal a fresh replay.
	fresh, err := replay(ctx, r, ReplayTo{})
	if err != nil {
		add(0, "replay fails: %v", err)
		return rep, nil
	}
	fresh.kv.derive()
	seen := 0
	for _, p := range projectionPrefixes {
		err := r.scan([]byte{p}, func(k, v []byte) error {
			seen++
			if want, ok, _ := fresh.kv.get(k); !ok {
				add(0, "projection %s is not derived from any event", printableKey(k))
			} else if !bytes.Equal(want, v) {
				add(0, "projection %s differs from a replay of the events", printableKey(k))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if seen != len(fresh.kv.m) {
		for k := range fresh.kv.m {
			if _, ok, _ := r.get([]byte(k)); !ok {
				add(0, "projection %s is missing", printableKey([]byte(k)))
			}
		}
	}

	// 3. Every live or removed version's manifest, and every chunk it names, present.
	if store != nil {
		var vs []*Version
		err := fresh.kv.scan([]byte{keyVersion}, func(_, b []byte) error {
			v, err := decodeVersion(b)
			if err == nil && v.Status != StatusPurged {
				vs = append(vs, v)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		hs := make([]cas.Hash, len(vs))
		for i, v := range vs {
			hs[i] = v.Manifest
		}
		absent, err := store.Absent(ctx, hs)
		if err != nil {
			return nil, err
		}
		gone := map[cas.Hash]bool{}
		for _, h := range absent {
			gone[h] = true
		}
		for _, v := range vs {
			name := v.Project + "/runtime/" + v.Runtime + "/version/" + v.ID
			if gone[v.Manifest] {
				add(0, "version %s: its manifest %s is absent from the content store", name, v.Manifest)
				continue
			}
			m, err := cas.LoadManifest(ctx, store, v.Manifest)
			if err != nil {
				add(0, "version %s: its manifest %s does not read: %v", name, v.Manifest, err)
				continue
			}
			missing, err := store.Absent(ctx, m.Chunks())
			if err != nil {
				return nil, err
			}
			if len(missing) > 0 {
				first := ""
				for _, e := range m.Entries {
					if slices.Contains(e.Chunks, missing[0]) {
						first = e.Path
						break
					}
				}
				add(0, "version %s: %d of its chunks are absent from the content store (first: %s, of %s)", name, len(missing), missing[0], first)
			}
		}
	}
	return rep, nil
}

func be64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

func printableKey(k []byte) string {
	return fmt.Sprintf("%c:%s", k[0], bytes.ReplaceAll(k[1:], []byte{0}, []byte{'/'}))
}

// ExportLine is one line of Export: the event's canonical body with its hash added.
// Check it by removing "hash", writing the rest canonically (see Event.Body) and hashing.
func (e *Event) ExportLine() []byte { return e.canonical(true) }

// MaxExportLine bounds one line ReadExport reads.
const MaxExportLine = 16 << 20

// ReadExport reads an export (lines of ExportLine) and checks, as it goes, what a holder of
// the export alone can: each line's hash is its body's, each event names the one before
// (prev), and sequence numbers run from 1 without a gap. It calls fn with each event
// checked, and fails at the first that is not, naming it. It returns the last event's
// sequence number and hash.
func ReadExport(r io.Reader, fn func(Event) error) (Head, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var head Head
	for line := 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			big := append([]byte(nil), b...)
			for errors.Is(err, bufio.ErrBufferFull) && len(big) <= MaxExportLine {
				b, err = br.ReadSlice('\n')
				big = append(big, b...)
			}
			if len(big) > MaxExportLine {
				return head, fmt.Errorf("export line %d: over %d bytes", line, MaxExportLine)
			}
			b = big
		}
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return head, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return head, err
		}
		if b[len(b)-1] != '\n' {
			return head, fmt.Errorf("export line %d: cut short (no end of line)", line)
		}
		e, err := DecodeBody(b[:len(b)-1])
		if err != nil {
			return head, fmt.Errorf("export line %d: %w", line, err)
		}
		var h struct {
			Hash string `json:"hash"`
		}
		if err := json.Unmarshal(b, &h); err != nil {
			return head, fmt.Errorf("export line %d: %w: %v", line, ErrBadEvent, err)
		}
		if e.Hash, err = cas.ParseHash(h.Hash); err != nil {
			return head, fmt.Errorf("export line %d: hash: %w: %v", line, ErrBadEvent, err)
		}
		switch {
		case e.Seq != head.Seq+1:
			return head, fmt.Errorf("export line %d: event %d follows event %d", line, e.Seq, head.Seq)
		case cas.Sum(e.Body()) != e.Hash:
			return head, fmt.Errorf("event %d: its hash is not its body's", e.Seq)
		case e.Prev != head.Hash:
			return head, fmt.Errorf("event %d: prev does not name event %d", e.Seq, head.Seq)
		}
		if err := fn(e); err != nil {
			return head, err
		}
		head = Head{Seq: e.Seq, Hash: e.Hash}
	}
}

// Export writes every event as JSON lines (ExportLine), in sequence order.
func export(ctx context.Context, r reader, w io.Writer) error {
	return scanEvents(ctx, r, 1, 0, false, func(e *Event) error {
		_, err := w.Write(append(e.ExportLine(), '\n'))
		return err
	})
}
