package cas

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/zeebo/blake3"
)

// ObjectPacks is a chunk store whose packs are objects of an ObjectStore (S3Objects: an
// S3-compatible bucket; DirObjects: a directory) and whose index is in PostgreSQL
// (internal/pgschema, 0002_chunks.sql): what several server replicas share. The index, gc,
// repack and coalescing are written here once, over the five methods of ObjectStore.
//
// Invariants:
//   - A pack is written whole, as one object named by the blake3 of its bytes
//     (packs/ab/abcd…). Its index rows are committed only after the object is durable
//     (ObjectStore.Put's contract), so an indexed chunk is always readable.
//   - Chunks put and not yet flushed are read from memory; Flush uploads them as one pack.
//     Flush returns once every chunk put before it (by any goroutine) is indexed.
//   - A chunk gc has condemned (no version uses it) is answered as missing, so a client
//     sends it again and the new copy revives it; Keep revives it for a commit; only a gc
//     after the grace deletes it (DESIGN.md, "Replicas").
//   - Reads are ranged reads of one entry; a pack read from twice is fetched whole into a
//     bounded local cache, which later reads use. A pack is never changed, only replaced
//     (repack, coalescing) and deleted once no row points into it: a read that finds its
//     pack gone (ErrNoObject) looks the chunk up again.
type ObjectPacks struct {
	objs ObjectStore
	cfg  PacksConfig
	db   *pgxpool.Pool

	mu       sync.Mutex
	buf      []byte           // the pack being gathered
	pending  map[Hash]s3Entry // chunks in buf
	flushing []*s3Flush       // packs being uploaded, oldest first

	cache *packCache
	group groupCache

	coalescing sync.Mutex // one coalescing of small packs at a time (afterFlush)
}

// s3Entry is one chunk's index row.
type s3Entry struct {
	pack        Hash
	off, stored int64
	size        int64
	enc         Encoding
	grp         Hash  // EncGroup: the group's name
	goff, glen  int64 // EncGroup: offset in the group's content, and its length
	flush       *s3Flush
}

// groupEntry is the entry of chunk i of group g stored at off.
func groupEntry(g *Group, i int, off int64) s3Entry {
	return s3Entry{off: off, stored: int64(len(g.raw.Data)), size: g.sizes[i], enc: EncGroup,
		grp: g.name, goff: g.offs[i], glen: g.raw.Len}
}

// s3Flush is a pack on its way up: its bytes stay readable until it is indexed.
type s3Flush struct {
	buf     []byte
	entries map[Hash]s3Entry
	done    chan struct{}
	err     error
}

// s3PackTarget: a pack is uploaded once this much is gathered, without waiting for Flush.
const s3PackTarget = 32 << 20

// PacksConfig tunes an ObjectPacks.
type PacksConfig struct {
	CacheDir string // local cache of packs read; "" for none
	CacheMax int64  // bytes the cache may hold; 0: 1 GiB
	// OnError hears errors of background work that no call returns (coalescing).
	OnError func(msg string)
}

// OpenPacks opens the pack store over objs; db must hold the schema (pgschema.Migrate).
func OpenPacks(ctx context.Context, objs ObjectStore, db *pgxpool.Pool, c PacksConfig) (*ObjectPacks, error) {
	s := &ObjectPacks{objs: objs, cfg: c, db: db, pending: map[Hash]s3Entry{}}
	if c.CacheDir != "" {
		if c.CacheMax == 0 {
			c.CacheMax = 1 << 30
		}
		var err error
		if s.cache, err = newPackCache(c.CacheDir, c.CacheMax); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// OpenS3 opens the pack store over an ObjectPacks bucket (S3Objects); db must hold the schema.
func OpenS3(ctx context.Context, c S3Config, db *pgxpool.Pool) (*ObjectPacks, error) {
	objs, err := NewS3Objects(ctx, c)
	if err != nil {
		return nil, err
	}
	return OpenPacks(ctx, objs, db, PacksConfig{CacheDir: c.CacheDir, CacheMax: c.CacheMax, OnError: c.OnError})
}

// Config is what the store was opened with.
func (s *ObjectPacks) Config() PacksConfig { return s.cfg }

// Backend is the object store holding the packs.
func (s *ObjectPacks) Backend() ObjectStore { return s.objs }

// DB is the pool holding the index.
func (s *ObjectPacks) DB() *pgxpool.Pool { return s.db }

// Objects lists the pack objects.
func (s *ObjectPacks) Objects(ctx context.Context) ([]string, error) {
	var out []string
	err := s.objs.List(ctx, "packs/", func(name string, _ int64) error {
		out = append(out, name)
		return nil
	})
	return out, err
}

func (s *ObjectPacks) key(pack Hash) string {
	x := pack.String()
	return "packs/" + x[:2] + "/" + x
}

// Close flushes what was put.
func (s *ObjectPacks) Close() error { return s.Flush(context.Background()) }

// Put stores content under its hash.
func (s *ObjectPacks) Put(ctx context.Context, h Hash, data []byte) error {
	if int64(len(data)) > MaxBlob {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(data))
	}
	_, err := s.PutEncoded(ctx, h, Encode(data, nil))
	return err
}

// PutRaw verifies a stored-form chunk and stores it.
func (s *ObjectPacks) PutRaw(ctx context.Context, h Hash, r Raw) error {
	if r.Enc == EncGroup {
		return &CorruptError{Hash: h, Reason: "a group travels through PutGroup"}
	}
	if _, err := Decode(h, r, nil); err != nil {
		return err
	}
	_, err := s.PutEncoded(ctx, h, r)
	return err
}

// PutEncoded stores a chunk the caller has verified; it reports whether it was new to this
// process. It does not ask the index: a copy sends only what Missing said is missing, and
// asking for each chunk of a batch was a round trip to PostgreSQL per chunk. A chunk
// indexed meanwhile (another replica, the same copy run twice at once) keeps its row when
// the pack is indexed, and its second copy is dead weight in that pack.
func (s *ObjectPacks) PutEncoded(ctx context.Context, h Hash, r Raw) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if _, _, ok := s.memEntry(h); ok {
		return false, nil
	}
	s.mu.Lock()
	if _, ok := s.pending[h]; !ok {
		s.pending[h] = s3Entry{off: int64(len(s.buf)), stored: int64(len(r.Data)), size: r.Len, enc: r.Enc}
		s.buf = append(s.buf, r.Data...)
	}
	full := len(s.buf) >= s3PackTarget
	s.mu.Unlock()
	if full {
		return true, s.Flush(ctx)
	}
	return true, nil
}

