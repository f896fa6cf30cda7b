package ops_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/cas/treecmp"
	"github.com/swcli/swcli/internal/corpus"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
	"github.com/swcli/swcli/ops/server"
)

var ctx = context.Background()

const childServerEnv = "SWCLI_TEST_SERVER_ROOT"

// TestMain doubles as a server process for the kill test.
func TestMain(m *testing.M) {
	if root := os.Getenv(childServerEnv); root != "" {
		debug.SetMemoryLimit(server.ServerMemoryLimit) // as 'swcli server run' does
		in, err := ops.Open(ctx, root, ops.OpenOptions{Name: "child", Exclusive: true,
			Ledger: os.Getenv("SWCLI_LEDGER"), Packs: os.Getenv("SWCLI_PACKS")})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		srv := httptest.NewUnstartedServer(server.NewServer(in).Handler())
		srv.Start()
		fmt.Println(srv.URL)
		select {}
	}
	code := m.Run()
	engineSuite.Stop()
	os.Exit(code)
}

// openServerInstance opens a root as a server does: for itself alone.
func openServerInstance(t testing.TB, root string) *ops.Instance {
	t.Helper()
	in, err := ops.Open(ctx, root, ops.OpenOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

func openInstance(t testing.TB, root string) *ops.Instance {
	t.Helper()
	in, err := ops.Open(ctx, root, ops.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

type cloud struct {
	root   string
	url    string
	tokens map[string]string
}

// newCloud makes a server root with users alice (member of mnist) and bob (member of
// secret), serving on a random loopback port.
func newCloud(t *testing.T) *cloud {
	t.Helper()
	c := &cloud{root: t.TempDir(), tokens: map[string]string{}}
	for _, u := range []string{"alice", "bob"} {
		tok, err := ops.AddUser(ctx, ops.FileAuth{Root: c.root}, u, false)
		if err != nil {
			t.Fatal(err)
		}
		c.tokens[u] = tok
	}
	if err := ops.CreateServerProject(ctx, ops.FileAuth{Root: c.root}, "mnist", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	if err := ops.CreateServerProject(ctx, ops.FileAuth{Root: c.root}, "secret", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cloud) serve(t *testing.T, tune ...func(*server.Server)) {
	in := openServerInstance(t, c.root)
	s := server.NewServer(in)
	for _, f := range tune {
		f(s)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	c.url = srv.URL
}

func (c *cloud) client(user string) *client.Remote {
	return client.NewRemote("team", c.url, c.tokens[user])
}

// writeTree writes a runtime-like tree: many small files and a few large ones.
func writeTree(t *testing.T, dir string, seed uint64, big int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range 200 {
		p := filepath.Join(dir, "lib", fmt.Sprintf("m%02d", i%13), fmt.Sprintf("f%d.py", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("x = %d\n", i), 50+i)), 0o644)
	}
	for i := range big {
		b := make([]byte, 3<<20)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("lib%d.so", i)), b, 0o755)
	}
	os.Symlink("lib0.so", filepath.Join(dir, "link.so"))
}

// buildVersion stores dir as a version of runtime name in project self.
func buildVersion(t *testing.T, in *ops.Instance, name, dir string) *ledger.Version {
	t.Helper()
	res, err := cas.Ingest(ctx, in.Store, []cas.Input{{Src: dir, Dest: "export/venv"}, {Data: []byte("name: " + name + "\n"), Dest: "runtime.yaml"}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return recordBuilt(t, in, name, res)
}

// recordBuilt records a stored tree as the latest version of runtime name in self.
func recordBuilt(t *testing.T, in *ops.Instance, name string, res *cas.IngestResult) *ledger.Version {
	t.Helper()
	e, _ := ledger.New(ledger.RuntimeBuilt, "self", name, ops.VersionID(res.Hash), ledger.BuiltData{Manifest: res.Hash, Size: res.Size, Files: int64(res.Files), Mode: "venv"})
	e.Actor, e.Instance = in.Actor, in.Name
	if _, err := in.Ledger.Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	v, err := in.Ledger.Resolve("self", name, "latest")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sources returns two versions of a tree sharing most bytes: the ml corpus in full runs,
// synthetic trees with -short.
func sources(t *testing.T) (string, string) {
	if !testing.Short() {
		dir, err := corpus.Dir()
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, "ml-v1"), filepath.Join(dir, "ml-v2")
	}
	v1, v2 := t.TempDir(), t.TempDir()
	writeTree(t, v1, 1, 4)
	writeTree(t, v2, 1, 5)
	os.WriteFile(filepath.Join(v2, "lib", "m00", "f0.py"), []byte("changed\n"), 0o644)
	return v1, v2
}

func copyReq(src api.Endpoint, srcProject string, u ops.RuntimeURI, dst api.Endpoint, dstProject string) ops.CopyRequest {
	return ops.CopyRequest{Src: src, SrcProject: srcProject, SrcURI: u, Dst: dst, DstProject: dstProject}
}

func TestCopyThroughServer(t *testing.T) {
	c := newCloud(t)
	c.serve(t)
	v1dir, v2dir := sources(t)
	local := openInstance(t, t.TempDir())
	v1 := buildVersion(t, local, "ml", v1dir)
	if _, err := (ops.LocalEndpoint{In: local}).Tag(ctx, "self", "ml", v1.ID, []string{"prod"}, false, false, false); err != nil {
		t.Fatal(err)
	}
	alice := c.client("alice")

	// local -> cloud: everything travels.
	r1, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml", Version: v1.ID}, alice, "mnist"))
	if err != nil {
		t.Fatal(err)
	}
	if r1.SentChunks != r1.Chunks || len(r1.Versions) != 1 {
		t.Fatalf("first copy sent %d of %d chunks", r1.SentChunks, r1.Chunks)
	}
	got, err := alice.Resolve(ctx, "mnist", "ml", "prod")
	if err != nil || got.ID != v1.ID {
		t.Fatalf("user tag did not come along: %v %v", got, err)
	}
	hist, _ := alice.History(ctx, "mnist", "ml")
	if len(hist) != 1 || hist[0].Actor != "alice" {
		t.Fatalf("cloud history %+v", hist)
	}

	// A second version: only the chunks the server lacks travel.
	v2 := buildVersion(t, local, "ml", v2dir)
	r2, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml"}, alice, "mnist"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r2.Versions) != 1 || r2.Versions[0] != v2.ID || len(r2.Skipped) != 1 {
		t.Fatalf("second copy: copied %v, skipped %v", r2.Versions, r2.Skipped)
	}
	if r2.SentBytes*2 > r1.SentBytes || r2.SentChunks >= r2.Chunks/2 {
		t.Fatalf("second version sent %d bytes in %d of %d chunks; the first sent %d bytes", r2.SentBytes, r2.SentChunks, r2.Chunks, r1.SentBytes)
	}

	// Nothing missing: nothing sent.
	r3, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml"}, alice, "mnist"))
	if err != nil || r3.SentChunks != 0 || len(r3.Versions) != 0 {
		t.Fatalf("third copy: %+v %v", r3, err)
	}

	// cloud -> a fresh local root: extract equals the source tree.
	fresh := openInstance(t, t.TempDir())
	r4, err := ops.Copy(ctx, copyReq(alice, "mnist", ops.RuntimeURI{Name: "ml"}, ops.LocalEndpoint{In: fresh}, "self"))
	if err != nil || len(r4.Versions) != 2 {
		t.Fatalf("copy back: %+v %v", r4, err)
	}
	// Groups come back whole, as they went: about the bytes the two uploads sent.
	if up := r1.SentBytes + r2.SentBytes; r4.SentBytes > up+up/20 {
		t.Fatalf("copy back sent %d bytes; the uploads sent %d", r4.SentBytes, up)
	}
	for _, tc := range []struct{ v, dir string }{{v1.ID, v1dir}, {v2.ID, v2dir}} {
		ex, err := ops.Extract(ctx, fresh, "self", "ml", tc.v, filepath.Join(t.TempDir(), "x"), false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := treecmp.Diff(tc.dir, filepath.Join(ex.Dir, "export", "venv")); d != "" {
			t.Fatalf("copied back %s differs:\n%s", tc.v, d)
		}
	}
	if v, err := fresh.Ledger.Resolve("self", "ml", "latest"); err != nil || v.ID != v2.ID {
		t.Fatalf("latest after copying back: %v %v", v, err)
	}
	rep, err := fresh.Ledger.Verify(ctx, fresh.Store)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify after copy: %v %v", rep.Problems, err)
	}

	// cloud -> cloud, project to project (an admin sees both).
	admTok, _ := ops.AddUser(ctx, ops.FileAuth{Root: c.root}, "root", true)
	adm := client.NewRemote("team", c.url, admTok)
	if _, err := ops.Copy(ctx, copyReq(adm, "mnist", ops.RuntimeURI{Name: "ml"}, adm, "secret")); err != nil {
		t.Fatal(err)
	}
	if _, total, err := c.client("bob").Versions(ctx, "secret", "", ledger.ListOptions{}); err != nil || total != 2 {
		t.Fatalf("bob's project after cloud-to-cloud copy: %d versions, %v", total, err)
	}
}

func TestServerAuth(t *testing.T) {
	c := newCloud(t)
	c.serve(t)
	bad := client.NewRemote("team", c.url, "swt_not_a_token")
	_, _, err := bad.Whoami(ctx)
	if ops.KindOf(err) != ops.KindAuth || !strings.Contains(err.Error(), "refused the token") {
		t.Fatalf("wrong token: %v", err)
	}
	resp := rawGet(t, c.url+"/api/v1/projects", "nope")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: HTTP %d, want 401", resp.StatusCode)
	}
	// Another user's project and a project that does not exist answer alike: 403.
	a := rawGet(t, c.url+"/api/v1/projects/secret/versions", c.tokens["alice"])
	b := rawGet(t, c.url+"/api/v1/projects/nosuch/versions", c.tokens["alice"])
	ab, bb := readAll(a), readAll(b)
	if a.StatusCode != 403 || b.StatusCode != 403 || strings.ReplaceAll(ab, "secret", "X") != strings.ReplaceAll(bb, "nosuch", "X") {
		t.Fatalf("forbidden answers differ: %d %q / %d %q", a.StatusCode, ab, b.StatusCode, bb)
	}
	ps, err := c.client("alice").Projects(ctx)
	if err != nil || strings.Join(ps, ",") != "mnist" {
		t.Fatalf("alice sees projects %v (%v)", ps, err)
	}
	// Revoked tokens stop working at once.
	if err := ops.RevokeTokens(ctx, ops.FileAuth{Root: c.root}, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.client("alice").Whoami(ctx); ops.KindOf(err) != ops.KindAuth {
		t.Fatalf("revoked token: %v", err)
	}
}

func rawGet(t *testing.T, url, tok string) *http.Response {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(r *http.Response) string {
	var b bytes.Buffer
	b.ReadFrom(r.Body)
	r.Body.Close()
	return b.String()
}

func TestServerRejectsBadBatch(t *testing.T) {
	c := newCloud(t)
	c.serve(t)
	good := []byte("a good chunk")
	bad := []byte("bytes that are not what the hash says")
	var body bytes.Buffer
	api.WriteFrame(&body, cas.Sum(good), cas.Raw{Enc: cas.EncRaw, Len: int64(len(good)), Data: good})
	api.WriteFrame(&body, cas.Sum([]byte("other")), cas.Raw{Enc: cas.EncRaw, Len: int64(len(bad)), Data: bad})
	req, _ := http.NewRequest("POST", c.url+"/api/v1/chunks", &body)
	req.Header.Set("Authorization", "Bearer "+c.tokens["alice"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if msg := readAll(resp); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(msg, "nothing stored") {
		t.Fatalf("bad batch: HTTP %d %s", resp.StatusCode, msg)
	}
	miss, err := c.client("alice").Missing(ctx, []cas.Hash{cas.Sum(good)})
	if err != nil || len(miss) != 1 {
		t.Fatalf("the good chunk of a rejected batch was stored: %v %v", miss, err)
	}
	// A truncated stream and an oversized body are refused too.
	err = c.client("alice").PutChunks(ctx, []api.Chunk{{Hash: cas.Sum(bad), Raw: cas.Raw{Enc: cas.EncZstd, Len: 5, Data: []byte("zz")}}})
	if ops.KindOf(err) != ops.KindCorrupt {
		t.Fatalf("garbled zstd: %v", err)
	}
	// A group frame whose name does not match its chunks stores none of them.
	src := openInstance(t, t.TempDir())
	buildVersion(t, src, "ml", smallFiles(t))
	v, err := src.Ledger.Resolve("self", "ml", "latest")
	if err != nil {
		t.Fatal(err)
	}
	m, err := cas.LoadManifest(ctx, src.Store, v.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	var group []api.Chunk
	err = src.Store.Transfer(ctx, m.Chunks(), func(_ int, h cas.Hash, r cas.Raw) error {
		if r.Enc == cas.EncGroup && group == nil {
			group = []api.Chunk{{Hash: cas.Sum([]byte("not its name")), Raw: r}}
		}
		return nil
	})
	if err != nil || group == nil {
		t.Fatalf("no group to send: %v", err)
	}
	err = c.client("alice").PutChunks(ctx, group)
	if ops.KindOf(err) != ops.KindCorrupt {
		t.Fatalf("a group under a wrong name: %v", err)
	}
	if miss, _ := c.client("alice").Missing(ctx, m.Chunks()); len(miss) != len(m.Chunks()) {
		t.Fatalf("a refused group left %d of its chunks stored", len(m.Chunks())-len(miss))
	}
}

// smallFiles writes a directory of small, similar files: what a store keeps in groups.
func smallFiles(t *testing.T) string {
	dir := t.TempDir()
	for i := range 50 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("m%d.py", i)), []byte(strings.Repeat(fmt.Sprintf("v%d = %d\n", i, i), 200)), 0o644)
	}
	return dir
}

func TestOverlappingCopies(t *testing.T) {
	c := newCloud(t)
	c.serve(t)
	dir := t.TempDir()
	writeTree(t, dir, 5, 3)
	errs := copiesAtOnce(t, dir, "ml", c.client("alice"), c.client("alice"))
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("overlapping copies: %v / %v", errs[0], errs[1])
	}
	if _, total, err := c.client("alice").Versions(ctx, "mnist", "", ledger.ListOptions{}); err != nil || total != 1 {
		t.Fatalf("after two copies of one version: %d versions, %v", total, err)
	}
}

// copiesAtOnce builds dir as runtime name in a fresh root per destination and copies each
// to its destination's project mnist, all at once, in 1 MiB batches.
func copiesAtOnce(t *testing.T, dir, name string, dsts ...api.Endpoint) []error {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(dsts))
	for i, dst := range dsts {
		src := openInstance(t, t.TempDir())
		buildVersion(t, src, name, dir)
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := copyReq(ops.LocalEndpoint{In: src}, "self", ops.RuntimeURI{Name: name}, dst, "mnist")
			req.BatchBytes = 1 << 20
			_, errs[i] = ops.Copy(ctx, req)
		}()
	}
	wg.Wait()
	return errs
}

type countProgress struct{ chunks atomic.Int64 }

// copyUntilAcknowledged starts req (whose Progress is prog) and returns once n chunks are
// acknowledged; the channel gets the copy's result.
func copyUntilAcknowledged(t *testing.T, req ops.CopyRequest, prog *countProgress, n int64) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := ops.Copy(ctx, req); done <- err }()
	deadline := time.Now().Add(time.Minute)
	for prog.chunks.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the copy sent fewer than %d chunks in a minute", n)
		}
		select {
		case err := <-done:
			t.Fatalf("the copy ended before the server was killed: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	return done
}

func (p *countProgress) Planned(int, int64)      {}
func (p *countProgress) Done(files int, b int64) { p.chunks.Add(int64(files)) }

// startChild runs a server in a child process on root and returns its URL.
func startChild(t *testing.T, root string) (*exec.Cmd, string) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childServerEnv+"="+root)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://") {
		t.Fatalf("child server: %q %v", line, err)
	}
	return cmd, strings.TrimSpace(line)
}

