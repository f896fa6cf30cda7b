package ops_test

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/cas/storetest"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
	"github.com/swcli/swcli/ops/server"
)

// serveStore starts a server on loopback over a fresh root and returns its chunk store as
// seen by an admin, and by a plain user.
func serveStore(t *testing.T) (admin, user *client.RemoteStore) {
	t.Helper()
	root := t.TempDir()
	adminTok, err := ops.AddUser(ctx, ops.FileAuth{Root: root}, "root", true)
	if err != nil {
		t.Fatal(err)
	}
	userTok, err := ops.AddUser(ctx, ops.FileAuth{Root: root}, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.NewServer(openServerInstance(t, root)).Handler())
	t.Cleanup(srv.Close)
	a, u := client.NewRemote("team", srv.URL, adminTok), client.NewRemote("team", srv.URL, userTok)
	t.Cleanup(func() { a.Close(); u.Close() })
	return a.Store(), u.Store()
}

// The HTTP client of a server's store passes the same conformance suite as the local one.
func TestRemoteStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cas.Store {
		admin, _ := serveStore(t)
		return admin
	})
}

func TestRemoteStoreWalkAndDeleteAreForAdmins(t *testing.T) {
	admin, user := serveStore(t)
	data := []byte("a chunk that alice may read by its hash")
	h := cas.Sum(data)
	if err := user.Put(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	if err := user.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := user.Get(ctx, h); err != nil || string(got) != string(data) {
		t.Fatalf("user get: %q %v", got, err)
	}
	err := user.Walk(ctx, func(cas.ChunkInfo) error { return nil })
	if ops.KindOf(err) != ops.KindForbidden {
		t.Fatalf("walk as a user: %v, want forbidden (403)", err)
	}
	if err := user.Delete(ctx, []cas.Hash{h}); ops.KindOf(err) != ops.KindForbidden {
		t.Fatalf("delete as a user: %v, want forbidden (403)", err)
	}
	if _, err := admin.Get(ctx, h); err != nil {
		t.Fatalf("the chunk is gone after a refused delete: %v", err)
	}
	if err := admin.Delete(ctx, []cas.Hash{h}); err != nil {
		t.Fatal(err)
	}
	if _, err := user.Get(ctx, h); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("get after an admin's delete: %v", err)
	}
}

// Whatever a store accepts travels: a blob of cas.MaxBlob goes to a server and back.
func TestRemoteStoreCarriesTheLargestBlob(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 64 MiB through a loopback server; CI runs it")
	}
	admin, _ := serveStore(t)
	data := make([]byte, cas.MaxBlob)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	h := cas.Sum(data)
	if err := admin.Put(ctx, h, data); err != nil {
		t.Fatalf("put of %d bytes: %v", len(data), err)
	}
	if err := admin.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := admin.Get(ctx, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get back: %d bytes, %v", len(got), err)
	}
	if err := admin.Put(ctx, h, append(data, 0)); !errors.Is(err, cas.ErrTooLarge) {
		t.Fatalf("put of MaxBlob+1: %v, want ErrTooLarge", err)
	}
}

// A chunk that a build stored in a group comes out of a server's store on its own: the
// group it travels in is checked, then opened for that chunk alone.
func TestRemoteStoreGetsAGroupedChunk(t *testing.T) {
	root := t.TempDir()
	tok, err := ops.AddUser(ctx, ops.FileAuth{Root: root}, "root", true)
	if err != nil {
		t.Fatal(err)
	}
	in := openServerInstance(t, root)
	dir := t.TempDir()
	data := []byte("print('a file small enough to be grouped')\n")
	if err := os.WriteFile(filepath.Join(dir, "a.py"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cas.Ingest(ctx, in.Store, []cas.Input{{Src: dir}}, cas.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.NewServer(in).Handler())
	t.Cleanup(srv.Close)
	c := client.NewRemote("team", srv.URL, tok)
	t.Cleanup(func() { c.Close() })
	h := cas.Sum(data)
	grouped := false
	if err := c.GetChunks(ctx, []cas.Hash{h}, func(ch api.Chunk) error { grouped = ch.Raw.Enc == cas.EncGroup; return nil }); err != nil {
		t.Fatal(err)
	}
	if !grouped {
		t.Fatal("the chunk did not travel in a group: this test checks nothing")
	}
	if got, err := c.Store().Get(ctx, h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get of a grouped chunk: %q, %v", got, err)
	}
}
