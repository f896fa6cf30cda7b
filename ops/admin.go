package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
	"github.com/swcli/swcli/ops/formats"
)

// Administration of a cloud instance: users, tokens, projects and members (auth.json),
// gc and fsck. The same operations work on the root directly (no server running), and on
// a running server through its admin API: over HTTP with an admin's token, or over the
// server's socket ROOT/server.sock (file permissions are the credential: whoever can open
// it can read auth.json anyway).

// UserInfo is a user as admins see it.
type UserInfo struct {
	Name   string `json:"name"`
	Admin  bool   `json:"admin"`
	Tokens int    `json:"tokens"`
}

// ProjectInfo is a server project as admins see it.
type ProjectInfo struct {
	ID      int       `json:"id"`
	Name    string    `json:"name"`
	Members []string  `json:"members"`
	Created time.Time `json:"created"`
}

// FsckSummary is what fsck found, for the admin API.
type FsckSummary struct {
	Chunks    int64    `json:"chunks"`
	Bytes     int64    `json:"bytes"`
	Corrupt   int      `json:"corrupt"`
	LostPacks int      `json:"lost_packs"`
	Problems  []string `json:"problems"`
}

// Admin is the administration of one cloud instance.
type Admin interface {
	Users(ctx context.Context) ([]UserInfo, error)
	AddUser(ctx context.Context, name string, admin bool) (string, error)
	IssueToken(ctx context.Context, name string) (string, error)
	Revoke(ctx context.Context, name string) error
	Projects(ctx context.Context) ([]ProjectInfo, error)
	CreateProject(ctx context.Context, name string, members []string) (*ProjectInfo, error)
	RemoveProject(ctx context.Context, name string) error
	SetMembers(ctx context.Context, project string, add, remove []string) (*ProjectInfo, error)
	GC(ctx context.Context) (cas.ReclaimReport, error)
	Fsck(ctx context.Context) (*FsckSummary, error)
	// LedgerVerify verifies the ledger where it is (chain, projections, manifests).
	LedgerVerify(ctx context.Context) (*LedgerReport, error)
	// LedgerExport streams every event as export lines to w.
	LedgerExport(ctx context.Context, w io.Writer) error
	Where() string // the root, or the server's URL
}

// LedgerReport is what a ledger verification found, as it travels.
type LedgerReport struct {
	Events   uint64          `json:"events"`
	Head     uint64          `json:"head"`
	HeadHash cas.Hash        `json:"head_hash"`
	Problems []LedgerProblem `json:"problems"`
}

// LedgerProblem is one thing verification found wrong, at an event.
type LedgerProblem struct {
	Seq    uint64 `json:"seq"`
	Detail string `json:"detail"`
}

func (p LedgerProblem) String() string {
	if p.Seq == 0 {
		return p.Detail
	}
	return fmt.Sprintf("event %d: %s", p.Seq, p.Detail)
}

// VerifyLedger verifies the instance's ledger against its store.
func VerifyLedger(ctx context.Context, in *Instance) (*LedgerReport, error) {
	rep, err := in.Ledger.Verify(ctx, in.Chunks)
	if err != nil {
		return nil, err
	}
	out := &LedgerReport{Events: rep.Events, Head: rep.Head.Seq, HeadHash: rep.Head.Hash, Problems: []LedgerProblem{}}
	for _, p := range rep.Problems {
		out.Problems = append(out.Problems, LedgerProblem{Seq: p.Seq, Detail: p.Detail})
	}
	return out, nil
}

