package ops_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/server"
)

// commitHook is a copy destination on which the server's admin runs gc between the
// copy's uploads and its commit: the worst moment.
type commitHook struct {
	api.Endpoint
	before func()
	ran    int
}

func (h *commitHook) Commit(c context.Context, project string, vs []api.CommitVersion) error {
	h.before()
	h.ran++
	return h.Endpoint.Commit(c, project, vs)
}

// TestOnlineGCBesideCopy: a gc run while a copy is between its uploads and its commit
// deletes nothing the copy needs, whether the copy sent the chunks (pending uploads) or
// was told the server had them (promised chunks, here those of a purged version).
func TestOnlineGCBesideCopy(t *testing.T) {
	c := newCloud(t)
	tok, err := ops.AddUser(ctx, ops.FileAuth{Root: c.root}, "root", true)
	if err != nil {
		t.Fatal(err)
	}
	c.tokens["root"] = tok
	c.serve(t)
	admin := ops.AdminRemote{Remote: c.client("root")}
	v1dir, _ := sources(t)
	local := openInstance(t, t.TempDir())
	v1 := buildVersion(t, local, "ml", v1dir)
	alice := c.client("alice")

	dst := &commitHook{Endpoint: alice, before: func() {
		// The admin changes members and collects garbage while the copy is in flight.
		if _, err := admin.SetMembers(ctx, "mnist", []string{"bob"}, nil); err != nil {
			t.Fatalf("member add: %v", err)
		}
		if _, err := admin.SetMembers(ctx, "mnist", nil, []string{"bob"}); err != nil {
			t.Fatalf("member remove: %v", err)
		}
		rep, err := admin.GC(ctx)
		if err != nil {
			t.Fatalf("gc: %v", err)
		}
		t.Logf("gc between uploads and commit: %+v", rep)
	}}
	// 1. The copy sent every chunk: they are pending uploads until the commit.
	if _, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml", Version: v1.ID}, dst, "mnist")); err != nil {
		t.Fatalf("copy beside gc: %v", err)
	}
	// 2. Purge it: its chunks are garbage, and the next copy is told they are there.
	if _, err := alice.Remove(ctx, "mnist", "ml", v1.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: "ml", Version: v1.ID}, dst, "mnist")); err != nil {
		t.Fatalf("second copy beside gc: %v", err)
	}
	if dst.ran != 2 {
		t.Fatalf("gc ran %d times, want 2", dst.ran)
	}
	fs, err := admin.Fsck(ctx)
	if err != nil || fs.Corrupt != 0 {
		t.Fatalf("fsck after: %+v %v", fs, err)
	}
	// Every chunk of the version is on the server and reads back.
	fresh := openInstance(t, t.TempDir())
	if _, err := ops.Copy(ctx, copyReq(alice, "mnist", ops.RuntimeURI{Name: "ml", Version: v1.ID}, ops.LocalEndpoint{In: fresh}, "self")); err != nil {
		t.Fatalf("copy back: %v", err)
	}
	m, err := cas.LoadManifest(ctx, fresh.Store, v1.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if miss, err := fresh.Store.Missing(ctx, m.Chunks()); err != nil || len(miss) != 0 {
		t.Fatalf("missing after copy back: %d %v", len(miss), err)
	}
}

// TestSocketAtEveryRootLength: whatever the root's length, near the limit of a socket's
// address on either side, the server gets its socket (a root whose socket path fit but
// whose temporary directory beside it did not once failed with "bind: invalid argument").
func TestSocketAtEveryRootLength(t *testing.T) {
	base := t.TempDir()
	for n := 70; n <= 105; n++ {
		pad := n - len(base) - len("/server.sock") - 1
		if pad < 1 {
			continue
		}
		root := filepath.Join(base, strings.Repeat("r", pad))
		if err := os.MkdirAll(root, 0o700); err != nil {
			t.Fatal(err)
		}
		ln, err := ops.ListenSocket(root)
		if err != nil {
			t.Fatalf("socket path of %d bytes: %v", len(ops.SocketPath(root)), err)
		}
		go http.Serve(ln, http.NotFoundHandler())
		if !ops.Serving(root) {
			t.Fatalf("socket path of %d bytes: not serving", len(ops.SocketPath(root)))
		}
		ln.Close()
		if _, err := os.Lstat(ops.SocketPath(root)); !os.IsNotExist(err) {
			t.Fatalf("left %s: %v", ops.SocketPath(root), err)
		}
	}
}

// TestSocketUnderALongRoot: a root whose path is too long for a unix socket address still
// gets its admin socket (in a short private directory, linked from the root), and closing
// it leaves nothing behind.
func TestSocketUnderALongRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	in := openServerInstance(t, root)
	if _, err := ops.AddUser(ctx, ops.FileAuth{Root: root}, "root", true); err != nil {
		t.Fatal(err)
	}
	ln, err := ops.ListenSocket(root)
	if err != nil {
		t.Fatalf("listen under a %d-byte root: %v", len(root), err)
	}
	go http.Serve(ln, server.NewServer(in).SocketHandler())
	if !ops.Serving(root) {
		t.Fatal("not serving")
	}
	us, err := (ops.AdminRemote{Remote: ops.NewSocketRemote(root)}).Users(ctx)
	if err != nil || len(us) != 1 || us[0].Name != "root" {
		t.Fatalf("users through the socket: %v %v", us, err)
	}
	ln.Close()
	if ops.Serving(root) {
		t.Fatal("still serving after close")
	}
	if _, err := os.Lstat(ops.SocketPath(root)); !os.IsNotExist(err) {
		t.Fatalf("left %s: %v", ops.SocketPath(root), err)
	}

	// A server killed with SIGKILL leaves its short directory and the link to it; the
	// next server on the root removes both.
	ln, err = ops.ListenSocket(root)
	if err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(ops.SocketPath(root))
	if err != nil {
		t.Fatalf("under a long root the socket is a link: %v", err)
	}
	ln.(interface{ Unwrap() net.Listener }).Unwrap().Close() // as a kill -9 would: no cleanup
	if _, err := os.Stat(filepath.Dir(target)); err != nil {
		t.Fatalf("the dead server's directory should still be there: %v", err)
	}
	// Another dead server's, whose root is gone: swept once it is an hour old; a recent
	// one is left (a server may be about to listen in it).
	parent := filepath.Dir(filepath.Dir(target))
	deadDir := func(age time.Duration) string {
		d, err := os.MkdirTemp(parent, "swcli-sock-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		l, err := net.Listen("unix", filepath.Join(d, "server.sock"))
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		then := time.Now().Add(-age)
		os.Chtimes(d, then, then)
		return d
	}
	old, recent := deadDir(2*time.Hour), deadDir(time.Minute)
	ln, err = ops.ListenSocket(root)
	if err != nil {
		t.Fatalf("listen after a dead server: %v", err)
	}
	defer ln.Close()
	if _, err := os.Stat(filepath.Dir(target)); !os.IsNotExist(err) {
		t.Fatalf("the dead server's directory %s is left: %v", filepath.Dir(target), err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("an hour-old dead socket directory %s is left: %v", old, err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Fatalf("a recent socket directory was removed: %v", err)
	}
}
