package server

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"sync/atomic"
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

var (
	engineSuite engines.Suite
	ctx         = context.Background()
)

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
func raceCommits(t *testing.T, read int) bool {
	r := twoReplicas(t, nil)
	var reads atomic.Int32 // the hook runs in replica b's handler
	var landed atomic.Bool
	r.b.access.beforeRead = func() {
		if reads.Add(1)-1 != int32(read) {
			return
		}
		landed.Store(true)
		r.commitThroughA(t)
	}
	if err := r.throughB.Commit(ctx, "mnist", r.commit); err != nil {
		t.Fatalf("commit through replica b while replica a committed the same version: %v", err)
	}
	if v, err := r.throughB.Resolve(ctx, "mnist", "twin", "latest"); err != nil || v.Manifest != r.manifest {
		t.Fatalf("replica b resolves %v (%v)", v, err)
	}
	return landed.Load()
}

// TestReplicaReadsAgainAManifestItCouldNotRead: a version committed through replica a
// whose manifest replica b once failed to read (the bucket did not answer) is not left
// out of what alice may use there: the copy told to run again then commits.
func TestReplicaReadsAgainAManifestItCouldNotRead(t *testing.T) {
	var failing *flakyStore
	r := twoReplicas(t, func(st ops.ChunkStore) ops.ChunkStore {
		failing = &flakyStore{ChunkStore: st}
		return failing
	})
	r.commitThroughA(t)
	failing.fail = r.manifest
	failing.left.Store(1)
	err := r.throughB.Commit(ctx, "mnist", r.commit)
	if failing.left.Load() == 1 {
		t.Fatalf("replica b did not read the manifest (commit: %v)", err)
	}
	if oe := (*ops.Error)(nil); err != nil && !(errors.As(err, &oe) && oe.Kind == ops.KindExists) {
		t.Fatalf("commit through replica b while the bucket failed: %v", err)
	}
	if err := r.throughB.Commit(ctx, "mnist", r.commit); err != nil {
		t.Fatalf("commit through replica b once the bucket answered: %v", err)
	}
}

// flakyStore fails the next left reads of one chunk, as a bucket that does not answer.
type flakyStore struct {
	ops.ChunkStore
	fail cas.Hash
	left atomic.Int32
}

func (f *flakyStore) Get(ctx context.Context, h cas.Hash) ([]byte, error) {
	if h == f.fail && f.left.Add(-1) >= 0 {
		return nil, errors.New("the bucket did not answer")
	}
	return f.ChunkStore.Get(ctx, h)
}

// replicaPair is two servers on one database and one chunk store, alice a member of
// mnist, and one version whose chunks she has sent through replica a.
type replicaPair struct {
	b                  *Server
	throughA, throughB *client.Remote
	manifest           cas.Hash
	commit             []api.CommitVersion
}

// twoReplicas makes a replicaPair; wrapB, when set, wraps replica b's chunk store.
func twoReplicas(t *testing.T, wrapB func(ops.ChunkStore) ops.ChunkStore) *replicaPair {
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
	replica := func(name string, chunks ops.ChunkStore) (*Server, string) {
		in := &ops.Instance{Root: t.TempDir(), Name: name, Chunks: chunks, Ledger: ledger.OnPostgres(pool, ledger.Options{}),
			Auth: ops.PGAuth{DB: pool}, Actor: "test", ToolVersion: "dev", DB: pool}
		s := NewServer(in)
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		return s, srv.URL
	}
	var chunksB ops.ChunkStore = st
	if wrapB != nil {
		chunksB = wrapB(st)
	}
	_, urlA := replica("replicaa", st)
	b, urlB := replica("replicab", chunksB)
	tok, err := ops.AddUser(ctx, ops.PGAuth{DB: pool}, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.CreateServerProject(ctx, ops.PGAuth{DB: pool}, "mnist", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	r := &replicaPair{b: b, throughA: client.NewRemote("team", urlA, tok), throughB: client.NewRemote("team", urlB, tok),
		manifest: res.Hash,
		commit:   []api.CommitVersion{{Runtime: "twin", Version: ops.VersionID(res.Hash), Manifest: res.Hash, Mode: "venv", Tags: []string{}}}}

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
	if err := r.throughA.PutChunks(ctx, sent); err != nil {
		t.Fatal(err)
	}
	// Replica b has followed the ledger as far as it went before.
	if err := b.access.load(ctx, b.in); err != nil {
		t.Fatal(err)
	}
	return r
}

// commitThroughA commits the version through replica a and waits until replica a has
// forgotten alice's uploads, which it does after it answers.
func (r *replicaPair) commitThroughA(t *testing.T) {
	if err := r.throughA.Commit(ctx, "mnist", r.commit); err != nil {
		t.Errorf("commit through replica a: %v", err)
	}
	for {
		up, err := r.b.access.uploaded(ctx, "alice", []cas.Hash{r.manifest})
		if err != nil {
			t.Errorf("uploads: %v", err)
			return
		}
		if !up[r.manifest] {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
