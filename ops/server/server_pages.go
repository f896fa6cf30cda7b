package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
)

// What the web console (ops/console) needs of a server: the same users, tokens, projects
// and access rules as the API, without a bearer token on every request.

// User is who a console session acts for.
type User struct {
	Name  string
	Admin bool
}

func (u User) principal() principal { return principal{name: u.Name, admin: u.Admin} }

// Instance is the served instance.
func (s *Server) Instance() *ops.Instance { return s.in }

// UserByToken says whose token tok is, by auth.json as it is now: a revoked token is
// refused at once, whatever session it opened.
func (s *Server) UserByToken(ctx context.Context, tok string) (User, error) {
	auth, byTok, err := s.auth.Get(ctx)
	if err != nil {
		return User{}, err
	}
	name, ok := byTok[cas.Sum([]byte(tok))]
	if tok == "" || !ok {
		return User{}, &ops.Error{Kind: ops.KindAuth, Err: errors.New("the server refused the token"),
			Hint: "an admin issues tokens: swcli server user token NAME"}
	}
	return User{Name: name, Admin: auth.Users[name].Admin}, nil
}

// Enter returns the endpoint that acts for u in project p (a name or a number), with the
// checks of the API: a project that is not u's is reported as the API does, whether or
// not it exists.
func (s *Server) Enter(ctx context.Context, u User, p string) (ops.LocalEndpoint, string, error) {
	return s.enter(ctx, u.principal(), p)
}

// ProjectsFor lists the projects u may use, by name (what the API's project list answers).
func (s *Server) ProjectsFor(ctx context.Context, u User) ([]ops.ProjectInfo, error) {
	return s.projectsFor(ctx, u.principal())
}

func (s *Server) projectsFor(ctx context.Context, u principal) ([]ops.ProjectInfo, error) {
	auth, _, err := s.auth.Get(ctx)
	if err != nil {
		return nil, err
	}
	out := []ops.ProjectInfo{}
	for name, p := range auth.Projects {
		if u.mayRead(auth, name) {
			out = append(out, ops.ProjectInfoOf(name, p))
		}
	}
	slices.SortFunc(out, func(a, b ops.ProjectInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// MayRead says whether u may use project p (by name).
func (s *Server) MayRead(ctx context.Context, u User, p string) (bool, error) {
	auth, _, err := s.auth.Get(ctx)
	if err != nil {
		return false, err
	}
	return u.principal().mayRead(auth, p), nil
}

// ReadVersionFile reads a file of a version's manifest, refusing one larger than max
// (a console shows small files only).
func ReadVersionFile(ctx context.Context, in *ops.Instance, e cas.Entry, max int64) ([]byte, error) {
	if e.Kind != cas.KindFile {
		return nil, ops.Errorf(ops.KindUsage, "", "%s is not a file", e.Path)
	}
	if e.Size > max {
		return nil, ops.Errorf(ops.KindUsage, "", "%s has %d bytes, more than the %d shown", e.Path, e.Size, max)
	}
	return ops.ReadEntry(ctx, in.Chunks, e)
}

// ChunkLen is the content length of a stored chunk, read from its stored form (no
// decompression).
func ChunkLen(ctx context.Context, in *ops.Instance, h cas.Hash) (int64, error) {
	r, err := in.Chunks.GetRaw(ctx, h)
	if err != nil {
		return 0, err
	}
	return r.Len, nil
}

// ErrorAnswer is the status, text and hint an error is answered with, as the API answers
// it: a failure's text is kept back (the server's log has it, under the reference the
// text gives).
func ErrorAnswer(w http.ResponseWriter, err error) (status int, text, hint string) {
	status, body := errAnswer(w, err)
	return status, body.Error, body.Hint
}

// HTTPStatus is the status the API answers err with.
func HTTPStatus(err error) int { return statusOf(err) }

// ResolveAny finds the version ref names in a runtime, live or removed.
func ResolveAny(in *ops.Instance, project, runtime, ref string) (*ledger.Version, error) {
	v, err := in.Ledger.ResolveRemoved(project, runtime, ref)
	return v, ops.LedgerErr(err)
}

// HumanBytes formats n in the units du -h users expect (decimal, like the reference's
// rich): the CLI's tables and the console's pages alike.
func HumanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v >= 100 {
		return fmt.Sprintf("%.0f %cB", v, "kMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f %cB", v, "kMGTPE"[exp])
}
