package engines

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Suite starts the engines a test binary needs once, on first use, and hands each test a
// fresh database or bucket. Stop it from TestMain.
type Suite struct {
	pgOnce sync.Once
	pg     *Postgres
	pgErr  error
	s3Once sync.Once
	s3     *S3
	s3Err  error
	n      atomic.Int64
}

// Skip skips t under -short: the engines take seconds to start (and SeaweedFS minutes to
// build, once).
func Skip(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL and SeaweedFS (started by the test); CI runs it without -short")
	}
}

// Database creates an empty database and returns its address (a postgres:// URL).
func (s *Suite) Database(t testing.TB) string {
	t.Helper()
	Skip(t)
	s.pgOnce.Do(func() { s.pg, s.pgErr = StartPostgres(context.Background()) })
	if s.pgErr != nil {
		t.Fatalf("start PostgreSQL: %v", s.pgErr)
	}
	ctx := context.Background()
	name := fmt.Sprintf("test_%d", s.n.Add(1))
	conn, err := pgx.Connect(ctx, s.pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return s.pg.URL(name)
}

// Bucket creates an empty bucket and returns the S3 server and the bucket's name.
func (s *Suite) Bucket(t testing.TB) (*S3, string) {
	t.Helper()
	Skip(t)
	s.s3Once.Do(func() {
		var weed string
		if weed, s.s3Err = WeedBin(repoRoot()); s.s3Err == nil {
			s.s3, s.s3Err = StartS3(context.Background(), weed)
		}
	})
	if s.s3Err != nil {
		t.Fatalf("start SeaweedFS: %v", s.s3Err)
	}
	name := fmt.Sprintf("test-%d", s.n.Add(1))
	c, err := s.s3.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatal(err)
	}
	return s.s3, name
}

// Client is a minio client of the server, path-style.
func (s *S3) Client() (*minio.Client, error) {
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		return nil, err
	}
	return minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.Secret, ""),
		BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
}

// Env is the AWS SDK's standard variables for this server.
func (s *S3) Env() []string {
	return []string{"AWS_ENDPOINT_URL=" + s.Endpoint, "AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.Secret, "AWS_REGION=us-east-1", "AWS_S3_ADDRESSING_STYLE=path"}
}

// Stop stops what was started.
func (s *Suite) Stop() {
	if s.pg != nil {
		s.pg.Stop()
	}
	if s.s3 != nil {
		s.s3.Stop()
	}
}

// repoRoot is the directory holding go.mod, above the test's directory.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
