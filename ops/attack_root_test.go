package ops_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/swcli/swcli/ops"
)

// Attacks on a server's root and admin socket (issue 25): the socket is private before it
// listens, what stands at its path is never followed, a root that others may write is
// refused, and auth.json is trusted only when nobody else could have written it.

// Under umask 000 the socket was listening with mode 0777 before its chmod: another local
// user connected in between and made themselves admin. Now the socket appears at its path
// already 0600 (bound in a private directory, then renamed).
func TestAdminSocketIsPrivateBeforeItListens(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	root := t.TempDir()
	sock := ops.SocketPath(root)
	var seen atomic.Int64 // modes other than 0600 seen at the socket's path
	var bad atomic.Uint32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 && fi.Mode().Perm() != 0o600 {
				seen.Add(1)
				bad.Store(uint32(fi.Mode().Perm()))
			}
		}
	}()
	for range 300 {
		ln, err := ops.ListenSocket(root)
		if err != nil {
			t.Fatal(err)
		}
		// (Under a long root, server.sock is a link to the socket in a short directory.)
		if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket %v %v", fi, err)
		}
		ln.Close()
	}
	close(stop)
	wg.Wait()
	if n := seen.Load(); n > 0 {
		t.Fatalf("the admin socket was seen %d times at its path with mode %04o", n, bad.Load())
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

// A link planted at server.sock: the server removed what it named. Now only the link goes;
// a file there is refused.
func TestAdminSocketFollowsNoPlantedLink(t *testing.T) {
	root := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep\n"), 0o644)
	if err := os.Symlink(victim, ops.SocketPath(root)); err != nil {
		t.Fatal(err)
	}
	ln, err := ops.ListenSocket(root)
	if err != nil {
		t.Fatal(err)
	}
	if !ops.Serving(root) {
		t.Fatal("the socket does not answer")
	}
	ln.Close()
	if b, err := os.ReadFile(victim); string(b) != "keep\n" {
		t.Fatalf("the file a planted link named was removed or changed: %q %v", b, err)
	}
	os.WriteFile(ops.SocketPath(root), []byte("x"), 0o600)
	if _, err := ops.ListenSocket(root); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("a file at server.sock: %v, want it refused", err)
	}
}

func TestServerRootMustBePrivate(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "fresh")
	if err := ops.PrepareServerRoot(fresh, nil); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Fatalf("a new server root is %04o, want 0700", fi.Mode().Perm())
	}
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o755)
	var warned string
	if err := ops.PrepareServerRoot(open, func(s string) { warned = s }); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o700 || !strings.Contains(warned, "made 0700") {
		t.Fatalf("a readable root: %04o, warned %q", fi.Mode().Perm(), warned)
	}
	for _, mode := range []os.FileMode{0o777, 0o770, 0o1777} {
		shared := filepath.Join(base, "shared"+mode.String())
		os.Mkdir(shared, 0o700)
		os.Chmod(shared, mode)
		err := ops.PrepareServerRoot(shared, nil)
		if err == nil || !strings.Contains(err.Error(), "writable by other users") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("a root of mode %v: %v, want it refused in one line", mode, err)
		}
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(base, "theirs")
		os.Mkdir(theirs, 0o700)
		os.Chown(theirs, 65534, 65534)
		if err := ops.PrepareServerRoot(theirs, nil); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Fatalf("another user's root: %v, want it refused", err)
		}
	}
}

// An auth.json that another user wrote (their own file, one everybody may write, or a
// link) would make them admin: it is refused, not read.
func TestAuthFileMustBeTheServers(t *testing.T) {
	root := t.TempDir()
	if _, err := ops.AddUser(context.Background(), ops.FileAuth{Root: root}, "admin", true); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "auth.json")
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth.json is %04o", fi.Mode().Perm())
	}
	good, _ := os.ReadFile(path)
	attacks := map[string]func(){
		"world-writable": func() { os.Chmod(path, 0o666) },
		"a link":         func() { os.Remove(path); os.WriteFile(path+".x", good, 0o600); os.Symlink(path+".x", path) },
	}
	if os.Geteuid() == 0 {
		attacks["another user's"] = func() { os.Chown(path, 65534, 65534) }
	}
	for name, attack := range attacks {
		t.Run(name, func(t *testing.T) {
			os.Remove(path)
			os.WriteFile(path, good, 0o600)
			attack()
			if _, err := (ops.FileAuth{Root: root}).Load(context.Background()); err == nil || strings.Contains(err.Error(), "\n") {
				t.Fatalf("auth.json %s was read: %v", name, err)
			}
		})
	}
}
