package ops_test

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/cas/treecmp"
	"github.com/swcli/swcli/internal/engines"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
	"github.com/swcli/swcli/ops/server"
)

var engineSuite engines.Suite

// replicas is one cloud instance on PostgreSQL and S3, served by several servers.
type replicas struct {
	opt    ops.OpenOptions
	ins    []*ops.Instance
	srvs   []*server.Server
	urls   []string
	tokens map[string]string
}

// newReplicas starts n servers on a fresh database and bucket, with alice a member of
// mnist.
func newReplicas(t *testing.T, n int) *replicas {
	t.Helper()
	dsn := engineSuite.Database(t)
	s3, bucket := engineSuite.Bucket(t)
	for _, kv := range s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	r := &replicas{opt: ops.OpenOptions{Ledger: dsn, Packs: "s3://" + bucket + "/team", Exclusive: true}, tokens: map[string]string{}}
	for i := range n {
		opt := r.opt
		opt.Name = "replica" + string(rune('a'+i))
		in, err := ops.Open(ctx, t.TempDir(), opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		s := server.NewServer(in)
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		r.ins, r.srvs, r.urls = append(r.ins, in), append(r.srvs, s), append(r.urls, srv.URL)
	}
	tok, err := ops.AddUser(ctx, r.ins[0].Auth, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	r.tokens["alice"] = tok
	if err := ops.CreateServerProject(ctx, r.ins[0].Auth, "mnist", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *replicas) client(i int, user string) *client.Remote {
	return client.NewRemote("team", r.urls[i], r.tokens[user])
}

// checkClean runs fsck and ledger verify on the shared instance.
func (r *replicas) checkClean(t *testing.T) {
	t.Helper()
	rep, err := ops.Fsck(ctx, r.ins[0])
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("fsck: %v %v", rep, err)
	}
	last := r.ins[len(r.ins)-1]
	vr, err := last.Ledger.Verify(ctx, last.Chunks)
	if err != nil || len(vr.Problems) > 0 {
		t.Fatalf("ledger verify: %v %v", vr, err)
	}
}

// TestReplicasServeOneInstance: two servers on one PostgreSQL and bucket are one instance.
func TestReplicasServeOneInstance(t *testing.T) {
	r := newReplicas(t, 2)
	v1dir, v2dir := sources(t)
	local := openInstance(t, t.TempDir())
	v1 := buildVersion(t, local, "ml", v1dir)

	// Committed through one, listed by the other at once.
	r1, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml"}, r.client(0, "alice"), "mnist"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := r.client(1, "alice").Resolve(ctx, "mnist", "ml", "latest"); err != nil || v.ID != v1.ID {
		t.Fatalf("the other replica resolves %v (%v), want %s", v, err, v1.ID)
	}
	if info, err := r.client(1, "alice").Info(ctx, "mnist", "ml", "latest"); err != nil || info.Version.ID != v1.ID {
		t.Fatalf("info through the other replica: %v", err)
	}
	// Isolation holds across replicas: bob, in no project, learns nothing of alice's chunks
	// through the replica that did not store them.
	bobTok, err := ops.AddUser(ctx, r.ins[1].Auth, "bob", false)
	if err != nil {
		t.Fatal(err)
	}
	bob := client.NewRemote("team", r.urls[1], bobTok)
	if miss, err := bob.Missing(ctx, []cas.Hash{v1.Manifest}); err != nil || len(miss) != 1 {
		t.Fatalf("bob's missing-check of alice's manifest through the other replica: %v %v", miss, err)
	}
	if err := bob.GetChunks(ctx, []cas.Hash{v1.Manifest}, func(api.Chunk) error { return nil }); err == nil {
		t.Fatal("bob read alice's manifest through the other replica")
	}
	// The next version through the other replica sends only what is new: it knows what
	// alice may use from the shared ledger.
	buildVersion(t, local, "ml", v2dir)
	r2, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml"}, r.client(1, "alice"), "mnist"))
	if err != nil {
		t.Fatal(err)
	}
	if r2.SentBytes*2 > r1.SentBytes {
		t.Fatalf("second version through the other replica sent %d bytes; the first sent %d", r2.SentBytes, r1.SentBytes)
	}
	// Nothing missing: one round trip, nothing sent, whichever replica.
	r3, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml"}, r.client(0, "alice"), "mnist"))
	if err != nil || r3.SentChunks != 0 || len(r3.Versions) != 0 {
		t.Fatalf("third copy: %+v %v", r3, err)
	}

	// Uploads through one replica, commit through the other: nothing is sent twice.
	buildVersion(t, local, "other", smallFiles(t))
	split := &splitEndpoint{Remote: r.client(0, "alice"), commit: r.client(1, "alice")}
	if _, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "other"}, split, "mnist")); err != nil {
		t.Fatalf("uploads through one replica, commit through the other: %v", err)
	}

	// Two copies of one new version at once, one through each replica: one version.
	dir := t.TempDir()
	writeTree(t, dir, 77, 3)
	errs := copiesAtOnce(t, dir, "twin", r.client(0, "alice"), r.client(1, "alice"))
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("two copies through two replicas: %v / %v", errs[0], errs[1])
	}
	if _, total, err := r.client(0, "alice").Versions(ctx, "mnist", "twin", ledger.ListOptions{}); err != nil || total != 1 {
		t.Fatalf("after two copies of one version: %d versions, %v", total, err)
	}
	r.checkClean(t)

	// Everything copies back through either replica, byte for byte.
	fresh := openInstance(t, t.TempDir())
	if _, err := ops.Copy(ctx, copyReq(r.client(1, "alice"), "mnist", ops.RuntimeURI{Name: "twin"}, ops.LocalEndpoint{In: fresh}, "self")); err != nil {
		t.Fatal(err)
	}
	ex, err := ops.Extract(ctx, fresh, "self", "twin", "latest", filepath.Join(t.TempDir(), "x"), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := treecmp.Diff(dir, filepath.Join(ex.Dir, "export", "venv")); d != "" {
		t.Fatalf("copied back through the other replica:\n%s", d)
	}
}

