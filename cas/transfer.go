package cas

import (
	"context"
	"encoding/binary"
	"fmt"
)

// Transfer between stores. Invariants:
//   - A group travels as stored only when the request names all its chunks; the receiver
//     verifies every chunk of it and its name (VerifyGroup) before storing any.

// Groups travel whole when they can: a copy of a freshly stored tree asks for every chunk
// of its groups, and decompressing a group to compress each chunk again on its own cost the
// sender more CPU than anything else in a copy. A group on the wire is Raw{Enc: EncGroup}
// named by groupName; the receiver checks it with VerifyGroup and stores it with PutGroup.

// Transfer calls fn for each chunk of hs as it should travel to another store, in the
// order of hs: each chunk as GetRaw returns it, except that a group of which hs names every
// chunk goes once, as stored, where its first chunk comes (fn gets the group's name and
// Raw{Enc: EncGroup, Count: its chunks}). fn also gets the position in hs it answers: once
// it returns, every chunk up to that position has travelled. hs must not repeat a hash.
func (s *Local) Transfer(ctx context.Context, hs []Hash, fn func(i int, h Hash, r Raw) error) error {
	type groupUse struct {
		n, tbl int   // chunks of hs in the group, and the bytes their sizes take in its table
		sum    int64 // their sizes
		whole  bool  // hs names all its chunks: it went whole, where its first came
		split  bool  // it does not: its chunks go one by one
	}
	locs, oks, err := s.locate(ctx, hs)
	if err != nil {
		return err
	}
	groups := map[[2]uint64]*groupUse{}
	for i, h := range hs {
		if !oks[i] {
			return &NotFoundError{Hash: h}
		}
		l := locs[i]
		if l.enc == EncGroup {
			k := [2]uint64{l.pack, uint64(l.off)}
			g := groups[k]
			if g == nil {
				g = &groupUse{}
				groups[k] = g
			}
			g.n++
			g.tbl += uvarintLen(uint64(l.size))
			g.sum += l.size
		}
	}
	for i, h := range hs {
		if err := ctx.Err(); err != nil {
			return err
		}
		l := locs[i]
		if g := groups[[2]uint64{l.pack, uint64(l.off)}]; l.enc == EncGroup && !g.split {
			if g.whole {
				continue
			}
			// The entry's header gives the group's name and content length; hs names every
			// chunk of the group exactly when their table and bytes make up that length.
			entry := make([]byte, entryHeader+l.stored)
			at := l
			at.off -= entryHeader
			if err := s.readAt(h, at, entry); err != nil {
				return err
			}
			content := int64(binary.BigEndian.Uint32(entry[HashSize+1:]))
			if Encoding(entry[HashSize]) == EncGroup && int64(uvarintLen(uint64(g.n))+g.tbl)+g.sum == content {
				g.whole = true
				var name Hash
				copy(name[:], entry)
				if err := fn(i, name, Raw{Enc: EncGroup, Len: content, Data: entry[entryHeader:], Count: g.n}); err != nil {
					return err
				}
				continue
			}
			g.split = true
		}
		r, err := s.rawAt(h, l) // GetRaw, where locate found it
		if err != nil {
			return err
		}
		if err := fn(i, h, r); err != nil {
			return err
		}
	}
	return nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// Group is a group that travelled, checked by VerifyGroup and ready for PutGroup.
type Group struct {
	name    Hash
	raw     Raw
	hashes  []Hash
	sizes   []int64
	offs    []int64
	content []byte // decompressed, when VerifyGroup made it
}

// Chunks returns the hashes of the group's chunks.
func (g *Group) Chunks() []Hash { return g.hashes }

// Chunk returns the content of one of the group's chunks, verified with the group; only
// a group VerifyGroup made keeps its content (CheckGroup's answers false).
func (g *Group) Chunk(h Hash) ([]byte, bool) {
	for i, x := range g.hashes {
		if x == h && g.content != nil {
			return g.content[g.offs[i] : g.offs[i]+g.sizes[i]], true
		}
	}
	return nil, false
}

// VerifyGroup decompresses a group that travelled, hashes every chunk in it and checks the
// group's name against them; it fails with a CorruptError naming the group otherwise. The
// group keeps its content, for Chunk.
func VerifyGroup(name Hash, r Raw) (*Group, error) {
	g, _, err := verifyGroup(name, r, nil, true)
	return g, err
}

// CheckGroup is VerifyGroup for a receiver that stores the group as it travelled and needs
// none of its chunks' bytes: the content is decompressed into scratch (grown when short)
// and not kept, and scratch is returned for the next group. A server receiving a batch of
// groups then touches one buffer instead of a fresh one of each group's size.
func CheckGroup(name Hash, r Raw, scratch []byte) (*Group, []byte, error) {
	return verifyGroup(name, r, scratch, false)
}

func verifyGroup(name Hash, r Raw, scratch []byte, keep bool) (*Group, []byte, error) {
	bad := func(reason string) error { return &CorruptError{Hash: name, Reason: "group: " + reason} }
	if r.Enc != EncGroup {
		return nil, scratch, bad(fmt.Sprintf("encoding %d", r.Enc))
	}
	if r.Len < 0 || r.Len > MaxGroupContent {
		return nil, scratch, bad(fmt.Sprintf("implausible length %d (groups hold at most %d bytes)", r.Len, MaxGroupContent))
	}
	if int64(cap(scratch)) < r.Len {
		scratch = make([]byte, 0, r.Len)
	}
	_, dec := codecs()
	content, err := dec.DecodeAll(r.Data, scratch[:0]) // no further than r.Len
	if err != nil {
		return nil, scratch, bad("zstd: " + err.Error())
	}
	if cap(content) <= MaxGroupContent {
		scratch = content
	}
	if int64(len(content)) != r.Len {
		return nil, scratch, bad(fmt.Sprintf("length %d, recorded %d", len(content), r.Len))
	}
	offs, sizes, err := parseGroup(content)
	if err != nil {
		return nil, scratch, bad(err.Error())
	}
	if len(offs) == 0 {
		return nil, scratch, bad("it holds no chunk")
	}
	g := &Group{name: name, raw: r, hashes: make([]Hash, len(offs)), sizes: sizes, offs: offs}
	if keep {
		g.content = content
	}
	for i, off := range offs {
		g.hashes[i] = Sum(content[off : off+sizes[i]])
	}
	if groupName(g.hashes) != name {
		return nil, scratch, bad("its chunks do not match its name")
	}
	return g, scratch, nil
}

// PutGroup stores a verified group as it travelled and indexes the chunks of it that the
// store lacks; it reports how many those were. Like the chunks of a Put, they are durable
// after Flush.
func (s *Local) PutGroup(ctx context.Context, g *Group) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.idx.load(ctx); err != nil {
		return 0, err
	}
	isNew, err := s.storeGroup(g)
	n := 0
	for _, x := range isNew {
		if x {
			n++
		}
	}
	return n, err
}