func TestCopyResumesAfterServerKill(t *testing.T) {
	c := newCloud(t)
	dir := t.TempDir()
	writeTree(t, dir, 9, 12) // ~36 MB of incompressible chunks
	local := openInstance(t, t.TempDir())
	buildVersion(t, local, "ml", dir)

	cmd, url := startChild(t, c.root)
	prog := &countProgress{}
	req := copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml"}, client.NewRemote("team", url, c.tokens["alice"]), "mnist")
	req.BatchBytes, req.InFlight, req.Progress = 1<<20, 1, prog
	done := copyUntilAcknowledged(t, req, prog, 20)
	cmd.Process.Kill()
	cmd.Wait()
	if err := <-done; err == nil {
		t.Fatal("copy succeeded although the server was killed")
	}
	confirmed := prog.chunks.Load()

	cmd, url = startChild(t, c.root)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	req.Dst, req.Progress = client.NewRemote("team", url, c.tokens["alice"]), nil
	res, err := ops.Copy(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if int64(res.SentChunks) > int64(res.Chunks)-confirmed {
		t.Fatalf("re-run sent %d chunks of %d; %d had been confirmed before the kill", res.SentChunks, res.Chunks, confirmed)
	}
	if v, err := req.Dst.Resolve(ctx, "mnist", "ml", "latest"); err != nil || v.Status != ledger.StatusLive {
		t.Fatalf("after resuming: %v %v", v, err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestCopyFromServerWithShortAnswers: a server that answers part of each request (its
// answer limit) is asked again for the rest, and the copy completes.
func TestCopyFromServerWithShortAnswers(t *testing.T) {
	c := newCloud(t)
	c.serve(t, func(s *server.Server) { s.MaxGetResponse = 64 << 10 })
	dir := t.TempDir()
	writeTree(t, dir, 3, 2)
	local := openInstance(t, t.TempDir())
	buildVersion(t, local, "ml", dir)
	alice := c.client("alice")
	if _, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml"}, alice, "mnist")); err != nil {
		t.Fatal(err)
	}
	fresh := openInstance(t, t.TempDir())
	res, err := ops.Copy(ctx, copyReq(alice, "mnist", ops.RuntimeURI{Name: "ml"}, ops.LocalEndpoint{In: fresh}, "self"))
	if err != nil || len(res.Versions) != 1 || res.SentChunks != res.Chunks {
		t.Fatalf("copy back through short answers: %+v %v", res, err)
	}
	ex, err := ops.Extract(ctx, fresh, "self", "ml", "latest", filepath.Join(t.TempDir(), "x"), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := treecmp.Diff(dir, filepath.Join(ex.Dir, "export", "venv")); d != "" {
		t.Fatalf("differs:\n%s", d)
	}
}

// TestCopyManyVersionsThroughPages: a runtime with more versions than a server answers in
// one page copies whole, both ways, and a copy into a project with many runtimes lists only
// the runtime it copies.
func TestCopyManyVersionsThroughPages(t *testing.T) {
	c := newCloud(t)
	c.serve(t)
	local := openInstance(t, t.TempDir())
	const n = api.DefaultPageSize + 12
	for i := range n {
		res, err := cas.Ingest(ctx, local.Store, []cas.Input{{Data: []byte(fmt.Sprintf("name: app\n# %d\n", i)), Dest: "runtime.yaml"}}, cas.IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		recordBuilt(t, local, "app", res)
	}
	alice := c.client("alice")
	r, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "app"}, alice, "mnist"))
	if err != nil || len(r.Versions) != n {
		t.Fatalf("copy up: %d versions (%v), want %d", len(r.Versions), err, n)
	}
	fresh := openInstance(t, t.TempDir())
	r, err = ops.Copy(ctx, copyReq(alice, "mnist", ops.RuntimeURI{Name: "app"}, ops.LocalEndpoint{In: fresh}, "self"))
	if err != nil || len(r.Versions) != n {
		t.Fatalf("copy down: %d versions (%v), want %d", len(r.Versions), err, n)
	}
	// Copied again: every one of them is found at the destination, past the first page.
	r, err = ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "app"}, alice, "mnist"))
	if err != nil || len(r.Versions) != 0 || len(r.Skipped) != n {
		t.Fatalf("copy up again: copied %d, skipped %d (%v), want all %d skipped", len(r.Versions), len(r.Skipped), err, n)
	}
	// Into a new runtime name of a project holding another runtime: the listing is of the
	// new name (empty), and the version is copied.
	r, err = ops.Copy(ctx, ops.CopyRequest{Src: ops.LocalEndpoint{In: local}, SrcProject: "self", SrcURI: ops.RuntimeURI{Name: "app", Version: "latest"},
		Dst: alice, DstProject: "mnist", DstName: "renamed"})
	if err != nil || len(r.Versions) != 1 {
		t.Fatalf("copy to a new name: %+v %v", r, err)
	}
	// A project the destination lacks is still an error.
	if _, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "app", Version: "latest"}, ops.LocalEndpoint{In: fresh}, "nope")); ops.KindOf(err) != ops.KindNotFound {
		t.Fatalf("copy into a missing project: %v", err)
	}
}