// splitEndpoint sends chunks through one replica and commits through another.
type splitEndpoint struct {
	*client.Remote
	commit *client.Remote
}

func (s *splitEndpoint) Commit(c context.Context, project string, vs []api.CommitVersion) error {
	return s.commit.Commit(c, project, vs)
}

// TestReplicaGCNeverDropsWhatACopyIsAboutToUse: gc through one replica condemns chunks no
// version uses; a copy through another that was told they are present commits them
// anyway (the commit revives them), and only a gc after the grace deletes what nothing
// revived.
func TestReplicaGCNeverDropsWhatACopyIsAboutToUse(t *testing.T) {
	r := newReplicas(t, 2)
	local := openInstance(t, t.TempDir())
	dir := smallFiles(t)
	v := buildVersion(t, local, "app", dir)
	alice := r.client(0, "alice")
	if _, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "app"}, alice, "mnist")); err != nil {
		t.Fatal(err)
	}
	// Purged: its chunks are used by nothing, but alice uploaded them.
	if _, err := alice.Remove(ctx, "mnist", "app", v.ID, true); err != nil {
		t.Fatal(err)
	}
	admTok, err := ops.AddUser(ctx, r.ins[1].Auth, "root", true)
	if err != nil {
		t.Fatal(err)
	}
	gc := func() cas.ReclaimReport {
		t.Helper()
		rep, err := ops.AdminRemote{Remote: client.NewRemote("team", r.urls[0], admTok)}.GC(ctx)
		if err != nil {
			t.Fatalf("gc: %v", err)
		}
		return rep
	}
	// Copy it again as an admin (who may know every chunk), through the other replica;
	// between its missing-check (which finds everything present) and its commit, gc runs
	// twice through the first replica: the first condemns the chunks, the second finds them
	// condemned within the grace.
	hook := &commitHook{Endpoint: client.NewRemote("team", r.urls[1], admTok), before: func() {
		if rep := gc(); rep.Condemned == 0 {
			t.Errorf("gc condemned nothing after a purge: %+v", rep)
		}
		if rep := gc(); rep.Deleted != 0 {
			t.Errorf("gc within the grace deleted %d chunks", rep.Deleted)
		}
	}}
	res, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "app"}, hook, "mnist"))
	if err != nil || hook.ran != 1 {
		t.Fatalf("copy with two gcs before its commit: %v", err)
	}
	if res.SentChunks != 0 {
		t.Fatalf("the copy sent %d chunks; the server had them all", res.SentChunks)
	}
	r.checkClean(t)
	if rep := gc(); rep.Condemned != 0 || rep.Deleted != 0 {
		t.Fatalf("gc after the commit: %+v, want everything kept", rep)
	}
	// Purged again: past the grace (none here), a second gc deletes what the first condemned.
	if _, err := alice.Remove(ctx, "mnist", "app", v.ID, true); err != nil {
		t.Fatal(err)
	}
	r.srvs[0].GCGrace = 0
	gc()
	if rep := gc(); rep.Deleted == 0 || rep.Live != 0 {
		t.Fatalf("gc past the grace: %+v, want every chunk deleted", rep)
	}
	if miss, err := r.ins[1].Chunks.Missing(ctx, []cas.Hash{v.Manifest}); err != nil || len(miss) != 1 {
		t.Fatalf("the purged manifest is still there (%v)", err)
	}
	objs, err := r.ins[0].Chunks.(*cas.ObjectPacks).Objects(ctx)
	if err != nil || len(objs) != 0 {
		t.Fatalf("%d pack objects left after everything was deleted (%v)", len(objs), err)
	}
	r.checkClean(t)
}

