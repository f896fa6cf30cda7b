package engines_test

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/swcli/swcli/internal/engines"
)

// TestPostgresStarts: the harness starts a real PostgreSQL in a temporary directory (as
// nobody when the tests run as root), and a client can use it over its socket.
func TestPostgresStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL (initdb + postgres, about a second); CI runs it without -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := engines.StartPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (k bytea PRIMARY KEY, v bytea NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	var v []byte
	if err := conn.QueryRow(ctx, "SELECT v FROM t WHERE k = $1", []byte("k")).Scan(&v); err != nil || string(v) != "v" {
		t.Fatalf("read back %q: %v", v, err)
	}
	var version string
	conn.QueryRow(ctx, "SHOW server_version").Scan(&version)
	t.Logf("PostgreSQL %s on port %d", version, pg.Port)
}

// TestS3Starts: SeaweedFS's S3 gateway starts in a temporary directory and serves what the
// pack store needs: bucket, whole-object put, ranged get, list, delete.
func TestS3Starts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds SeaweedFS once (~7 CPU-minutes, cached) and starts it; CI runs it without -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	weed, err := engines.WeedBin("../..")
	if err != nil {
		t.Fatal(err)
	}
	s3, err := engines.StartS3(ctx, weed)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Stop()
	u, _ := url.Parse(s3.Endpoint)
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(s3.AccessKey, s3.Secret, ""), Secure: false,
		BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MakeBucket(ctx, "packs", minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789"), 100_000)
	if _, err := c.PutObject(ctx, "packs", "p/1.pack", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	opt := minio.GetObjectOptions{}
	opt.SetRange(123_456, 123_465)
	obj, err := c.GetObject(ctx, "packs", "p/1.pack", opt)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || string(got) != "6789012345" {
		t.Fatalf("ranged get: %q %v", got, err)
	}
	n := 0
	for o := range c.ListObjects(ctx, "packs", minio.ListObjectsOptions{Prefix: "p/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("listed %d objects", n)
	}
	if err := c.RemoveObject(ctx, "packs", "p/1.pack", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// A wrong secret is refused.
	bad, _ := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(s3.AccessKey, "wrong", ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if _, err := bad.PutObject(ctx, "packs", "p/2.pack", bytes.NewReader(data[:10]), 10, minio.PutObjectOptions{}); err == nil {
		t.Fatal("a wrong secret was accepted")
	}
}
