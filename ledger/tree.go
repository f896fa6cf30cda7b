package ledger

import (
	"context"
	"encoding/binary"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// The Merkle tree over the log (RFC 6962 hashing, as Go's checksum database keeps it, with
// golang.org/x/mod/sumdb/tlog): record n is event n+1's export line (its canonical body
// with its hash), so the tree commits to every event and to the chain. The hashes tlog
// stores are kept under 'm' index[8], written in the batch of the append that adds the
// event; 'M' holds how many events the tree has. Ledgers written before the tree catch up
// on their next append (or CatchUpTree), in batches.
//
// A tree of n events has one hash, its root: a checkpoint signs it, and proofs (inclusion
// of an event, consistency of two sizes) check against it with nothing but hashes.

const (
	keyTree     = 'm'
	keyTreeSize = 'M'
)

func treeKey(i int64) []byte {
	k := make([]byte, 9)
	k[0] = keyTree
	binary.BigEndian.PutUint64(k[1:], uint64(i))
	return k
}

// treeHashes reads stored tree hashes (tlog.HashReader).
type treeHashes struct{ r reader }

func (t treeHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		v, ok, err := t.r.get(treeKey(x))
		if err != nil {
			return nil, err
		}
		if !ok || len(v) != tlog.HashSize {
			return nil, fmt.Errorf("%w: tree hash %d missing", ErrBadEvent, x)
		}
		copy(out[i][:], v)
	}
	return out, nil
}

