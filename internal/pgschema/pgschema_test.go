package pgschema_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/swcli/swcli/internal/engines"
	"github.com/swcli/swcli/internal/pgschema"
)

var suite engines.Suite

func TestMain(m *testing.M) {
	code := m.Run()
	suite.Stop()
	os.Exit(code)
}

// TestMigrateOnceEach: servers starting together on an empty database apply each migration
// once; a database whose schema is newer than the binary is refused, naming both versions.
func TestMigrateOnceEach(t *testing.T) {
	ctx := context.Background()
	dsn := suite.Database(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := pgschema.Open(ctx, dsn)
			if err == nil {
				pool.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ms, err := pgschema.All()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n, top int
	if err := conn.QueryRow(ctx, "SELECT count(*), max(version) FROM swcli_schema").Scan(&n, &top); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || top != len(ms) {
		t.Fatalf("schema table has %d rows up to %d, want %d", n, top, len(ms))
	}
	if _, err := conn.Exec(ctx, "INSERT INTO swcli_schema (version, name) VALUES ($1, 'from the future')", len(ms)+1); err != nil {
		t.Fatal(err)
	}
	_, err = pgschema.Open(ctx, dsn)
	if err == nil || !strings.Contains(err.Error(), "database schema is version") {
		t.Fatalf("a newer schema: %v", err)
	}
}
