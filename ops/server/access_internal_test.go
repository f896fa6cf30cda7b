package server

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/engines"
	"github.com/swcli/swcli/internal/pgschema"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
)

var engineSuite engines.Suite

func TestMain(m *testing.M) {
	code := m.Run()
	engineSuite.Stop()
	os.Exit(code)
}

// TestReplicaAllowsWhatAnotherCommitsMeanwhile: alice's two copies of one version race
// through two replicas. One commits through replica a (appending the version, then
// forgetting her uploads) while replica b, asked to commit the same version, asks the
// database what allows her its manifest. Whichever of replica b's reads the other commit
// lands before, replica b must find the manifest, in her uploads or in the ledger.
func TestReplicaAllowsWhatAnotherCommitsMeanwhile(t *testing.T) {
	for read := range 2 {
		t.Run(fmt.Sprintf("before read %d", read), func(t *testing.T) {
			landed := raceCommits(t, read)
			if read == 0 && !landed {
				t.Fatal("replica b allowed the manifest without asking the database")
			}
		})
	}
}

// raceCommits commits one version through replica a just before replica b's read-th
// read of the database while it commits the same version, and fails unless both commits
// succeed; it reports whether replica b made that read.
func raceCommits(t *testing.T, read int) (landed bool) {
	ctx := context.Background()
	pool, err := pgschema.Open(ctx, engineSuite.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// The chunks live in one store both replicas read, as a bucket is.
	st, err := cas.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	res, err := cas.Ingest(ctx, st, []cas.Input{{Data: []byte("name: twin\n"), Dest: "runtime.yaml"},
		{Data: []byte("print('hello')\n"), Dest: "export/venv/hello.py"}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replica := func(name string) (*Server, string) {
		in := &ops.Instance{Root: t.TempDir(), Name: name, Chunks: st, Ledger: ledger.OnPostgres(pool, ledger.Options{}),
			Auth: ops.PGAuth{DB: pool}, Actor: "test", ToolVersion: "dev", DB: pool}
		s := NewServer(in)
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		return s, srv.URL
	}
	_, urlA := replica("replicaa")
	b, urlB := replica("replicab")
	tok, err := ops.AddUser(ctx, ops.PGAuth{DB: pool}, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.CreateServerProject(ctx, ops.PGAuth{DB: pool}, "mnist", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	throughA, throughB := client.NewRemote("team", urlA, tok), client.NewRemote("team", urlB, tok)

	// Alice sends the version's chunks through replica a.
	m, err := cas.LoadManifest(ctx, st, res.Hash)
	if err != nil {
		t.Fatal(err)
	}
	var sent []api.Chunk
	for _, h := range append(m.Chunks(), res.Hash) {
		raw, err := st.GetRaw(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, api.Chunk{Hash: h, Raw: raw})
	}
	if err := throughA.PutChunks(ctx, sent); err != nil {
		t.Fatal(err)
	}
	commit := []api.CommitVersion{{Runtime: "twin", Version: ops.VersionID(res.Hash), Manifest: res.Hash, Mode: "venv", Tags: []string{}}}

	// Replica b has followed the ledger as far as it went before the race.
	if err := b.access.load(ctx, b.in); err != nil {
		t.Fatal(err)
	}
	reads := 0
	b.access.beforeRead = func() {
		if reads++; reads-1 != read {
			return
		}
		landed = true
		if err := throughA.Commit(ctx, "mnist", commit); err != nil {
			t.Errorf("commit through replica a: %v", err)
		}
		// Replica a forgets the uploads after it answers: wait for it.
		for {
			up, err := b.access.uploaded(ctx, "alice", []cas.Hash{res.Hash})
			if err != nil {
				t.Errorf("uploads: %v", err)
				return
			}
			if !up[res.Hash] {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := throughB.Commit(ctx, "mnist", commit); err != nil {
		t.Fatalf("commit through replica b while replica a committed the same version: %v", err)
	}
	if v, err := throughB.Resolve(ctx, "mnist", "twin", "latest"); err != nil || v.Manifest != res.Hash {
		t.Fatalf("replica b resolves %v (%v)", v, err)
	}
	return landed
}