// TestNginxReplicaKilledMidCopy: two replica processes behind nginx; one is killed with
// SIGKILL in the middle of a copy through nginx's URL, and the copy run again through the
// same URL completes on the other, sending only what had not been acknowledged.
func TestNginxReplicaKilledMidCopy(t *testing.T) {
	r := newReplicas(t, 1) // the users, and the engines' settings in the environment
	t.Setenv("SWCLI_LEDGER", r.opt.Ledger)
	t.Setenv("SWCLI_PACKS", r.opt.Packs)
	var cmds []*exec.Cmd
	var ups []string
	for range 2 {
		cmd, url := startChild(t, t.TempDir())
		cmds = append(cmds, cmd)
		ups = append(ups, strings.TrimPrefix(url, "http://"))
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}()
	ng, err := engines.StartNginx(ctx, ups)
	if err != nil {
		t.Fatal(err)
	}
	defer ng.Stop()

	dir := t.TempDir()
	writeTree(t, dir, 9, 12) // ~36 MB of incompressible chunks
	local := openInstance(t, t.TempDir())
	buildVersion(t, local, "ml", dir)
	prog := &countProgress{}
	req := copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml"}, client.NewRemote("team", ng.URL, r.tokens["alice"]), "mnist")
	req.BatchBytes, req.InFlight, req.Progress = 1<<20, 1, prog
	done := copyUntilAcknowledged(t, req, prog, 20)
	// Kill the first replica while a batch is in flight to it: stop it, wait until the
	// copy stalls (round robin has sent it the next batch), then SIGKILL it. nginx cannot
	// send a request body on to the other replica once it has streamed part of it, so
	// that batch fails and with it the copy.
	cmds[0].Process.Signal(syscall.SIGSTOP)
	for last, still := prog.chunks.Load(), time.Now(); time.Since(still) < 500*time.Millisecond; time.Sleep(20 * time.Millisecond) {
		if n := prog.chunks.Load(); n != last {
			last, still = n, time.Now()
		}
	}
	cmds[0].Process.Kill() // SIGKILL
	cmds[0].Wait()
	err = <-done
	confirmed := prog.chunks.Load()
	if err == nil {
		t.Fatal("the copy succeeded although a batch was in flight to the killed replica")
	}
	t.Logf("first copy after the kill: %v (%d chunks acknowledged)", err, confirmed)

	req.Progress = nil
	res, err := ops.Copy(ctx, req)
	if err != nil {
		t.Fatalf("the re-run through nginx: %v", err)
	}
	if int64(res.SentChunks) > max(0, int64(res.Chunks)-confirmed) {
		t.Fatalf("re-run sent %d chunks of %d; %d had been acknowledged before the kill", res.SentChunks, res.Chunks, confirmed)
	}
	if v, err := req.Dst.Resolve(ctx, "mnist", "ml", "latest"); err != nil || v.Status != ledger.StatusLive {
		t.Fatalf("after the re-run: %v %v", v, err)
	}
	r.checkClean(t)
}

// Replicas sign checkpoints with one key (kept in their database): a client follows the
// instance through either, and catches a history that does not extend what it saw.
func TestReplicasSignAlike(t *testing.T) {
	engines.Skip(t)
	r := newReplicas(t, 2)
	key, cp, err := ops.FollowLedger(ctx, r.client(0, "alice"), "", "")
	if err != nil || key == "" {
		t.Fatalf("first contact: %q %v", key, err)
	}
	e, _ := ledger.New(ledger.ProjectCreated, "more", "", "", ledger.EmptyData{})
	if _, err := r.ins[0].Ledger.Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	key2, cp2, err := ops.FollowLedger(ctx, r.client(1, "alice"), key, cp.Note)
	if err != nil || key2 != key || cp2.Size <= cp.Size {
		t.Fatalf("the other replica: %q %+v %v", key2, cp2, err)
	}
	n := 0
	r.ins[1].Ledger.Log(ctx, ledger.Filter{Types: []ledger.Type{ledger.LedgerKeyed}}, func(ledger.Event) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d ledger.key events for two replicas, want 1", n)
	}
	// A rotation through one replica: the other signs with the new key too.
	_, nk, err := ops.RotateLedgerKey(ctx, r.ins[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ops.FollowLedger(ctx, r.client(1, "alice"), nk, cp2.Note); err != nil {
		t.Fatalf("after a rotation, the other replica: %v", err)
	}
	r.checkClean(t)
}
