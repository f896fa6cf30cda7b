package ops_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/server"
)

// Attacks on what a server takes in (issue 25): names, manifests, repeated claims and
// connections.

// storeManifest puts a manifest of n small files (sharing one chunk) and returns its hash.
func storeManifest(t *testing.T, in *ops.Instance, n int) cas.Hash {
	t.Helper()
	c := []byte("x")
	if err := in.Store.Put(ctx, cas.Sum(c), c); err != nil {
		t.Fatal(err)
	}
	m := &cas.Manifest{}
	for i := range n {
		m.Entries = append(m.Entries, cas.Entry{Path: fmt.Sprintf("f%07d", i), Kind: cas.KindFile, Mode: 0o644, Size: 1, Chunks: []cas.Hash{cas.Sum(c)}})
	}
	b := m.Encode()
	if err := in.Store.Put(ctx, cas.Sum(b), b); err != nil {
		t.Fatal(err)
	}
	if err := in.Store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return cas.Sum(b)
}

// A runtime committed as "CON" was stored upper-case, and no command could address it.
// Names are normalised on the way in, and the ledger refuses any that is not.
func TestCommittedNamesAreNormalised(t *testing.T) {
	in := openInstance(t, t.TempDir())
	h := storeManifest(t, in, 1)
	ep := ops.LocalEndpoint{In: in}
	if err := ep.Commit(ctx, "self", []api.CommitVersion{{Runtime: "CON", Version: ops.VersionID(h), Manifest: h, Mode: "venv"}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"con", "CON", "Con"} {
		if _, err := in.Resolve("self", ops.NormalizeName(name), "latest"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if rts, _ := in.Ledger.Runtimes("self"); len(rts) != 1 || rts[0].Name != "con" {
		t.Fatalf("runtimes %+v", rts)
	}
}

// A chunk that is there but is no manifest was answered 409 "not there yet, run the copy
// again" (for ever); it is the client's fault: invalid (400).
func TestCommitOfAMalformedManifestIsInvalid(t *testing.T) {
	in := openInstance(t, t.TempDir())
	junk := []byte("this is not a manifest")
	h := cas.Sum(junk)
	in.Store.Put(ctx, h, junk)
	in.Store.Flush(ctx)
	err := ops.LocalEndpoint{In: in}.Commit(ctx, "self", []api.CommitVersion{{Runtime: "x", Version: ops.VersionID(h), Manifest: h}})
	if ops.KindOf(err) != ops.KindInvalid {
		t.Fatalf("commit of a malformed manifest: %v (kind %v), want invalid", err, ops.KindOf(err))
	}
}

// One commit naming one large manifest thousands of times cost its decoding and checks
// each time (a 300k-entry manifest × 10,000: about 15 minutes of CPU). Each manifest is
// checked once per commit now: 2,000 names of a 100k-entry manifest are one check.
func TestCommitChecksEachManifestOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 100k-entry manifest")
	}
	in := openInstance(t, t.TempDir())
	h := storeManifest(t, in, 100_000)
	var vs []api.CommitVersion
	for i := range 2000 {
		vs = append(vs, api.CommitVersion{Runtime: fmt.Sprintf("r%d", i), Version: ops.VersionID(h), Manifest: h, Mode: "venv"})
	}
	// Once per commit is well under a second here (the test logs it); the bound leaves a
	// wide margin for a loaded machine, and none for a check per name.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	err := ops.LocalEndpoint{In: in}.Commit(cctx, "self", vs)
	if err != nil {
		t.Fatalf("commit after %v: %v", time.Since(start), err)
	}
	t.Logf("one commit naming a 100k-entry manifest 2,000 times: %v", time.Since(start).Round(time.Millisecond))
}

// openFDs counts this process's open descriptors.
func openFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

// 4,500 connections that send nothing exhausted the server's descriptors, and a real
// request timed out. Connections are bounded in all and per address: a flood from one
// address holds at most its share, and a request from elsewhere is answered.
func TestConnectionFloodLeavesRoom(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("counts descriptors in /proc")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	// Listen on all of 127/8 through one more listener is not portable: the flood and the
	// legit client differ by source address instead (127.0.0.1 and 127.0.0.2).
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }),
		ReadHeaderTimeout: time.Minute}
	go srv.Serve(server.LimitConns(ln, 256, 64))
	defer srv.Close()
	before := openFDs()
	var flood []net.Conn
	for range 1000 {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			break // the backlog is full: the kernel says no, the server holds nothing
		}
		flood = append(flood, c)
	}
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	// The test's own ends of the flood are descriptors too: count the server's by what
	// grew beyond them.
	t.Logf("%d idle connections from one address: the server holds %d descriptors for them", len(flood), openFDs()-before-len(flood))
	if held := openFDs() - before - len(flood); held > 64+8 {
		t.Fatalf("a flood of %d idle connections from one address holds %d server descriptors", len(flood), held)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatalf("a request from another address during the flood: %v", err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Status, "200") {
		t.Fatalf("status %s", resp.Status)
	}
}
