package cas_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/cas/storetest"
	"github.com/swcli/swcli/internal/engines"
	"github.com/swcli/swcli/internal/pgschema"
)

var engineSuite engines.Suite

func TestMain(m *testing.M) {
	// The tests ingest trees they have just written, then again: files are trusted on their
	// stat at once (TestRecentFilesAreReadAgain moves the clock back itself).
	cas.ShiftFSClock(time.Hour)
	code := m.Run()
	engineSuite.Stop()
	os.Exit(code)
}

// openS3 opens an S3 store on a fresh bucket and database of real engines.
func openS3(t *testing.T) *cas.ObjectPacks {
	t.Helper()
	ctx := context.Background()
	dsn := engineSuite.Database(t)
	srv, bucket := engineSuite.Bucket(t)
	pool, err := pgschema.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg, err := cas.ParseS3URL("s3://" + bucket + "/swcli/packs")
	if err != nil {
		t.Fatal(err)
	}
	cfg.CacheDir = t.TempDir()
	st, err := cas.OpenS3(ctx, cfg, pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestS3Conformance: the S3 pack store (SeaweedFS, PostgreSQL index) passes the store suite.
func TestS3Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cas.Store { return openS3(t) })
}

// openDirPacks opens the pack store over a directory of objects (DirObjects), its index in
// a fresh database of a real PostgreSQL.
func openDirPacks(t *testing.T) *cas.ObjectPacks {
	t.Helper()
	ctx := context.Background()
	pool, err := pgschema.Open(ctx, engineSuite.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st, err := cas.OpenPacks(ctx, cas.DirObjects{Dir: t.TempDir()}, pool, cas.PacksConfig{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestDirObjectsConformance: the same pack store over another object backend (a directory)
// passes the same suite: the index, gc and repack are the backend's no more than S3's.
func TestDirObjectsConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cas.Store { return openDirPacks(t) })
}

// Every ObjectStore keeps the contract of each method (objects.go): whole puts, ranges,
// ErrNoObject for what is absent, listing by prefix, idempotent deletes.
func TestObjectStoreContract(t *testing.T) {
	backends := map[string]func(t *testing.T) cas.ObjectStore{
		"dir": func(t *testing.T) cas.ObjectStore { return cas.DirObjects{Dir: t.TempDir()} },
	}
	if !testing.Short() {
		backends["s3"] = func(t *testing.T) cas.ObjectStore {
			srv, bucket := engineSuite.Bucket(t)
			for _, kv := range srv.Env() {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			cfg, err := cas.ParseS3URL("s3://" + bucket + "/pre")
			if err != nil {
				t.Fatal(err)
			}
			o, err := cas.NewS3Objects(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			o := open(t)
			body := []byte("0123456789abcdef")
			if err := o.Put(ctx, "packs/ab/one", bytes.NewReader(body), int64(len(body))); err != nil {
				t.Fatal(err)
			}
			if n, err := o.Stat(ctx, "packs/ab/one"); err != nil || n != 16 {
				t.Fatalf("stat: %d %v", n, err)
			}
			for _, c := range []struct {
				off, n int64
				want   string
			}{{0, -1, string(body)}, {4, 3, "456"}, {10, -1, "abcdef"}} {
				r, err := o.GetRange(ctx, "packs/ab/one", c.off, c.n)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || string(got) != c.want {
					t.Fatalf("range %d+%d: %q %v, want %q", c.off, c.n, got, err, c.want)
				}
			}
			if _, err := o.Stat(ctx, "packs/none"); !errors.Is(err, cas.ErrNoObject) {
				t.Fatalf("stat of an absent object: %v", err)
			}
			if r, err := o.GetRange(ctx, "packs/none", 0, 4); err == nil {
				_, err = io.ReadAll(r)
				r.Close()
				if !errors.Is(err, cas.ErrNoObject) {
					t.Fatalf("read of an absent object: %v", err)
				}
			} else if !errors.Is(err, cas.ErrNoObject) {
				t.Fatalf("range of an absent object: %v", err)
			}
			o.Put(ctx, "other/x", bytes.NewReader([]byte("x")), 1)
			var names []string
			if err := o.List(ctx, "packs/", func(name string, size int64) error {
				names = append(names, fmt.Sprint(name, " ", size))
				return nil
			}); err != nil || len(names) != 1 || names[0] != "packs/ab/one 16" {
				t.Fatalf("list packs/: %v %v", names, err)
			}
			if err := o.Delete(ctx, "packs/ab/one"); err != nil {
				t.Fatal(err)
			}
			if err := o.Delete(ctx, "packs/ab/one"); err != nil {
				t.Fatalf("deleting an absent object: %v", err)
			}
			if _, err := o.Stat(ctx, "packs/ab/one"); !errors.Is(err, cas.ErrNoObject) {
				t.Fatalf("stat after delete: %v", err)
			}
		})
	}
}

// TestS3ReplicasShareOneStore: what one replica flushes, another (its own S3 value on the
// same bucket and database) finds and reads at once; a pack is one object, written whole.
func TestS3ReplicasShareOneStore(t *testing.T) {
	ctx := context.Background()
	a := openS3(t)
	b, err := cas.OpenPacks(ctx, a.Backend(), a.DB(), a.Config())
	if err != nil {
		t.Fatal(err)
	}
	var hs []cas.Hash
	for i := range 200 {
		data := []byte(strings.Repeat(fmt.Sprint("chunk ", i, " "), 50+i))
		h := cas.Sum(data)
		hs = append(hs, h)
		if err := a.Put(ctx, h, data); err != nil {
			t.Fatal(err)
		}
	}
	if miss, _ := b.Missing(ctx, hs); len(miss) != len(hs) {
		t.Fatalf("before the flush another replica sees %d of %d chunks", len(hs)-len(miss), len(hs))
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if miss, err := b.Missing(ctx, hs); err != nil || len(miss) != 0 {
		t.Fatalf("after the flush another replica lacks %d chunks (%v)", len(miss), err)
	}
	for _, h := range hs {
		if data, err := b.Get(ctx, h); err != nil || cas.Sum(data) != h {
			t.Fatalf("read through another replica: %v", err)
		}
	}
	objs, err := a.Objects(ctx)
	if err != nil || len(objs) != 1 {
		t.Fatalf("200 chunks in one flush made %d pack objects (%v), want 1", len(objs), err)
	}
}

// TestS3CollectRepacks: gc condemns what is not kept, deletes it a grace later, and rewrites
// a pack left mostly empty; what is kept reads back from the new pack, and the old object
// is gone.
func TestS3CollectRepacks(t *testing.T) {
	ctx := context.Background()
	st := openS3(t)
	var hs []cas.Hash
	var datas [][]byte
	for i := range 40 {
		data := []byte(strings.Repeat(fmt.Sprint("chunk ", i, " "), 300+i))
		h := cas.Sum(data)
		hs, datas = append(hs, h), append(datas, data)
		if err := st.Put(ctx, h, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := st.Objects(ctx)
	keep := map[cas.Hash]bool{hs[3]: true, hs[17]: true, hs[30]: true}
	keepFn := func(h cas.Hash) bool { return keep[h] }
	rep, err := st.Collect(ctx, keepFn, time.Hour)
	if err != nil || rep.Condemned != 37 || rep.Deleted != 0 {
		t.Fatalf("first gc: %+v %v, want 37 condemned, none deleted", rep, err)
	}
	if miss, _ := st.Missing(ctx, hs); len(miss) != 37 {
		t.Fatalf("condemned chunks answered present: %d missing of 40", len(miss))
	}
	if rep, err = st.Collect(ctx, keepFn, 0); err != nil || rep.Deleted != 37 || rep.Live != 3 {
		t.Fatalf("gc past the grace: %+v %v", rep, err)
	}
	after, err := st.Objects(ctx)
	if err != nil || len(after) != 1 || len(before) != 1 || after[0] == before[0] {
		t.Fatalf("packs before %v, after %v (%v): want the one pack rewritten", before, after, err)
	}
	for i, h := range hs {
		got, err := st.Get(ctx, h)
		switch {
		case keep[h] && (err != nil || !bytes.Equal(got, datas[i])):
			t.Fatalf("kept chunk %d after repack: %v", i, err)
		case !keep[h] && !errors.Is(err, cas.ErrNotFound):
			t.Fatalf("deleted chunk %d: %v", i, err)
		}
	}
	if bad, err := st.CheckPacks(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("check packs after repack: %v %v", bad, err)
	}
}

// 500 uploads of 100 bytes made 500 objects of 100 bytes (issue 25): each upload request
// is a pack of its own. Small packs are coalesced as they accumulate: the bucket holds a
// handful of objects, every chunk reads back, and the packs check out.
func TestS3SmallUploadsCoalesce(t *testing.T) {
	ctx := context.Background()
	st := openS3(t)
	var hs []cas.Hash
	for i := range 500 {
		data := fmt.Appendf(nil, "%-100d", i)
		h := cas.Sum(data)
		hs = append(hs, h)
		b := st.NewBatch()
		if _, err := b.PutEncoded(ctx, h, cas.Raw{Enc: cas.EncRaw, Len: int64(len(data)), Data: data}); err != nil {
			t.Fatal(err)
		}
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := st.Objects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("500 uploads of 100 bytes: %d objects", len(objs))
	if len(objs) > 20 {
		t.Fatalf("500 uploads of 100 bytes left %d objects", len(objs))
	}
	for i, h := range hs {
		got, err := st.Get(ctx, h)
		if err != nil || string(got) != fmt.Sprintf("%-100d", i) {
			t.Fatalf("chunk %d after coalescing: %q %v", i, got, err)
		}
	}
	if bad, err := st.CheckPacks(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("check packs after coalescing: %v %v", bad, err)
	}
}

// TestCollectRevivesWhatItCondemnedThatIsNowKept: a chunk a gc condemned that a later gc
// keeps (a version came to use it meanwhile) is present again: not answered as missing,
// so that no copy sends it once more, and never deleted.
func TestCollectRevivesWhatItCondemnedThatIsNowKept(t *testing.T) {
	ctx := context.Background()
	st := openDirPacks(t)
	var hs []cas.Hash
	for i := range 4 {
		data := []byte(strings.Repeat(fmt.Sprint("used later ", i, " "), 100))
		h := cas.Sum(data)
		hs = append(hs, h)
		if err := st.Put(ctx, h, data); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Collect(ctx, func(cas.Hash) bool { return false }, time.Hour); err != nil {
		t.Fatal(err)
	}
	if miss, err := st.Missing(ctx, hs); err != nil || len(miss) != 4 {
		t.Fatalf("after the mark, %d of 4 missing (%v)", len(miss), err)
	}
	kept := func(h cas.Hash) bool { return h != hs[3] }
	if rep, err := st.Collect(ctx, kept, 0); err != nil || rep.Live != 3 || rep.Deleted != 1 {
		t.Fatalf("gc keeping three: %+v %v", rep, err)
	}
	if miss, err := st.Missing(ctx, hs); err != nil || len(miss) != 1 || miss[0] != hs[3] {
		t.Fatalf("after a gc that keeps three, missing %v (%v), want only the fourth", miss, err)
	}
}