func treeSize(r reader) (uint64, error) {
	v, ok, err := r.get([]byte{keyTreeSize})
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: tree size is %d bytes", ErrBadEvent, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// addToTree stores the tree hashes of event e, the tree's next record.
func addToTree(w writer, e *Event) error {
	n := int64(e.Seq - 1)
	hs, err := tlog.StoredHashes(n, e.ExportLine(), treeHashes{w})
	if err != nil {
		return err
	}
	base := tlog.StoredHashIndex(0, n)
	for i, h := range hs {
		w.set(treeKey(base+int64(i)), h[:])
	}
	w.set([]byte{keyTreeSize}, binary.BigEndian.AppendUint64(nil, e.Seq))
	return nil
}

// catchUpTree adds to the tree the events after its size, up to limit of them (0: all);
// it returns how many it added.
func catchUpTree(w writer, head uint64, limit int) (int, error) {
	size, err := treeSize(w)
	if err != nil {
		return 0, err
	}
	added := 0
	for seq := size + 1; seq <= head && (limit == 0 || added < limit); seq++ {
		e, err := event(w, seq)
		if err != nil {
			return added, err
		}
		if err := addToTree(w, &e); err != nil {
			return added, err
		}
		added++
	}
	return added, nil
}

// CatchUpTree builds the tree for events appended before the ledger kept one, in batches of
// 10,000 events, each committed on its own.
func (l *Ledger) CatchUpTree(ctx context.Context) error {
	if l.treeOK.Load() {
		return nil
	}
	for {
		behind := false
		if err := l.be.read(ctx, func(r reader) error {
			head, err := readHead(r)
			if err != nil {
				return err
			}
			size, err := treeSize(r)
			behind = size < head.Seq
			return err
		}); err != nil || !behind {
			if err == nil {
				l.treeOK.Store(true)
			}
			return err
		}
		l.mu.Lock()
		n := 0
		err := l.be.write(ctx, func(w writer) error {
			head, err := readHead(w)
			if err != nil {
				return err
			}
			n, err = catchUpTree(w, head.Seq, 10_000)
			return err
		})
		l.mu.Unlock()
		if err != nil || n == 0 {
			return err
		}
	}
}

// Tree is the tree of the first Size events: its root hash.
type Tree struct {
	Size uint64
	Hash tlog.Hash
}

// TreeHead returns the tree of the whole log (catching up first if the log predates it).
func (l *Ledger) TreeHead(ctx context.Context) (Tree, error) {
	if err := l.CatchUpTree(ctx); err != nil {
		return Tree{}, err
	}
	var t Tree
	err := l.be.read(ctx, func(r reader) error {
		size, err := treeSize(r)
		if err != nil {
			return err
		}
		t.Size = size
		if size == 0 {
			t.Hash = tlog.Hash{} // the empty tree
			return nil
		}
		t.Hash, err = tlog.TreeHash(int64(size), treeHashes{r})
		return err
	})
	return t, err
}

// TreeHashAt returns the root of the tree of the first n events.
func (l *Ledger) TreeHashAt(ctx context.Context, n uint64) (tlog.Hash, error) {
	var h tlog.Hash
	err := l.be.read(ctx, func(r reader) error {
		if err := l.treeHas(r, n); err != nil {
			return err
		}
		var err error
		h, err = tlog.TreeHash(int64(n), treeHashes{r})
		return err
	})
	return h, err
}

func (l *Ledger) treeHas(r reader, n uint64) error {
	size, err := treeSize(r)
	if err != nil {
		return err
	}
	if n == 0 || n > size {
		return fmt.Errorf("%w: a tree of %d events (the log has %d)", ErrNotFound, n, size)
	}
	return nil
}

// ProveInclusion proves that event seq is in the tree of the first n events.
func (l *Ledger) ProveInclusion(ctx context.Context, seq, n uint64) (tlog.RecordProof, error) {
	var p tlog.RecordProof
	err := l.be.read(ctx, func(r reader) error {
		if err := l.treeHas(r, n); err != nil {
			return err
		}
		if seq == 0 || seq > n {
			return fmt.Errorf("%w: event %d is not in a tree of %d", ErrNotFound, seq, n)
		}
		var err error
		p, err = tlog.ProveRecord(int64(n), int64(seq-1), treeHashes{r})
		return err
	})
	return p, err
}

// ProveConsistency proves that the tree of the first n events is a prefix of the tree of
// the first m (n ≤ m).
func (l *Ledger) ProveConsistency(ctx context.Context, n, m uint64) (tlog.TreeProof, error) {
	var p tlog.TreeProof
	err := l.be.read(ctx, func(r reader) error {
		if err := l.treeHas(r, m); err != nil {
			return err
		}
		if n == 0 || n > m {
			return fmt.Errorf("%w: no consistency from %d to %d events", ErrInvalid, n, m)
		}
		var err error
		p, err = tlog.ProveTree(int64(m), int64(n), treeHashes{r})
		return err
	})
	return p, err
}

// rootStack computes a tree's root from its record hashes in order, in O(log n) memory:
// the roots of the complete subtrees so far, largest first (RFC 6962's split).
type rootStack struct {
	h    []tlog.Hash
	size []int64
}

func (s *rootStack) add(leaf tlog.Hash) {
	s.h, s.size = append(s.h, leaf), append(s.size, 1)
	for n := len(s.h); n >= 2 && s.size[n-1] == s.size[n-2]; n = len(s.h) {
		s.h[n-2] = tlog.NodeHash(s.h[n-2], s.h[n-1])
		s.size[n-2] *= 2
		s.h, s.size = s.h[:n-1], s.size[:n-1]
	}
}

func (s *rootStack) root() tlog.Hash {
	if len(s.h) == 0 {
		return tlog.Hash{}
	}
	h := s.h[len(s.h)-1]
	for i := len(s.h) - 2; i >= 0; i-- {
		h = tlog.NodeHash(s.h[i], h)
	}
	return h
}

// keySecret holds secrets the instance's replicas share (the checkpoint key of a ledger on
// PostgreSQL, which every replica must sign with): 'K' name -> value. Never exported,
// replayed or verified.
const keySecret = 'K'

// Shared says whether the ledger is shared by replicas (PostgreSQL): secrets of the
// instance then live in it, not in one replica's root.
func (l *Ledger) Shared() bool {
	_, ok := l.be.(*pgBackend)
	return ok
}

// SecretOnce returns the secret stored under name, storing make's value first when there
// is none (of concurrent callers, one's value wins, and all get it).
func (l *Ledger) SecretOnce(ctx context.Context, name string, make func() (string, error)) (string, error) {
	k := append([]byte{keySecret}, name...)
	var out string
	err := l.be.read(ctx, func(r reader) error {
		v, ok, err := r.get(k)
		if ok {
			out = string(v)
		}
		return err
	})
	if err != nil || out != "" {
		return out, err
	}
	v, err := make()
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err = l.be.write(ctx, func(w writer) error {
		cur, ok, err := w.get(k)
		if err != nil {
			return err
		}
		if ok {
			out = string(cur)
			return nil
		}
		w.set(k, []byte(v))
		out = v
		return nil
	})
	return out, err
}

// SetSecret replaces the secret stored under name.
func (l *Ledger) SetSecret(ctx context.Context, name, value string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.be.write(ctx, func(w writer) error {
		w.set(append([]byte{keySecret}, name...), []byte(value))
		return nil
	})
}