// PutGroup stores a verified group once and indexes its chunks (those already indexed
// keep their rows, as with PutEncoded); it reports how many were new to this process.
func (s *ObjectPacks) PutGroup(ctx context.Context, g *Group) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var want []int
	for i, h := range g.hashes {
		if _, _, ok := s.memEntry(h); !ok {
			want = append(want, i)
		}
	}
	if len(want) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	off := int64(len(s.buf))
	s.buf = append(s.buf, g.raw.Data...)
	for _, i := range want {
		s.pending[g.hashes[i]] = groupEntry(g, i, off)
	}
	full := len(s.buf) >= s3PackTarget
	s.mu.Unlock()
	if full {
		return len(want), s.Flush(ctx)
	}
	return len(want), nil
}

// S3Batch gathers chunks into a pack of their own, uploaded and indexed by Flush: what a
// server does with one upload request, so that concurrent requests upload side by side and
// none waits for another's pack. Its chunks are visible to others once Flush returns.
// The batch keeps the callers' slices (a request's decoded frames) instead of copying them
// into one buffer: the pack is streamed from them.
type S3Batch struct {
	s     *ObjectPacks
	f     s3Flush
	parts [][]byte
	size  int64
}

// NewBatch starts a batch.
func (s *ObjectPacks) NewBatch() Batch {
	return &S3Batch{s: s, f: s3Flush{entries: map[Hash]s3Entry{}}}
}

func (b *S3Batch) add(data []byte) int64 {
	off := b.size
	b.parts = append(b.parts, data)
	b.size += int64(len(data))
	return off
}

// PutEncoded adds a chunk the caller has verified (see ObjectPacks.PutEncoded). r.Data must not
// change until Flush returns.
func (b *S3Batch) PutEncoded(ctx context.Context, h Hash, r Raw) (bool, error) {
	if _, ok := b.f.entries[h]; ok {
		return false, ctx.Err()
	}
	b.f.entries[h] = s3Entry{off: b.add(r.Data), stored: int64(len(r.Data)), size: r.Len, enc: r.Enc}
	return true, ctx.Err()
}

// PutGroup adds a verified group (see ObjectPacks.PutGroup).
func (b *S3Batch) PutGroup(ctx context.Context, g *Group) (int, error) {
	off := b.add(g.raw.Data)
	n := 0
	for i, h := range g.hashes {
		if _, ok := b.f.entries[h]; !ok {
			b.f.entries[h] = groupEntry(g, i, off)
			n++
		}
	}
	return n, ctx.Err()
}

// Flush uploads the batch as one pack and indexes it.
func (b *S3Batch) Flush(ctx context.Context) error {
	if len(b.f.entries) == 0 {
		return nil
	}
	if err := b.s.uploadParts(ctx, b.parts, b.size, b.f.entries); err != nil {
		return err
	}
	size := b.size
	b.f, b.parts, b.size = s3Flush{entries: map[Hash]s3Entry{}}, nil, 0
	b.s.afterFlush(ctx, size)
	return nil
}

