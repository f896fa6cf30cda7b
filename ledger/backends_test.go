package ledger

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/swcli/swcli/internal/engines"
)

// The ledger's conformance tests (effects, refusals, conflicts, resolve, tampering, replay,
// export, the model test) run on both backends through onBoth: once as a "pebble" subtest
// and once as a "postgres" one, whose openTest opens a fresh database on a real PostgreSQL
// started for this test binary.
func onBoth(t *testing.T, fn func(t *testing.T)) {
	t.Run("pebble", fn)
	t.Run("postgres", func(t *testing.T) {
		engines.Skip(t)
		fn(t)
	})
}

// onPostgres reports whether t runs under onBoth's postgres subtest.
func onPostgres(t testing.TB) bool { return strings.Contains(t.Name(), "/postgres") }

var engineSuite engines.Suite

// newTestDatabase creates an empty database on the test binary's PostgreSQL.
func newTestDatabase(t testing.TB) string { return engineSuite.Database(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	engineSuite.Stop()
	os.Exit(code)
}

// TestReplicasAppendInOneChain: several ledgers on one PostgreSQL database (what replicas
// are) append at once; every append lands, the chain is one, and each sees the others'.
func TestReplicasAppendInOneChain(t *testing.T) {
	dsn := newTestDatabase(t)
	const replicas, each = 4, 25
	ls := make([]*Ledger, replicas)
	for i := range ls {
		l, err := OpenPostgres(ctx, dsn, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ls[i] = l
	}
	mustAppend(t, ls[0], ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	var wg sync.WaitGroup
	errs := make(chan error, replicas*each)
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if _, err := l.Append(ctx, built(t, fmt.Sprint("r", i), fmt.Sprint(i, "-", j))); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, l := range ls {
		h, err := l.Head()
		if err != nil || h.Seq != 1+replicas*each {
			t.Fatalf("replica %d sees head %d (%v), want %d", i, h.Seq, err, 1+replicas*each)
		}
		vs, total, err := l.Versions("self", fmt.Sprint("r", (i+1)%replicas), ListOptions{})
		if err != nil || total != each || len(vs) == 0 {
			t.Fatalf("replica %d lists %d versions of another's runtime (%v), want %d", i, total, err, each)
		}
	}
	verifyOK(t, ls[replicas-1])
	// A conditional append made on a stale head fails on any replica.
	h, _ := ls[0].Head()
	mustAppend(t, ls[1], built(t, "r0", "late"))
	if _, err := ls[2].AppendIf(ctx, h.Seq, built(t, "r0", "stale")); !errors.Is(err, ErrConflict) {
		t.Fatalf("append on a stale head through another replica: %v, want a conflict", err)
	}
}
