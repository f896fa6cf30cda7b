package ops

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/flock"
	"github.com/swcli/swcli/internal/fsutil"
	"github.com/swcli/swcli/ledger"
)

// Auth is a server's users, their hashed tokens and the projects' members, kept by an
// AuthStore: ROOT/auth.json, or tables in PostgreSQL for replicas (auth_pg.go). Admin
// commands change it while the server runs; the server re-reads it when it changes.
type Auth struct {
	Users    map[string]*AuthUser    `json:"users"`
	Projects map[string]*AuthProject `json:"projects"`
}

// AuthUser is a user. Tokens are stored as blake3 hashes only.
type AuthUser struct {
	Admin  bool       `json:"admin"`
	Tokens []cas.Hash `json:"tokens"`
}

// AuthProject lists a project's members.
type AuthProject struct {
	// ID is the project's number (cloud://ALIAS/project/ID), given once, never reused.
	ID      int       `json:"id"`
	Members []string  `json:"members"`
	Created time.Time `json:"created"`
}

// ProjectByID is the name of the project numbered id ("" if none).
func (a *Auth) ProjectByID(id int) string {
	for name, p := range a.Projects {
		if p.ID == id {
			return name
		}
	}
	return ""
}

// numberProjects gives an id to projects of an auth.json written before ids existed, in
// order of creation (then name), after the highest id given: the same on every read.
func (a *Auth) numberProjects() {
	top := 0
	var missing []string
	for name, p := range a.Projects {
		top = max(top, p.ID)
		if p.ID == 0 {
			missing = append(missing, name)
		}
	}
	sort.Slice(missing, func(i, j int) bool {
		pi, pj := a.Projects[missing[i]], a.Projects[missing[j]]
		if !pi.Created.Equal(pj.Created) {
			return pi.Created.Before(pj.Created)
		}
		return missing[i] < missing[j]
	})
	for _, name := range missing {
		top++
		a.Projects[name].ID = top
	}
}

// AuthStore keeps a server's Auth.
type AuthStore interface {
	// Load reads the whole of it.
	Load(ctx context.Context) (*Auth, error)
	// Update changes it: fn's changes are written atomically, and updates are serialised.
	Update(ctx context.Context, fn func(*Auth) error) error
	// Stamp changes whenever the Auth does (a cache's key).
	Stamp(ctx context.Context) (string, error)
}

// FileAuth is ROOT/auth.json.
type FileAuth struct{ Root string }

func authPath(root string) string { return filepath.Join(root, "auth.json") }

// Load reads ROOT/auth.json (empty if missing).
func (f FileAuth) Load(ctx context.Context) (*Auth, error) {
	b, err := readAuthFile(f.Root)
	if err != nil {
		return nil, err
	}
	return parseAuth(f.Root, b)
}

// Stamp is the hash of auth.json's bytes: a change is seen by the very next request,
// however quickly it follows, which a stamp of mtime and size could miss.
func (f FileAuth) Stamp(ctx context.Context) (string, error) {
	b, err := readAuthFile(f.Root)
	return cas.Sum(b).String(), err
}

// maxAuthFile bounds auth.json: thousands of users with their token hashes fit well below.
const maxAuthFile = 64 << 20

