package ops_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
	"github.com/swcli/swcli/ops/server"
)

// post sends a raw request to the test server as alice.
func post(t *testing.T, c *cloud, path string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", c.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.tokens["alice"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func frames(cs ...api.Chunk) []byte {
	var buf bytes.Buffer
	for _, c := range cs {
		api.WriteFrame(&buf, c.Hash, c.Raw)
	}
	return buf.Bytes()
}

// peakRSS is a process's peak resident memory.
func peakRSS(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Hostile uploads from a logged-in user: the server answers each with its status, stores
// nothing of them, stays up, and its memory stays bounded.
func TestServerSurvivesHostileUploads(t *testing.T) {
	c := newCloud(t)
	cmd, url := startChild(t, c.root) // a server process of its own, to measure its memory
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c.url = url
	enc, _ := zstd.NewWriter(nil)
	zeros := make([]byte, cas.MaxBlob)
	bomb := enc.EncodeAll(zeros, nil) // 64 MiB of zeros in a few KB
	h := cas.Sum(zeros)

	// Many honest-looking 64 MiB frames in one batch: refused by what they declare, before
	// any is decoded.
	var many []api.Chunk
	for range 40 {
		many = append(many, api.Chunk{Hash: h, Raw: cas.Raw{Enc: cas.EncZstd, Len: cas.MaxBlob, Data: bomb}})
	}
	start := time.Now()
	if st, m := post(t, c, "/api/v1/chunks", frames(many...)); st != http.StatusRequestEntityTooLarge || m["kind"] != "too_large" {
		t.Fatalf("a batch that decodes to 2.5 GiB: %d %v", st, m)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusing the batch took %s", d)
	}
	// A frame that inflates past the length it declares stops at that length.
	small := cas.Sum([]byte("x"))
	if st, m := post(t, c, "/api/v1/chunks", frames(api.Chunk{Hash: small, Raw: cas.Raw{Enc: cas.EncZstd, Len: 1024, Data: bomb}})); st != http.StatusUnprocessableEntity {
		t.Fatalf("a 1 KiB chunk that inflates to 64 MiB: %d %v", st, m)
	}
	// A group of no chunks, and a group that claims more than a group may hold.
	emptyGroup := enc.EncodeAll([]byte{0}, nil)
	if st, m := post(t, c, "/api/v1/chunks", frames(api.Chunk{Hash: cas.Sum([]byte("g")), Raw: cas.Raw{Enc: cas.EncGroup, Len: 1, Data: emptyGroup}})); st != http.StatusUnprocessableEntity {
		t.Fatalf("an empty group: %d %v", st, m)
	}
	if st, m := post(t, c, "/api/v1/chunks", frames(api.Chunk{Hash: cas.Sum([]byte("g")), Raw: cas.Raw{Enc: cas.EncGroup, Len: cas.MaxBlob, Data: bomb}})); st != http.StatusUnprocessableEntity {
		t.Fatalf("a 64 MiB group: %d %v", st, m)
	}
	// A body over the limit is 413, not 400.
	big := make([]byte, server.MaxBatchBody+(4<<20))
	copy(big, frames(api.Chunk{Hash: h, Raw: cas.Raw{Enc: cas.EncRaw, Len: cas.MaxBlob, Data: zeros}}))
	if st, m := post(t, c, "/api/v1/chunks", big); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over the limit: %d %v", st, m)
	}
	// An unknown chunk is not found, by its kind too.
	if st, m := post(t, c, "/api/v1/chunks/get", api.EncodeHashes([]cas.Hash{cas.Sum([]byte("nobody has this"))})); st != http.StatusNotFound || m["kind"] != "not_found" {
		t.Fatalf("an unknown chunk: %d %v", st, m)
	}
	// Nothing of it was stored, and the server still serves.
	if packs, _ := filepath.Glob(filepath.Join(c.root, "store", "packs", "*")); len(packs) != 0 {
		t.Fatalf("hostile uploads left %v", packs)
	}
	if _, _, err := c.client("alice").Whoami(ctx); err != nil {
		t.Fatalf("the server after hostile uploads: %v", err)
	}
	rss := peakRSS(cmd.Process.Pid)
	t.Logf("server peak RSS after the hostile uploads: %d MiB", rss>>20)
	if bound := int64(server.MaxUploads*(server.MaxBatchBody+api.MaxBatchDecoded) + 256<<20); rss > bound && !raceEnabled {
		t.Fatalf("server peak RSS %d MiB, over its bound of %d MiB", rss>>20, bound>>20)
	}
}