// ListUsers lists the users by name.
func ListUsers(ctx context.Context, as AuthStore) ([]UserInfo, error) {
	a, err := as.Load(ctx)
	if err != nil {
		return nil, err
	}
	out := []UserInfo{}
	for n, u := range a.Users {
		out = append(out, UserInfo{Name: n, Admin: u.Admin, Tokens: len(u.Tokens)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ListServerProjects lists the server's projects by id.
func ListServerProjects(ctx context.Context, as AuthStore) ([]ProjectInfo, error) {
	a, err := as.Load(ctx)
	if err != nil {
		return nil, err
	}
	out := []ProjectInfo{}
	for n, p := range a.Projects {
		out = append(out, ProjectInfoOf(n, p))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ProjectInfoOf is a project of the server's auth store as admins see it.
func ProjectInfoOf(name string, p *AuthProject) ProjectInfo {
	m := append([]string{}, p.Members...)
	return ProjectInfo{ID: p.ID, Name: name, Members: m, Created: p.Created}
}

func serverProject(ctx context.Context, as AuthStore, name string) (*ProjectInfo, error) {
	a, err := as.Load(ctx)
	if err != nil {
		return nil, err
	}
	p := a.Projects[name]
	if p == nil {
		return nil, Errorf(KindNotFound, "'swcli server project list' shows them", "no project %s", name)
	}
	pi := ProjectInfoOf(name, p)
	return &pi, nil
}

// SetProjectMembers adds and removes members of a server project.
func SetProjectMembers(ctx context.Context, as AuthStore, name string, add, remove []string) (*ProjectInfo, error) {
	name = NormalizeName(name)
	err := as.Update(ctx, func(a *Auth) error {
		p := a.Projects[name]
		if p == nil {
			return Errorf(KindNotFound, "'swcli server project list' shows them", "no project %s", name)
		}
		for _, m := range add {
			if a.Users[m] == nil {
				return Errorf(KindNotFound, "'swcli server user add "+m+"' first", "no user %s", m)
			}
		}
		for _, m := range remove {
			if !slices.Contains(p.Members, m) {
				return Errorf(KindNotFound, "", "%s is not a member of %s", m, name)
			}
		}
		p.Members = slices.DeleteFunc(append(p.Members, add...), func(m string) bool { return slices.Contains(remove, m) })
		sort.Strings(p.Members)
		p.Members = slices.Compact(p.Members)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return serverProject(ctx, as, name)
}

// RemoveServerProject removes a server project: refused while it has live versions; its
// members lose access, its removed versions stay in the ledger (project.removed).
func RemoveServerProject(ctx context.Context, in *Instance, name string) error {
	name = NormalizeName(name)
	if _, err := serverProject(ctx, in.Auth, name); err != nil {
		return err
	}
	if _, err := in.Ledger.Project(name); err == nil {
		if err := RemoveProject(ctx, in, name); err != nil {
			return err
		}
	}
	return in.Auth.Update(ctx, func(a *Auth) error {
		delete(a.Projects, name)
		return nil
	})
}

// FsckSummaryOf condenses a fsck report.
func FsckSummaryOf(rep *FsckReport) *FsckSummary {
	s := &FsckSummary{Chunks: rep.Chunks, Bytes: rep.Bytes, Corrupt: len(rep.Problems), LostPacks: len(rep.Packs), Problems: []string{}}
	for _, p := range rep.Problems {
		s.Problems = append(s.Problems, fmt.Sprintf("%s: %s", p.Hash, p.Reason))
	}
	return s
}

// AdminDirect administers an instance that no server holds (its root, or its PostgreSQL
// and bucket). Open opens it (exclusive for gc).
type AdminDirect struct {
	Root string
	Open func(exclusive bool) (*Instance, error)
}

// with runs fn on the instance, opened for the call.
func with[T any](d AdminDirect, exclusive bool, fn func(in *Instance) (T, error)) (T, error) {
	in, err := d.Open(exclusive)
	if err != nil {
		var zero T
		return zero, err
	}
	defer in.Close()
	return fn(in)
}

func (d AdminDirect) Where() string { return d.Root }
func (d AdminDirect) Users(ctx context.Context) ([]UserInfo, error) {
	return with(d, false, func(in *Instance) ([]UserInfo, error) { return ListUsers(ctx, in.Auth) })
}
func (d AdminDirect) Revoke(ctx context.Context, name string) error {
	_, err := with(d, false, func(in *Instance) (any, error) { return nil, RevokeTokens(ctx, in.Auth, name) })
	return err
}
func (d AdminDirect) Projects(ctx context.Context) ([]ProjectInfo, error) {
	return with(d, false, func(in *Instance) ([]ProjectInfo, error) { return ListServerProjects(ctx, in.Auth) })
}
func (d AdminDirect) AddUser(ctx context.Context, name string, admin bool) (string, error) {
	return with(d, false, func(in *Instance) (string, error) { return AddUser(ctx, in.Auth, name, admin) })
}
func (d AdminDirect) IssueToken(ctx context.Context, name string) (string, error) {
	return with(d, false, func(in *Instance) (string, error) { return IssueToken(ctx, in.Auth, name) })
}
func (d AdminDirect) CreateProject(ctx context.Context, name string, members []string) (*ProjectInfo, error) {
	return with(d, false, func(in *Instance) (*ProjectInfo, error) { return NewServerProject(ctx, in.Auth, name, members) })
}

// NewServerProject creates a project and returns it as admins see it.
func NewServerProject(ctx context.Context, as AuthStore, name string, members []string) (*ProjectInfo, error) {
	if err := CreateServerProject(ctx, as, name, members); err != nil {
		return nil, err
	}
	return serverProject(ctx, as, NormalizeName(name))
}
func (d AdminDirect) SetMembers(ctx context.Context, project string, add, remove []string) (*ProjectInfo, error) {
	return with(d, false, func(in *Instance) (*ProjectInfo, error) {
		return SetProjectMembers(ctx, in.Auth, project, add, remove)
	})
}
func (d AdminDirect) RemoveProject(ctx context.Context, name string) error {
	_, err := with(d, false, func(in *Instance) (any, error) { return nil, RemoveServerProject(ctx, in, name) })
	return err
}
func (d AdminDirect) GC(ctx context.Context) (cas.ReclaimReport, error) {
	return with(d, true, func(in *Instance) (cas.ReclaimReport, error) { return GC(ctx, in) })
}
func (d AdminDirect) Fsck(ctx context.Context) (*FsckSummary, error) {
	return with(d, false, func(in *Instance) (*FsckSummary, error) {
		rep, err := Fsck(ctx, in)
		if rep == nil {
			return nil, err
		}
		return FsckSummaryOf(rep), err
	})
}

func (d AdminDirect) LedgerVerify(ctx context.Context) (*LedgerReport, error) {
	return with(d, false, func(in *Instance) (*LedgerReport, error) { return VerifyLedger(ctx, in) })
}
func (d AdminDirect) LedgerExport(ctx context.Context, w io.Writer) error {
	_, err := with(d, false, func(in *Instance) (any, error) { return nil, in.Ledger.Export(ctx, w) })
	return err
}

// AdminRemote administers a running server through its admin API.
type AdminRemote struct{ *client.Remote }

func (r AdminRemote) Where() string { return r.Name() }
func (r AdminRemote) Users(ctx context.Context) ([]UserInfo, error) {
	var out struct {
		Users []UserInfo `json:"users"`
	}
	return out.Users, r.GetJSON(ctx, api.RouteAdminUsers.URL(), &out)
}
func (r AdminRemote) AddUser(ctx context.Context, name string, admin bool) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	return out.Token, r.PostJSON(ctx, api.RouteAdminAddUser.URL(), map[string]any{"name": name, "admin": admin}, &out)
}
func (r AdminRemote) IssueToken(ctx context.Context, name string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	return out.Token, r.PostJSON(ctx, api.RouteAdminToken.URL(name), map[string]any{}, &out)
}
func (r AdminRemote) Revoke(ctx context.Context, name string) error {
	return r.PostJSON(ctx, api.RouteAdminRevoke.URL(name), map[string]any{}, nil)
}
func (r AdminRemote) Projects(ctx context.Context) ([]ProjectInfo, error) {
	var out struct {
		Projects []ProjectInfo `json:"projects"`
	}
	return out.Projects, r.GetJSON(ctx, api.RouteAdminProjects.URL(), &out)
}
func (r AdminRemote) CreateProject(ctx context.Context, name string, members []string) (*ProjectInfo, error) {
	var out ProjectInfo
	return &out, r.PostJSON(ctx, api.RouteAdminAddProject.URL(), map[string]any{"name": name, "members": formats.NonNil(members)}, &out)
}
func (r AdminRemote) RemoveProject(ctx context.Context, name string) error {
	return r.PostJSON(ctx, api.RouteAdminRmProject.URL(name), map[string]any{}, nil)
}
func (r AdminRemote) SetMembers(ctx context.Context, project string, add, remove []string) (*ProjectInfo, error) {
	var out ProjectInfo
	return &out, r.PostJSON(ctx, api.RouteAdminMembers.URL(project), map[string]any{"add": formats.NonNil(add), "remove": formats.NonNil(remove)}, &out)
}
func (r AdminRemote) GC(ctx context.Context) (cas.ReclaimReport, error) {
	var out cas.ReclaimReport
	return out, r.PostJSON(ctx, api.RouteAdminGC.URL(), map[string]any{}, &out)
}
func (r AdminRemote) Fsck(ctx context.Context) (*FsckSummary, error) {
	var out FsckSummary
	if err := r.PostJSON(ctx, api.RouteAdminFsck.URL(), map[string]any{}, &out); err != nil {
		return nil, err
	}
	if out.Corrupt > 0 || out.LostPacks > 0 {
		return &out, Errorf(KindCorrupt, "see 'swcli fsck' on the server's root for the versions that use them", "%d corrupt chunks, %d lost packs", out.Corrupt, out.LostPacks)
	}
	return &out, nil
}

func (r AdminRemote) LedgerVerify(ctx context.Context) (*LedgerReport, error) {
	var out LedgerReport
	return &out, r.PostJSON(ctx, api.RouteAdminVerify.URL(), map[string]any{}, &out)
}

// LedgerExport streams the server's export to w.
func (r AdminRemote) LedgerExport(ctx context.Context, w io.Writer) error {
	resp, err := r.Do(ctx, "GET", api.RouteAdminExport.URL(), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return &Error{Kind: KindRemote, Err: fmt.Errorf("%s: ledger export: %v", r.Name(), err)}
	}
	return nil
}

// SocketPath is the admin socket a running server listens on in its root. A unix socket's
// address is at most about 100 bytes: under a longer root the socket itself lives in the
// temporary directory and SocketPath is a symbolic link to it (dialSocket follows it).
func SocketPath(root string) string { return filepath.Join(root, "server.sock") }

// maxSocketPath is what every platform's sockaddr_un holds, with room for the NUL.
const maxSocketPath = 100

// socketAddr is where to dial root's socket: SocketPath, or the target of its link.
func socketAddr(root string) string {
	p := SocketPath(root)
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if t, err := os.Readlink(p); err == nil {
			return t
		}
	}
	return p
}

// Serving reports whether a server is serving root now (its socket answers).
func Serving(root string) bool {
	c, err := net.DialTimeout("unix", socketAddr(root), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// NewSocketRemote is a client of the server serving root, through its socket.
func NewSocketRemote(root string) *client.Remote {
	sock := socketAddr(root)
	r := client.NewRemote("", "http://server.sock", "")
	r.HTTP = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	r.Socket = root
	return r
}

// ListenSocket listens on root's admin socket, replacing a stale one (a server that died);
// it fails if another server answers there. The socket is bound inside a fresh 0700
// directory and made 0600 before anything can reach it, then renamed into the root (or,
// under a root too long for a socket address, linked from it): no other user can connect
// in between, whatever the umask. What stands at server.sock is removed only if it is a
// socket or a link (the link itself, never what it names); anything else is refused.
// Close removes it (and its link).
func ListenSocket(root string) (net.Listener, error) {
	if Serving(root) {
		return nil, Errorf(KindBusy, "stop the other server first", "%s is already served (%s answers)", root, SocketPath(root))
	}
	link := SocketPath(root)
	if fi, err := os.Lstat(link); err == nil {
		if fi.Mode()&(os.ModeSocket|os.ModeSymlink) == 0 {
			return nil, Errorf(KindUsage, "remove it if it is yours", "%s is not a socket (%s): refused", link, fi.Mode().Type())
		}
		if fi.Mode()&os.ModeSymlink != 0 { // a dead server's socket in a short directory
			removeStaleSocketDir(link)
		}
		if err := os.Remove(link); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	parent := root
	abs, err := filepath.Abs(link)
	if err != nil {
		return nil, err
	}
	// The socket is made in a private directory beside it and then renamed into place, so
	// that directory's path is the one that must fit.
	long := !socketFitsIn(filepath.Dir(abs))
	if long {
		// A short private directory: in the temporary directory, or in /tmp when even
		// that is too long for a socket's address.
		parent = os.TempDir()
		if !socketFitsIn(parent) {
			parent = "/tmp"
		}
		sweepSocketDirs(parent)
	}
	dir, err := os.MkdirTemp(parent, "swcli-sock-")
	if err != nil {
		return nil, err
	}
	addr := filepath.Join(dir, "server.sock")
	ln, err := net.Listen("unix", addr)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Chmod(addr, 0o600); err != nil {
		return fail(err)
	}
	if long {
		if err := os.Symlink(addr, link); err != nil {
			return fail(err)
		}
		return &socketListener{Listener: ln, link: link, addr: addr}, nil
	}
	if err := os.Rename(addr, link); err != nil {
		return fail(err)
	}
	os.Remove(dir)
	return &socketListener{Listener: ln, link: link, addr: link}, nil
}

// socketFitsIn says whether a socket in a private directory (os.MkdirTemp's swcli-sock-N,
// N up to ten digits) under parent has an address short enough.
func socketFitsIn(parent string) bool {
	return len(filepath.Join(parent, "swcli-sock-0123456789", "server.sock")) <= maxSocketPath
}

// removeStaleSocketDir removes the private directory a dead server's socket link points
// into (a server killed with SIGKILL leaves it): only one of ours, with nothing in it but
// the socket.
func removeStaleSocketDir(link string) {
	target, err := os.Readlink(link)
	if err != nil || filepath.Base(target) != "server.sock" {
		return
	}
	dir := filepath.Dir(target)
	if !strings.HasPrefix(filepath.Base(dir), "swcli-sock-") {
		return
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) > 1 {
		return
	}
	os.Remove(target)
	os.Remove(dir)
}

// sweepSocketDirs removes what servers killed with SIGKILL left in parent: directories
// of ours (swcli-sock-*, this user's, an hour old) holding nothing but a socket nobody
// answers on. A server whose root is served again removes its own at once
// (removeStaleSocketDir); this catches those whose root is gone.
func sweepSocketDirs(parent string) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "swcli-sock-") {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		fi, err := os.Lstat(dir)
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() || time.Since(fi.ModTime()) < time.Hour {
			continue
		}
		inside, err := os.ReadDir(dir)
		if err != nil || len(inside) > 1 || (len(inside) == 1 && inside[0].Name() != "server.sock") {
			continue
		}
		sock := filepath.Join(dir, "server.sock")
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close() // a live server
			continue
		}
		os.Remove(sock)
		os.Remove(dir)
	}
}

// socketListener removes the socket, its link and its private directory when closed.
type socketListener struct {
	net.Listener
	link, addr string
}

// Unwrap is the bound listener, without the cleanup (tests play a killed server with it).
func (l *socketListener) Unwrap() net.Listener { return l.Listener }

func (l *socketListener) Close() error {
	err := l.Listener.Close()
	os.Remove(l.link)
	if l.addr != l.link {
		os.RemoveAll(filepath.Dir(l.addr))
	}
	return err
}