// Flush uploads what was put as one pack, indexes it, and waits for packs other
// goroutines are uploading with chunks put before.
func (s *ObjectPacks) Flush(ctx context.Context) error {
	s.mu.Lock()
	wait := append([]*s3Flush(nil), s.flushing...)
	var f *s3Flush
	if len(s.pending) > 0 {
		f = &s3Flush{buf: s.buf, entries: s.pending, done: make(chan struct{})}
		for h, e := range f.entries {
			e.flush = f
			f.entries[h] = e
		}
		s.flushing = append(s.flushing, f)
		s.buf, s.pending = nil, map[Hash]s3Entry{}
	}
	s.mu.Unlock()
	if f != nil {
		f.err = s.upload(ctx, f)
		close(f.done)
		s.mu.Lock()
		for i, x := range s.flushing {
			if x == f {
				s.flushing = append(s.flushing[:i], s.flushing[i+1:]...)
				break
			}
		}
		if f.err != nil { // put back, for a later Flush to try again
			for h, e := range f.entries {
				if _, ok := s.pending[h]; !ok {
					e.flush = nil
					e.off += int64(len(s.buf))
					s.pending[h] = e
				}
			}
			s.buf = append(s.buf, f.buf...)
		}
		s.mu.Unlock()
		if f.err != nil {
			return f.err
		}
		s.afterFlush(ctx, int64(len(f.buf)))
	}
	for _, w := range wait {
		select {
		case <-w.done:
			if w.err != nil {
				return w.err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// upload writes a pack object, then its index rows.
func (s *ObjectPacks) upload(ctx context.Context, f *s3Flush) error {
	return s.uploadParts(ctx, [][]byte{f.buf}, int64(len(f.buf)), f.entries)
}

// uploadParts writes the pack made of parts, then its index rows.
func (s *ObjectPacks) uploadParts(ctx context.Context, parts [][]byte, size int64, entries map[Hash]s3Entry) error {
	name, err := s.putPack(ctx, parts, size)
	if err != nil {
		return err
	}
	return s.index(ctx, name, size, entries)
}

// putPack writes the pack made of parts as one object named by its blake3.
func (s *ObjectPacks) putPack(ctx context.Context, parts [][]byte, size int64) (Hash, error) {
	hr := blake3.New()
	for _, p := range parts {
		hr.Write(p)
	}
	var name Hash
	hr.Sum(name[:0])
	if err := s.objs.Put(ctx, s.key(name), packBody(parts, size), size); err != nil {
		return name, fmt.Errorf("upload pack %s: %w", name.Short(12), err)
	}
	return name, nil
}

// packBody is parts as one body that can be read again: the S3 client retries a request
// that failed with a 5xx or on the network only when it can rewind the body.
func packBody(parts [][]byte, size int64) io.Reader {
	return io.NewSectionReader(partsAt(parts), 0, size)
}

// partsAt reads parts as one run of bytes.
type partsAt [][]byte

func (ps partsAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("partsAt: negative offset")
	}
	n := 0
	for _, part := range ps {
		if off >= int64(len(part)) {
			off -= int64(len(part))
			continue
		}
		n += copy(p[n:], part[off:])
		off = 0
		if n == len(p) {
			return n, nil
		}
	}
	return n, io.EOF
}

// index commits the rows of a pack that is in the bucket.
func (s *ObjectPacks) index(ctx context.Context, name Hash, size int64, entries map[Hash]s3Entry) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO cas_packs (name, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING", name[:], size); err != nil {
			return fmt.Errorf("index pack %s: %w", name.Short(12), err)
		}
		rows := make([][]any, 0, len(entries))
		for h, e := range entries {
			var grp []byte
			var goff, glen *int64
			if e.enc == EncGroup {
				grp, goff, glen = e.grp[:], &e.goff, &e.glen
			}
			rows = append(rows, []any{h[:], name[:], e.off, e.stored, e.size, int16(e.enc), grp, goff, glen})
		}
		// COPY into a temporary table, then one upsert: a chunk another replica stored
		// meanwhile keeps its row, unless gc had condemned it (this copy revives it).
		if _, err := tx.Exec(ctx, "CREATE TEMPORARY TABLE cas_new (LIKE cas_chunks INCLUDING DEFAULTS) ON COMMIT DROP"); err != nil {
			return err
		}
		cols := []string{"hash", "pack", "off", "stored", "size", "enc", "grp", "goff", "glen"}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"cas_new"}, cols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("index pack %s: %w", name.Short(12), err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO cas_chunks (hash, pack, off, stored, size, enc, grp, goff, glen)
			SELECT hash, pack, off, stored, size, enc, grp, goff, glen FROM cas_new
			ON CONFLICT (hash) DO UPDATE SET pack = excluded.pack, off = excluded.off, stored = excluded.stored,
				size = excluded.size, enc = excluded.enc, grp = excluded.grp, goff = excluded.goff,
				glen = excluded.glen, condemned_at = NULL
			WHERE cas_chunks.condemned_at IS NOT NULL`)
		if err != nil {
			return fmt.Errorf("index pack %s: %w", name.Short(12), err)
		}
		return nil
	})
}

// memEntry finds a chunk not yet indexed.
func (s *ObjectPacks) memEntry(h Hash) (s3Entry, []byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.pending[h]; ok {
		return e, s.buf, true
	}
	for _, f := range s.flushing {
		if e, ok := f.entries[h]; ok {
			return e, f.buf, true
		}
	}
	return s3Entry{}, nil, false
}

// Missing answers which of hs the store lacks, counting condemned chunks as lacking.
func (s *ObjectPacks) Missing(ctx context.Context, hs []Hash) ([]Hash, error) {
	return s.absent(ctx, hs, true)
}

// Absent answers which of hs the store cannot serve (condemned chunks it can).
func (s *ObjectPacks) Absent(ctx context.Context, hs []Hash) ([]Hash, error) {
	return s.absent(ctx, hs, false)
}

// s3Batch bounds the hashes of one index query.
const s3Batch = 8192

func (s *ObjectPacks) absent(ctx context.Context, hs []Hash, condemnedToo bool) ([]Hash, error) {
	ask := make([][]byte, 0, len(hs))
	have := map[Hash]bool{} // put in this process, or found in the index
	for _, h := range hs {
		if _, _, ok := s.memEntry(h); ok {
			have[h] = true
		} else {
			ask = append(ask, h[:])
		}
	}
	q := "SELECT hash FROM cas_chunks WHERE hash = ANY($1)"
	if condemnedToo {
		q += " AND condemned_at IS NULL"
	}
	for len(ask) > 0 {
		n := min(len(ask), s3Batch)
		rows, err := s.db.Query(ctx, q, ask[:n])
		if err != nil {
			return nil, fmt.Errorf("chunk index: %w", err)
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return nil, err
			}
			have[Hash(b)] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("chunk index: %w", err)
		}
		ask = ask[n:]
	}
	var out []Hash
	for _, h := range hs {
		if !have[h] {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, Hash.Compare)
	return slices.Compact(out), nil
}

// Keep revives the chunks of hs that gc condemned (a commit is about to use them) and
// returns those the store lacks.
func (s *ObjectPacks) Keep(ctx context.Context, hs []Hash) ([]Hash, error) {
	for i := 0; i < len(hs); i += s3Batch {
		part := hs[i:min(i+s3Batch, len(hs))]
		if _, err := s.db.Exec(ctx, "UPDATE cas_chunks SET condemned_at = NULL WHERE hash = ANY($1) AND condemned_at IS NOT NULL", HashBytes(part)); err != nil {
			return nil, fmt.Errorf("chunk index: %w", err)
		}
	}
	return s.absent(ctx, hs, true)
}

func (s *ObjectPacks) lookup(ctx context.Context, h Hash) (s3Entry, []byte, error) {
	if e, buf, ok := s.memEntry(h); ok {
		return e, buf, nil
	}
	var e s3Entry
	var pack, grp []byte
	var goff, glen *int64
	var enc int16
	err := s.db.QueryRow(ctx, "SELECT pack, off, stored, size, enc, grp, goff, glen FROM cas_chunks WHERE hash = $1", h[:]).
		Scan(&pack, &e.off, &e.stored, &e.size, &enc, &grp, &goff, &glen)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, nil, &NotFoundError{Hash: h}
	}
	if err != nil {
		return e, nil, fmt.Errorf("chunk index: %w", err)
	}
	e.pack, e.enc = Hash(pack), Encoding(enc)
	if e.enc == EncGroup {
		if len(grp) != HashSize || goff == nil || glen == nil {
			return e, nil, &CorruptError{Hash: h, Reason: "index row of a grouped chunk without its group"}
		}
		e.grp, e.goff, e.glen = Hash(grp), *goff, *glen
	}
	return e, nil, nil
}

// stored returns an entry's stored bytes: from memory, the cache, or a ranged read.
func (s *ObjectPacks) stored(ctx context.Context, h Hash, e s3Entry, mem []byte) ([]byte, error) {
	if e.stored == 0 {
		return []byte{}, nil // nothing to read (an empty chunk in memory has no buffer)
	}
	if mem != nil {
		return bytes.Clone(mem[e.off : e.off+e.stored]), nil
	}
	if e.stored < 0 || e.stored > MaxBlob {
		return nil, &CorruptError{Hash: h, Reason: fmt.Sprintf("implausible stored length %d", e.stored)}
	}
	if s.cache != nil {
		if b, ok := s.cache.read(e.pack, e.off, e.stored); ok {
			return b, nil
		}
		if s.cache.second(e.pack) {
			if err := s.fetchPack(ctx, e.pack); err == nil {
				if b, ok := s.cache.read(e.pack, e.off, e.stored); ok {
					return b, nil
				}
			}
		}
	}
	b, err := s.rangeRead(ctx, h, e)
	if err != nil && isNoSuchKey(err) {
		// gc repacked the pack since the entry was looked up: the chunk has moved.
		if e2, mem2, lerr := s.lookup(ctx, h); lerr == nil && e2.pack != e.pack {
			return s.stored(ctx, h, e2, mem2)
		}
	}
	return b, err
}

// rangeRead reads an entry's stored bytes with one Range request.
func (s *ObjectPacks) rangeRead(ctx context.Context, h Hash, e s3Entry) ([]byte, error) {
	obj, err := s.objs.GetRange(ctx, s.key(e.pack), e.off, e.stored)
	if err != nil {
		return nil, fmt.Errorf("read pack %s: %w", e.pack.Short(12), err)
	}
	defer obj.Close()
	b := make([]byte, e.stored)
	if _, err := io.ReadFull(obj, b); err != nil {
		return nil, fmt.Errorf("read chunk %s from pack %s: %w", h, e.pack.Short(12), err)
	}
	return b, nil
}

// fetchPack downloads a whole pack into the cache.
func (s *ObjectPacks) fetchPack(ctx context.Context, pack Hash) error {
	obj, err := s.objs.GetRange(ctx, s.key(pack), 0, -1)
	if err != nil {
		return err
	}
	defer obj.Close()
	return s.cache.put(pack, obj)
}

func isNoSuchKey(err error) bool { return errors.Is(err, ErrNoObject) }

// GetRaw returns a chunk in its stored form (a grouped chunk alone, re-encoded).
func (s *ObjectPacks) GetRaw(ctx context.Context, h Hash) (Raw, error) {
	e, mem, err := s.lookup(ctx, h)
	if err != nil {
		return Raw{}, err
	}
	if e.enc != EncGroup {
		b, err := s.stored(ctx, h, e, mem)
		if err != nil {
			return Raw{}, err
		}
		return Raw{Enc: e.enc, Len: e.size, Data: b}, nil
	}
	k := [2]uint64{binary.BigEndian.Uint64(e.pack[:8]), uint64(e.off)}
	data, err := s.group.chunk(k, e.goff, e.size, nil, func(buffer func(int) []byte) ([]byte, error) {
		if e.glen < 0 || e.glen > MaxGroupContent {
			return nil, &CorruptError{Hash: e.grp, Reason: fmt.Sprintf("group of implausible length %d", e.glen)}
		}
		b, err := s.stored(ctx, h, e, mem) // the group's frame: fetched only to decompress it
		if err != nil {
			return nil, err
		}
		// decoder stops at the buffer's capacity (at most MaxGroupContent, like every
		// buffer the cache makes): a frame that inflates past e.glen fails below. The
		// buffer keeps its capacity, which is what the cache counts.
		_, dec := codecs()
		c, err := dec.DecodeAll(b, buffer(int(e.glen)))
		if err != nil || int64(len(c)) != e.glen {
			return nil, &CorruptError{Hash: e.grp, Reason: fmt.Sprintf("group does not decompress: %v", err)}
		}
		return c, nil
	})
	if errors.Is(err, errOutsideGroup) {
		return Raw{}, &CorruptError{Hash: h, Reason: "grouped chunk out of its group"}
	}
	if err != nil {
		return Raw{}, err
	}
	return Encode(data, nil), nil
}

// Get returns a chunk's content, verified.
func (s *ObjectPacks) Get(ctx context.Context, h Hash) ([]byte, error) {
	r, err := s.GetRaw(ctx, h)
	if err != nil {
		return nil, err
	}
	return Decode(h, r, nil)
}

// Transfer calls fn for each chunk of hs as it should travel (see Local.Transfer): a group
// of which hs names every chunk goes once, as stored.
func (s *ObjectPacks) Transfer(ctx context.Context, hs []Hash, fn func(i int, h Hash, r Raw) error) error {
	type use struct {
		n     int
		sum   int64
		tbl   int
		whole bool
	}
	es := make([]s3Entry, len(hs))
	mems := make([][]byte, len(hs))
	groups := map[Hash]*use{}
	for i, h := range hs {
		e, mem, err := s.lookup(ctx, h)
		if err != nil {
			return err
		}
		es[i], mems[i] = e, mem
		if e.enc == EncGroup {
			g := groups[e.grp]
			if g == nil {
				g = &use{}
				groups[e.grp] = g
			}
			g.n++
			g.sum += e.size
			g.tbl += uvarintLen(uint64(e.size))
		}
	}
	for i, h := range hs {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := es[i]
		if g := groups[e.grp]; e.enc == EncGroup && int64(uvarintLen(uint64(g.n))+g.tbl)+g.sum == e.glen {
			if g.whole {
				continue
			}
			g.whole = true
			b, err := s.stored(ctx, h, e, mems[i])
			if err != nil {
				return err
			}
			if err := fn(i, e.grp, Raw{Enc: EncGroup, Len: e.glen, Data: b, Count: g.n}); err != nil {
				return err
			}
			continue
		}
		r, err := s.GetRaw(ctx, h)
		if err != nil {
			return err
		}
		if err := fn(i, h, r); err != nil {
			return err
		}
	}
	return nil
}

// Walk lists every indexed chunk in ascending hash order.
func (s *ObjectPacks) Walk(ctx context.Context, fn func(ChunkInfo) error) error {
	rows, err := s.db.Query(ctx, "SELECT hash, size, stored, enc FROM cas_chunks ORDER BY hash")
	if err != nil {
		return fmt.Errorf("chunk index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		var ci ChunkInfo
		var enc int16
		if err := rows.Scan(&b, &ci.Size, &ci.Stored, &enc); err != nil {
			return err
		}
		if Encoding(enc) == EncGroup {
			ci.Stored = 0 // the group's bytes are counted nowhere chunk by chunk
		}
		ci.Hash = Hash(b)
		if err := fn(ci); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Delete drops chunks from the index, and the packs no chunk is left in.
func (s *ObjectPacks) Delete(ctx context.Context, hs []Hash) error {
	s.mu.Lock()
	for _, h := range hs {
		delete(s.pending, h) // its bytes stay in the pack being gathered, unindexed
	}
	s.mu.Unlock()
	for i := 0; i < len(hs); i += s3Batch {
		part := hs[i:min(i+s3Batch, len(hs))]
		if _, err := s.db.Exec(ctx, "DELETE FROM cas_chunks WHERE hash = ANY($1)", HashBytes(part)); err != nil {
			return fmt.Errorf("chunk index: %w", err)
		}
	}
	return s.dropEmptyPacks(ctx)
}

// dropEmptyPacks removes the packs no index row points into: first their rows, then
// their objects (an object without a row is only ever garbage).
func (s *ObjectPacks) dropEmptyPacks(ctx context.Context) error {
	rows, err := s.db.Query(ctx, `DELETE FROM cas_packs p WHERE NOT EXISTS
		(SELECT 1 FROM cas_chunks c WHERE c.pack = p.name) RETURNING name`)
	if err != nil {
		return fmt.Errorf("chunk index: %w", err)
	}
	var gone []Hash
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return err
		}
		gone = append(gone, Hash(b))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range gone {
		if err := s.objs.Delete(ctx, s.key(p)); err != nil {
			return fmt.Errorf("remove pack %s: %w", p.Short(12), err)
		}
		if s.cache != nil {
			s.cache.drop(p)
		}
	}
	return nil
}

// packCache keeps whole packs on local disk, the least recently used dropped past max.
type packCache struct {
	dir   string
	max   int64
	mu    sync.Mutex
	seen  map[Hash]int       // ranged reads of packs not cached
	used  map[Hash]time.Time // cached packs, by last use
	sizes map[Hash]int64
	total int64
}

func newPackCache(dir string, max int64) (*packCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pack cache: %w", err)
	}
	c := &packCache{dir: dir, max: max, seen: map[Hash]int{}, used: map[Hash]time.Time{}, sizes: map[Hash]int64{}}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		h, err := ParseHash(e.Name())
		if info, ierr := e.Info(); err == nil && ierr == nil {
			c.used[h], c.sizes[h] = info.ModTime(), info.Size()
			c.total += info.Size()
		} else {
			os.Remove(filepath.Join(dir, e.Name())) // a download cut short
		}
	}
	return c, nil
}

// second counts a ranged read of a pack and reports whether it is the second.
func (c *packCache) second(p Hash) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[p]++
	if len(c.seen) > 1<<16 {
		clear(c.seen)
	}
	return c.seen[p] == 2
}

func (c *packCache) read(p Hash, off, n int64) ([]byte, bool) {
	c.mu.Lock()
	_, ok := c.used[p]
	if ok {
		c.used[p] = time.Now()
	}
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	f, err := os.Open(filepath.Join(c.dir, p.String()))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, false
	}
	return b, true // Decode checks the hash: a damaged cache file is a CorruptError
}

func (c *packCache) put(p Hash, r io.Reader) error {
	path := filepath.Join(c.dir, p.String())
	f, err := os.CreateTemp(c.dir, "tmp-")
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, c.max))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.used[p]; !ok {
		c.total += n
	}
	c.used[p], c.sizes[p] = time.Now(), n
	for c.total > c.max && len(c.used) > 1 {
		var old Hash
		var at time.Time
		for h, t := range c.used {
			if h != p && (at.IsZero() || t.Before(at)) {
				old, at = h, t
			}
		}
		c.dropLocked(old)
	}
	return nil
}

func (c *packCache) drop(p Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(p)
}

func (c *packCache) dropLocked(p Hash) {
	if _, ok := c.used[p]; !ok {
		return
	}
	os.Remove(filepath.Join(c.dir, p.String()))
	c.total -= c.sizes[p]
	delete(c.used, p)
	delete(c.sizes, p)
}

// Collect is gc for a store replicas share (DESIGN.md, "Replicas"), in two steps a grace
// apart so that no replica loses a chunk it is about to reference:
//
//   - sweep: chunks condemned more than grace ago that keep still does not keep are
//     deleted (a row revived meanwhile by an upload or a commit is left: the delete
//     re-checks condemned_at), then the packs left empty;
//   - mark: every other chunk keep does not keep is condemned: from now on Missing says
//     it is missing (a client sends it again, which revives it) and Keep revives it for a
//     commit that uses it;
//   - a condemned chunk keep keeps (a version came to use it after the mark) is revived:
//     left condemned, it was answered as missing and sent again by every copy.
//
// A copy whose missing-check came before the mark and whose commit comes more than grace
// after it fails with "chunks not there yet" and sends them when run again.
func (s *ObjectPacks) Collect(ctx context.Context, keep func(Hash) bool, grace time.Duration) (ReclaimReport, error) {
	var r ReclaimReport
	if err := s.Flush(ctx); err != nil {
		return r, err
	}
	type row struct {
		h         Hash
		size      int64
		condemned bool
		old       bool
	}
	var rows []row
	q, err := s.db.Query(ctx, `SELECT hash, size, condemned_at IS NOT NULL,
		coalesce(condemned_at < now() - make_interval(secs => $1), false) FROM cas_chunks`, grace.Seconds())
	if err != nil {
		return r, fmt.Errorf("chunk index: %w", err)
	}
	for q.Next() {
		var b []byte
		var x row
		if err := q.Scan(&b, &x.size, &x.condemned, &x.old); err != nil {
			q.Close()
			return r, err
		}
		x.h = Hash(b)
		rows = append(rows, x)
	}
	q.Close()
	if err := q.Err(); err != nil {
		return r, fmt.Errorf("chunk index: %w", err)
	}
	var sweep, mark, revive []Hash
	for _, x := range rows {
		switch {
		case keep(x.h):
			r.Live++
			if x.condemned { // a version came to use it after a gc condemned it
				revive = append(revive, x.h)
			}
		case x.old:
			sweep = append(sweep, x.h)
			r.Deleted++
			r.DeletedBytes += x.size
		case x.condemned:
			r.Condemned++
		default:
			mark = append(mark, x.h)
			r.Condemned++
		}
	}
	for i := 0; i < len(sweep); i += s3Batch {
		part := sweep[i:min(i+s3Batch, len(sweep))]
		if _, err := s.db.Exec(ctx, `DELETE FROM cas_chunks WHERE hash = ANY($1)
			AND condemned_at < now() - make_interval(secs => $2)`, HashBytes(part), grace.Seconds()); err != nil {
			return r, fmt.Errorf("chunk index: %w", err)
		}
	}
	for i := 0; i < len(mark); i += s3Batch {
		part := mark[i:min(i+s3Batch, len(mark))]
		if _, err := s.db.Exec(ctx, "UPDATE cas_chunks SET condemned_at = now() WHERE hash = ANY($1) AND condemned_at IS NULL", HashBytes(part)); err != nil {
			return r, fmt.Errorf("chunk index: %w", err)
		}
	}
	for i := 0; i < len(revive); i += s3Batch {
		part := revive[i:min(i+s3Batch, len(revive))]
		if _, err := s.db.Exec(ctx, "UPDATE cas_chunks SET condemned_at = NULL WHERE hash = ANY($1)", HashBytes(part)); err != nil {
			return r, fmt.Errorf("chunk index: %w", err)
		}
	}
	if err := s.dropEmptyPacks(ctx); err != nil {
		return r, err
	}
	return r, s.repack(ctx)
}

// repack rewrites the packs that the sweep left mostly empty: their remaining entries go
// to a new pack (checked as they are read), their rows move to it, and the old object goes
// once no row points into it. Two gcs repacking one pack at once make the same new pack
// (packs are named by their bytes); the rows move once.
func (s *ObjectPacks) repack(ctx context.Context) error {
	rows, err := s.db.Query(ctx, `SELECT p.name, p.bytes, coalesce(l.live, 0) FROM cas_packs p
		LEFT JOIN (SELECT pack, sum(stored) AS live FROM (SELECT DISTINCT pack, off, stored FROM cas_chunks) d GROUP BY pack) l
		ON l.pack = p.name`)
	if err != nil {
		return fmt.Errorf("chunk index: %w", err)
	}
	var sparse []Hash
	var sizes []int64
	for rows.Next() {
		var b []byte
		var size, live int64
		if err := rows.Scan(&b, &size, &live); err != nil {
			rows.Close()
			return err
		}
		if live > 0 && live*2 < size {
			sparse, sizes = append(sparse, Hash(b)), append(sizes, size)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for i, p := range sparse {
		if err := s.repackInto(ctx, []Hash{p}, []int64{sizes[i]}); err != nil {
			return err
		}
	}
	if len(sparse) == 0 {
		return nil
	}
	return s.dropEmptyPacks(ctx)
}

// maxRepack bounds the pack repack reads into memory.
const maxRepack = 1 << 30

// repackInto rewrites the packs olds (of the given sizes) as one new pack: their entries
// that still check out, each stored once (a group's frame serves all of its chunks), in
// their old order; then their rows move to it in one transaction. The old objects go with
// dropEmptyPacks once no row points into them.
func (s *ObjectPacks) repackInto(ctx context.Context, olds []Hash, sizes []int64) error {
	type moved struct {
		old              Hash
		oldOffs, newOffs []int64
	}
	var parts [][]byte
	var moves []moved
	var next int64
	var scratch []byte // groups are checked, not kept
	for i, old := range olds {
		size := sizes[i]
		if size <= 0 || size > maxRepack {
			continue // not ours to rewrite in memory; it stays as it is
		}
		type ent struct {
			h Hash
			e s3Entry
		}
		var ents []ent
		rows, err := s.db.Query(ctx, "SELECT hash, off, stored, size, enc, grp, goff, glen FROM cas_chunks WHERE pack = $1 ORDER BY off", old[:])
		if err != nil {
			return fmt.Errorf("chunk index: %w", err)
		}
		for rows.Next() {
			var b, grp []byte
			var x ent
			var enc int16
			var goff, glen *int64
			if err := rows.Scan(&b, &x.e.off, &x.e.stored, &x.e.size, &enc, &grp, &goff, &glen); err != nil {
				rows.Close()
				return err
			}
			x.h, x.e.enc = Hash(b), Encoding(enc)
			if x.e.enc == EncGroup && len(grp) == HashSize && goff != nil && glen != nil {
				x.e.grp, x.e.goff, x.e.glen = Hash(grp), *goff, *glen
			}
			ents = append(ents, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ents) == 0 {
			continue
		}
		obj, err := s.objs.GetRange(ctx, s.key(old), 0, size)
		if err != nil {
			return fmt.Errorf("read pack %s: %w", old.Short(12), err)
		}
		data := make([]byte, size)
		_, err = io.ReadFull(obj, data)
		obj.Close()
		if err != nil {
			if isNoSuchKey(err) {
				continue // another replica moved it meanwhile
			}
			return fmt.Errorf("read pack %s: %w", old.Short(12), err)
		}
		mv := moved{old: old}
		at := map[int64]bool{} // old offsets done
		for _, x := range ents {
			e := x.e
			if e.off < 0 || e.stored < 0 || e.off+e.stored > size {
				continue // fsck's to report
			}
			if at[e.off] {
				continue
			}
			frame := data[e.off : e.off+e.stored]
			var err error
			if e.enc == EncGroup {
				_, scratch, err = CheckGroup(e.grp, Raw{Enc: EncGroup, Len: e.glen, Data: frame}, scratch)
			} else {
				_, err = Decode(x.h, Raw{Enc: e.enc, Len: e.size, Data: frame}, nil)
			}
			if err != nil {
				continue // left where it is, for fsck to report
			}
			at[e.off] = true
			parts = append(parts, frame)
			mv.oldOffs, mv.newOffs = append(mv.oldOffs, e.off), append(mv.newOffs, next)
			next += e.stored
		}
		if len(mv.oldOffs) > 0 {
			moves = append(moves, mv)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	name, err := s.putPack(ctx, parts, next)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO cas_packs (name, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING", name[:], next); err != nil {
			return fmt.Errorf("index pack %s: %w", name.Short(12), err)
		}
		for _, mv := range moves {
			if mv.old == name {
				continue // the same bytes: nothing moves
			}
			_, err := tx.Exec(ctx, `UPDATE cas_chunks c SET pack = $1, off = m.newoff
				FROM unnest($2::bigint[], $3::bigint[]) AS m(oldoff, newoff)
				WHERE c.pack = $4 AND c.off = m.oldoff`, name[:], mv.oldOffs, mv.newOffs, mv.old[:])
			if err != nil {
				return fmt.Errorf("move chunks of pack %s: %w", mv.old.Short(12), err)
			}
		}
		return nil
	})
}

// Small packs. A server's upload request becomes a pack of its own (S3Batch), so a client
// that sends a few chunks per request (a tiny copy, a retry) would leave one tiny object
// per request; a local store appends them to one pack file instead. After a flush of a
// pack under smallPack, once the index holds coalesceAt or more such packs, they are
// rewritten into packs of up to maxCoalesce (repackInto) and the small objects removed:
// the number of small objects stays under coalesceAt whatever the request sizes.
const (
	smallPack   = 1 << 20
	coalesceAt  = 16
	maxCoalesce = 64 << 20
)

// afterFlush coalesces small packs when a flush made one; one coalescing per process at a
// time, and its failure only delays it (it is logged, the flush stands).
func (s *ObjectPacks) afterFlush(ctx context.Context, size int64) {
	if size >= smallPack || !s.coalescing.TryLock() {
		return
	}
	defer s.coalescing.Unlock()
	if err := s.Coalesce(context.WithoutCancel(ctx)); err != nil && s.cfg.OnError != nil {
		s.cfg.OnError(fmt.Sprintf("coalesce small packs: %v", err))
	}
}

// Coalesce rewrites the small packs into larger ones when there are coalesceAt or more.
func (s *ObjectPacks) Coalesce(ctx context.Context) error {
	rows, err := s.db.Query(ctx, "SELECT name, bytes FROM cas_packs WHERE bytes < $1 ORDER BY name LIMIT 4096", smallPack)
	if err != nil {
		return fmt.Errorf("chunk index: %w", err)
	}
	var names []Hash
	var sizes []int64
	for rows.Next() {
		var b []byte
		var n int64
		if err := rows.Scan(&b, &n); err != nil {
			rows.Close()
			return err
		}
		names, sizes = append(names, Hash(b)), append(sizes, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(names) < coalesceAt {
		return nil
	}
	for start := 0; start < len(names); {
		end, total := start, int64(0)
		for end < len(names) && total+sizes[end] <= maxCoalesce {
			total += sizes[end]
			end++
		}
		if err := s.repackInto(ctx, names[start:end], sizes[start:end]); err != nil {
			return err
		}
		start = end
	}
	return s.dropEmptyPacks(ctx)
}

// HashBytes returns each hash as a byte slice (a bytea[] parameter for PostgreSQL).
func HashBytes(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// CheckPacks checks that every indexed pack is an object of its recorded size; it returns
// the chunks of those that are not, each with the reason.
func (s *ObjectPacks) CheckPacks(ctx context.Context) (map[Hash]string, error) {
	rows, err := s.db.Query(ctx, "SELECT name, bytes FROM cas_packs")
	if err != nil {
		return nil, fmt.Errorf("chunk index: %w", err)
	}
	type pack struct {
		name Hash
		size int64
	}
	var packs []pack
	for rows.Next() {
		var b []byte
		var p pack
		if err := rows.Scan(&b, &p.size); err != nil {
			rows.Close()
			return nil, err
		}
		p.name = Hash(b)
		packs = append(packs, p)
	}
	rows.Close()
	bad := map[Hash]string{}
	for _, p := range packs {
		size, err := s.objs.Stat(ctx, s.key(p.name))
		reason := ""
		switch {
		case errors.Is(err, ErrNoObject):
			reason = "is missing from the object store"
		case err != nil:
			return nil, fmt.Errorf("stat pack %s: %w", p.name.Short(12), err)
		case size != p.size:
			reason = fmt.Sprintf("is %d bytes, indexed as %d", size, p.size)
		default:
			continue
		}
		crow, err := s.db.Query(ctx, "SELECT hash FROM cas_chunks WHERE pack = $1", p.name[:])
		if err != nil {
			return nil, err
		}
		for crow.Next() {
			var b []byte
			if err := crow.Scan(&b); err != nil {
				crow.Close()
				return nil, err
			}
			bad[Hash(b)] = fmt.Sprintf("its pack %s %s", p.name.Short(12), reason)
		}
		crow.Close()
	}
	return bad, nil
}