// Thousands of tiny uploads, each a batch of its own, end in a pack or two, not one each.
func TestTinyUploadsDoNotMakeTinyPacks(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	c := newCloud(t)
	c.serve(t)
	alice := c.client("alice")
	for i := range n {
		data := fmt.Appendf(nil, "tiny %d", i)
		h := cas.Sum(data)
		if err := alice.PutChunks(ctx, []api.Chunk{{Hash: h, Raw: cas.Raw{Enc: cas.EncRaw, Len: int64(len(data)), Data: data}}}); err != nil {
			t.Fatal(err)
		}
	}
	packs, _ := filepath.Glob(filepath.Join(c.root, "store", "packs", "*.pack"))
	if len(packs) > 2 {
		t.Fatalf("%d tiny uploads made %d packs", n, len(packs))
	}
}

// Lists are pages: a client that asks for size 0 (or a huge size) gets a bounded page.
func TestServerListsArePages(t *testing.T) {
	c := newCloud(t)
	in := openInstance(t, c.root)
	e, _ := ledger.New(ledger.ProjectCreated, "mnist", "", "", ledger.EmptyData{})
	evs := []ledger.Event{e}
	for i := range api.DefaultPageSize + 10 {
		m := cas.Sum(fmt.Appendf(nil, "manifest %d", i))
		e, _ := ledger.New(ledger.RuntimeBuilt, "mnist", "app", ops.VersionID(m), ledger.BuiltData{Manifest: m, Mode: "venv"})
		evs = append(evs, e)
	}
	for i := range evs {
		evs[i].Actor, evs[i].Instance = "t", "t"
	}
	if _, err := in.Ledger.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	in.Close()
	c.serve(t)
	for q, want := range map[string]int{"size=0": api.DefaultPageSize, "size=100000": api.DefaultPageSize + 10, "": api.DefaultPageSize} {
		resp := rawGet(t, c.url+"/api/v1/projects/mnist/versions?"+q, c.tokens["alice"])
		var body struct {
			Total    int
			Versions []any
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body.Versions) != want || body.Total != api.DefaultPageSize+10 {
			t.Fatalf("?%s: %d, %d versions of %d, want %d", q, resp.StatusCode, len(body.Versions), body.Total, want)
		}
	}
}

// A malicious server cannot make a client take what it did not ask for: a chunk not asked,
// a chunk twice, or a group holding chunks not asked.
func TestClientTakesOnlyWhatItAsked(t *testing.T) {
	a, b, x := []byte("chunk a"), []byte("chunk b"), []byte("chunk x, never asked")
	ha, hb, hx := cas.Sum(a), cas.Sum(b), cas.Sum(x)
	raw := func(d []byte) cas.Raw { return cas.Raw{Enc: cas.EncRaw, Len: int64(len(d)), Data: d} }
	cases := map[string][]api.Chunk{
		"not asked": {{Hash: ha, Raw: raw(a)}, {Hash: hx, Raw: raw(x)}},
		"twice":     {{Hash: ha, Raw: raw(a)}, {Hash: ha, Raw: raw(a)}},
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write(frames(answer...))
				api.WriteFrame(w, cas.Hash{}, cas.Raw{Len: 2})
			}))
			defer srv.Close()
			got := map[cas.Hash]bool{}
			err := client.NewRemote("evil", srv.URL, "t").GetChunks(ctx, []cas.Hash{ha, hb}, func(c api.Chunk) error {
				got[c.Hash] = true
				return nil
			})
			if err == nil || got[hx] || ops.KindOf(err) != ops.KindRemote {
				t.Fatalf("answer %s: err %v, took %v", name, err, got)
			}
		})
	}
}

