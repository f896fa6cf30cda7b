package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/pgschema"
	"github.com/swcli/swcli/ledger"
)

// ChunkStore is what a server needs of its chunk store: cas.Local (the embedded default)
// or cas.ObjectPacks (packs in a bucket, index in PostgreSQL), which replicas share.
type ChunkStore interface {
	cas.Store
	// Absent answers which of hs the store cannot serve (ledger verify).
	Absent(ctx context.Context, hs []cas.Hash) ([]cas.Hash, error)
	// Transfer hands out chunks as they travel (a group whole when all of it is asked).
	Transfer(ctx context.Context, hs []cas.Hash, fn func(i int, h cas.Hash, r cas.Raw) error) error
	// NewBatch starts what one upload request stores (cas.Batch).
	NewBatch() cas.Batch
	// Keep revives the chunks of hs that a gc condemned (cas.ObjectPacks; a local store condemns
	// none) and returns the ones the store lacks: what a commit checks.
	Keep(ctx context.Context, hs []cas.Hash) ([]cas.Hash, error)
	Close() error
}

// cloud reports whether opt asks for PostgreSQL and S3.
func (opt OpenOptions) cloud() bool { return opt.Ledger != "" || opt.Packs != "" }

// openCloud opens an instance whose ledger, users and chunk index live in PostgreSQL and
// whose packs live in S3; root then holds only caches (and this replica's socket).
func openCloud(ctx context.Context, root string, opt OpenOptions) (*Instance, error) {
	if opt.Ledger == "" || opt.Packs == "" {
		return nil, Errorf(KindUsage, "give both: --ledger postgres://… --packs s3://BUCKET/PREFIX (or SWCLI_LEDGER and SWCLI_PACKS)",
			"a server on PostgreSQL and S3 needs both --ledger and --packs")
	}
	if !strings.HasPrefix(opt.Ledger, "postgres://") && !strings.HasPrefix(opt.Ledger, "postgresql://") {
		return nil, Errorf(KindUsage, "e.g. postgres://user@host:5432/swcli", "--ledger %q: want a postgres:// URL", redactURL(opt.Ledger))
	}
	cfg, err := cas.ParseS3URL(opt.Packs)
	if err != nil {
		return nil, Errorf(KindUsage, "e.g. s3://swcli-packs/team", "--packs: %v", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("open instance %s: %w", root, err)
	}
	pool, err := pgschema.Open(ctx, opt.Ledger)
	if err != nil {
		return nil, Errorf(KindUsage, "check --ledger: the database must exist and accept this user", "postgres %s: %v", redactURL(opt.Ledger), err)
	}
	cfg.CacheDir = filepath.Join(root, "cache", "packs")
	st, err := cas.OpenS3(ctx, cfg, pool)
	if err != nil {
		pool.Close()
		return nil, Errorf(KindUsage, "check --packs and AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY", "%v", err)
	}
	in := &Instance{Root: root, Name: opt.Name, Chunks: st, Ledger: ledger.OnPostgres(pool, ledger.Options{}),
		Auth: PGAuth{DB: pool}, Actor: Actor(), ToolVersion: opt.ToolVersion, DB: pool}
	if in.Name == "" {
		in.Name = "local"
	}
	if in.ToolVersion == "" {
		in.ToolVersion = "dev"
	}
	return in, nil
}

// redactURL hides a password in a URL for messages.
func redactURL(s string) string {
	if at := strings.LastIndex(s, "@"); at > 0 {
		if scheme := strings.Index(s, "://"); scheme >= 0 && scheme < at {
			user := s[scheme+3 : at]
			if u, _, ok := strings.Cut(user, ":"); ok {
				return s[:scheme+3] + u + ":***" + s[at:]
			}
		}
	}
	return s
}

// closeCloud closes what openCloud opened.
func (in *Instance) closeCloud() error {
	err := errors.Join(in.Chunks.Close(), in.Ledger.Close())
	in.DB.Close()
	return err
}