// readAuthFile returns auth.json's bytes (none if it does not exist). A file that another
// user owns or may write, or a link, is refused: whoever wrote it would be admin.
func readAuthFile(root string) ([]byte, error) {
	f, err := os.OpenFile(authPath(root), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, Errorf(KindForbidden, "remove it and add users again with 'swcli server user add'", "%s is a symbolic link: refused", authPath(root))
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if err := privateFile(authPath(root), fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxAuthFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxAuthFile {
		return nil, fmt.Errorf("%s is over %d MiB", authPath(root), maxAuthFile>>20)
	}
	return b, nil
}

func parseAuth(root string, b []byte) (*Auth, error) {
	a := &Auth{Users: map[string]*AuthUser{}, Projects: map[string]*AuthProject{}}
	if b == nil {
		return a, nil
	}
	if err := json.Unmarshal(b, a); err != nil {
		return nil, fmt.Errorf("read %s: %w", authPath(root), err)
	}
	if a.Users == nil {
		a.Users = map[string]*AuthUser{}
	}
	if a.Projects == nil {
		a.Projects = map[string]*AuthProject{}
	}
	a.numberProjects()
	return a, nil
}

// Update changes ROOT/auth.json under its lock, writing it atomically.
func (f FileAuth) Update(ctx context.Context, fn func(*Auth) error) error {
	root := f.Root
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	lock, err := flock.Acquire(ctx, filepath.Join(root, "auth.lock"), flock.Options{})
	if err != nil {
		return err
	}
	defer lock.Release()
	a, err := f.Load(ctx)
	if err != nil {
		return err
	}
	if err := fn(a); err != nil {
		return err
	}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	// A new file of a random name (O_EXCL, no link followed), renamed over auth.json.
	return fsutil.WriteFileAtomic(authPath(root), b, 0o600)
}

// NewToken returns a fresh token and the hash the server keeps.
func NewToken() (string, cas.Hash, error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", cas.Hash{}, err
	}
	tok := "swt_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
	return tok, cas.Sum([]byte(tok)), nil
}

// AddUser creates a user and returns its first token (shown once).
func AddUser(ctx context.Context, as AuthStore, name string, admin bool) (string, error) {
	if !ledger.ValidName(name) {
		return "", Errorf(KindUsage, "", "invalid user name %q", name)
	}
	tok, h, err := NewToken()
	if err != nil {
		return "", err
	}
	return tok, as.Update(ctx, func(a *Auth) error {
		if a.Users[name] != nil {
			return Errorf(KindExists, "'swcli server user token "+name+"' issues another token", "user %s exists", name)
		}
		a.Users[name] = &AuthUser{Admin: admin, Tokens: []cas.Hash{h}}
		return nil
	})
}

// IssueToken gives an existing user another token.
func IssueToken(ctx context.Context, as AuthStore, name string) (string, error) {
	tok, h, err := NewToken()
	if err != nil {
		return "", err
	}
	return tok, as.Update(ctx, func(a *Auth) error {
		u := a.Users[name]
		if u == nil {
			return Errorf(KindNotFound, "", "no user %s", name)
		}
		u.Tokens = append(u.Tokens, h)
		return nil
	})
}

// RevokeTokens revokes every token of a user.
func RevokeTokens(ctx context.Context, as AuthStore, name string) error {
	return as.Update(ctx, func(a *Auth) error {
		u := a.Users[name]
		if u == nil {
			return Errorf(KindNotFound, "", "no user %s", name)
		}
		u.Tokens = nil
		return nil
	})
}

// CreateServerProject creates a project with members (users that must exist).
func CreateServerProject(ctx context.Context, as AuthStore, name string, members []string) error {
	name = NormalizeName(name)
	if !ledger.ValidName(name) {
		return Errorf(KindUsage, "", "invalid project name %q", name)
	}
	return as.Update(ctx, func(a *Auth) error {
		if a.Projects[name] != nil {
			return Errorf(KindExists, "", "project %s exists", name)
		}
		for _, m := range members {
			if a.Users[m] == nil {
				return Errorf(KindNotFound, "'swcli server user add "+m+"' first", "no user %s", m)
			}
		}
		sort.Strings(members)
		id := 0
		for _, p := range a.Projects {
			id = max(id, p.ID)
		}
		a.Projects[name] = &AuthProject{ID: id + 1, Members: slices.Compact(members), Created: time.Now().UTC()}
		return nil
	})
}

// AuthCache asks the store for its stamp on every request and loads the Auth again only
// when the stamp changed.
type AuthCache struct {
	Store AuthStore
	mu    sync.Mutex
	stamp string
	auth  *Auth
	byTok map[cas.Hash]string
}

func (c *AuthCache) Get(ctx context.Context) (*Auth, map[cas.Hash]string, error) {
	stamp, err := c.Store.Stamp(ctx)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.auth != nil && stamp == c.stamp {
		return c.auth, c.byTok, nil
	}
	a, err := c.Store.Load(ctx)
	if err != nil {
		return nil, nil, err
	}
	c.auth, c.stamp = a, stamp
	c.byTok = map[cas.Hash]string{}
	for name, u := range a.Users {
		for _, t := range u.Tokens {
			c.byTok[t] = name
		}
	}
	return c.auth, c.byTok, nil
}