// A commit records what the server can derive from the manifest, not what the client
// claims, and refuses free text that is long or holds escapes or markup.
func TestCommitDerivesWhatItCan(t *testing.T) {
	c := newCloud(t)
	c.serve(t)
	local := openInstance(t, t.TempDir())
	v := bundle(t, local, "app", map[string]string{"runtime.yaml": "name: app\n", "export/venv/pyvenv.cfg": "home = /usr/bin\nversion = 3.11.4\n", "a.txt": "12345"}, nil, nil)
	alice := c.client("alice")
	res, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "app"}, alice, "mnist"))
	if err != nil || len(res.Versions) != 1 {
		t.Fatalf("copy: %+v %v", res, err)
	}
	good := api.CommitVersion{Runtime: "app", Version: v.ID, Manifest: v.Manifest, Size: -5, Files: 1 << 40, Python: "2.7", Mode: "venv", Source: "local/project/self"}
	if err := alice.Commit(ctx, "mnist", []api.CommitVersion{good}); err != nil {
		t.Fatalf("commit with wrong sizes: %v", err)
	}
	got, err := alice.Resolve(ctx, "mnist", "app", v.ID)
	if err != nil || got.Size != v.Size || got.Files != v.Files || got.Python != "3.11.4" {
		t.Fatalf("committed %+v; want size %d, files %d, python from pyvenv.cfg", got, v.Size, v.Files)
	}
	for field, bad := range map[string]api.CommitVersion{
		"source with a script":   {Source: "<script>alert(1)</script>"},
		"actor with an escape":   {SourceActor: "\x1b[31mroot\x1b[0m"},
		"a long source":          {Source: strings.Repeat("x", ops.MaxTextField+1)},
		"a mode that is no mode": {Mode: "docker"},
	} {
		bad.Runtime, bad.Version, bad.Manifest = "app", v.ID, v.Manifest
		if err := alice.Commit(ctx, "mnist", []api.CommitVersion{bad}); ops.KindOf(err) != ops.KindUsage {
			t.Fatalf("commit with %s: %v, want it refused", field, err)
		}
	}
	tags := make([]string, ops.MaxTags+1)
	for i := range tags {
		tags[i] = fmt.Sprintf("t%d", i)
	}
	if _, err := alice.Tag(ctx, "mnist", "app", v.ID, tags, false, false, false); ops.KindOf(err) != ops.KindUsage {
		t.Fatalf("%d tags on a version: %v", len(tags), err)
	}
}

// A chunk's hash is not a capability: bob, who may not read mnist, can neither read
// alice's chunks there nor learn that the server holds them; copying the same content
// into his own project costs him the upload, and a commit naming her chunks without
// sending them is refused.
func TestTenantsDoNotShareChunks(t *testing.T) {
	c := newCloud(t)
	c.serve(t)
	local := openInstance(t, t.TempDir())
	v := bundle(t, local, "app", map[string]string{"runtime.yaml": "name: app\n", "data.bin": string(noiseBytes(200 << 10))}, nil, nil)
	alice, bob := c.client("alice"), c.client("bob")
	if _, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "app"}, alice, "mnist")); err != nil {
		t.Fatal(err)
	}
	m, err := cas.LoadManifest(ctx, local.Store, v.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	hs := append(m.Chunks(), v.Manifest)
	// bob: everything "missing", nothing readable.
	if miss, err := bob.Missing(ctx, hs); err != nil || len(miss) != len(hs) {
		t.Fatalf("bob's missing-check: %d of %d missing, %v; want all", len(miss), len(hs), err)
	}
	if err := bob.GetChunks(ctx, hs[:1], func(api.Chunk) error { return nil }); ops.KindOf(err) != ops.KindNotFound {
		t.Fatalf("bob reads alice's chunk: %v", err)
	}
	// alice: exact answers in her own project.
	if miss, err := alice.Missing(ctx, hs); err != nil || len(miss) != 0 {
		t.Fatalf("alice's missing-check: %d missing, %v", len(miss), err)
	}
	// bob commits alice's manifest without sending it: refused.
	cv := api.CommitVersion{Runtime: "app", Version: v.ID, Manifest: v.Manifest, Mode: "venv"}
	if err := bob.Commit(ctx, "secret", []api.CommitVersion{cv}); err == nil {
		t.Fatal("bob committed chunks he never sent")
	}
	// bob copies the same content into his project: he sends it, and then has it.
	res, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "app"}, bob, "secret"))
	if err != nil || res.SentChunks == 0 || len(res.Versions) != 1 {
		t.Fatalf("bob's copy: %+v %v", res, err)
	}
	if err := bob.GetChunks(ctx, hs, func(api.Chunk) error { return nil }); err != nil {
		t.Fatalf("bob reads his own copy: %v", err)
	}
}
