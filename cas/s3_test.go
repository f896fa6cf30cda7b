package cas_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/cas/storetest"
	"github.com/swcli/swcli/internal/engines"
	"github.com/swcli/swcli/internal/pgschema"
)

var engineSuite engines.Suite

func TestMain(m *testing.M) {
	code := m.Run()
	engineSuite.Stop()
	os.Exit(code)
}

// openS3 opens an S3 store on a fresh bucket and database of real engines.
func openS3(t *testing.T) *cas.S3 {
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

// TestS3ReplicasShareOneStore: what one replica flushes, another (its own S3 value on the
// same bucket and database) finds and reads at once; a pack is one object, written whole.
func TestS3ReplicasShareOneStore(t *testing.T) {
	ctx := context.Background()
	a := openS3(t)
	b, err := cas.OpenS3(ctx, a.Config(), a.DB())
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