// TestAccessLogNamesTheUser: each request is logged once, with the token's user (none for
// a refused token).
func TestAccessLogNamesTheUser(t *testing.T) {
	c := newCloud(t)
	var mu sync.Mutex
	var log []server.AccessEntry
	c.serve(t, func(s *server.Server) {
		s.Log = func(a server.AccessEntry) { mu.Lock(); log = append(log, a); mu.Unlock() }
	})
	readAll(rawGet(t, c.url+"/api/v1/projects", c.tokens["alice"]))
	readAll(rawGet(t, c.url+"/api/v1/projects", "nope"))
	// (an entry is written once its handler returns, which may be after the client read)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(log)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(log) != 2 || log[0].User != "alice" || log[0].Status != 200 || log[1].User != "" || log[1].Status != 401 {
		t.Fatalf("access log: %+v", log)
	}
}

// A server too busy for a batch (429) gets the same batch again after the pause it names:
// the body of an upload is read afresh for each attempt.
func TestBusyServerGetsTheSameBatchAgain(t *testing.T) {
	c := newCloud(t)
	h := server.NewServer(openServerInstance(t, c.root)).Handler()
	var mu sync.Mutex
	var bodies [][]byte
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == api.RoutePutChunks.Method && r.URL.Path == api.RoutePutChunks.URL() {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			bodies = append(bodies, b)
			first := len(bodies) == 1
			mu.Unlock()
			if first {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	c.url = front.URL
	dir := t.TempDir()
	writeTree(t, dir, 7, 1)
	local := openInstance(t, t.TempDir())
	v := buildVersion(t, local, "ml", dir)
	req := copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml", Version: v.ID}, c.client("alice"), "mnist")
	req.InFlight = 1
	res, err := ops.Copy(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Versions) != 1 || len(bodies) < 2 {
		t.Fatalf("copied %d versions in %d uploads; want 1 version, the first upload sent twice", len(res.Versions), len(bodies))
	}
	if len(bodies[0]) == 0 || !bytes.Equal(bodies[0], bodies[1]) {
		t.Fatalf("the batch sent again differs: %d bytes, then %d", len(bodies[0]), len(bodies[1]))
	}
}
