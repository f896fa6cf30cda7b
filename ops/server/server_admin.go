package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/fsutil"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/formats"
)

// Online gc (DESIGN.md, "Admin without downtime"). A copy into a server is several requests:
// missing, chunks, commit. Between them the chunks it relies on are used by no version, so
// a gc that ran then could delete them. The server's gc therefore keeps, besides every
// chunk of a live or removed version:
//   - every chunk a user has sent and not yet committed (access.uploads), and
//   - every chunk /chunks/missing answered "present" within DefaultGCGrace (the client will not
//     send it and will commit a version that uses it);
// and it runs under gcMu's write lock, while missing, chunk uploads and commits hold its
// read lock, so that none of them sees the store half-collected.

// maxPromised bounds the chunks remembered for DefaultGCGrace (32 bytes and a time each).
const maxPromised = 4 << 20

type promises struct {
	mu sync.Mutex
	at map[cas.Hash]time.Time
}

func (p *promises) add(hs []cas.Hash) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.at == nil {
		p.at = map[cas.Hash]time.Time{}
	}
	now := time.Now()
	if len(p.at)+len(hs) > maxPromised {
		for h, t := range p.at {
			if now.Sub(t) > ops.DefaultGCGrace {
				delete(p.at, h)
			}
		}
	}
	for _, h := range hs {
		if len(p.at) >= maxPromised {
			break // past the bound a copy may have to be run again after a gc
		}
		p.at[h] = now
	}
}

func (p *promises) kept(h cas.Hash) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.at[h]
	return ok && time.Since(t) <= ops.DefaultGCGrace
}

// gc collects the store while the server runs (see above). A store replicas share is
// collected by condemning and sweeping a grace apart instead (collectShared).
func (s *Server) gc(ctx context.Context) (cas.ReclaimReport, error) {
	if _, ok := s.in.Chunks.(ops.Collector); ok {
		return ops.CollectShared(ctx, s.in, s.GCGrace) // reads pending uploads from the database
	}
	if err := s.access.load(ctx, s.in); err != nil { // the pending uploads gc keeps
		return cas.ReclaimReport{}, err
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	roots, err := s.in.Ledger.Manifests()
	if err != nil {
		return cas.ReclaimReport{}, err
	}
	return cas.ReclaimKeeping(ctx, s.in.Chunks, roots, func(h cas.Hash) bool {
		return s.access.pending(h) || s.promised.kept(h)
	})
}

func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc(api.RouteAdminUsers.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		us, err := ops.ListUsers(r.Context(), s.in.Auth)
		answer(w, map[string]any{"users": us}, err)
	}))
	mux.HandleFunc(api.RouteAdminAddUser.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name  string `json:"name"`
			Admin bool   `json:"admin"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		tok, err := ops.AddUser(r.Context(), s.in.Auth, req.Name, req.Admin)
		answer(w, map[string]any{"user": req.Name, "token": tok}, err)
	}))
	mux.HandleFunc(api.RouteAdminToken.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		tok, err := ops.IssueToken(r.Context(), s.in.Auth, r.PathValue("u"))
		answer(w, map[string]any{"user": r.PathValue("u"), "token": tok}, err)
	}))
	mux.HandleFunc(api.RouteAdminRevoke.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		answer(w, map[string]any{"revoked": r.PathValue("u")}, ops.RevokeTokens(r.Context(), s.in.Auth, r.PathValue("u")))
	}))
	mux.HandleFunc(api.RouteAdminProjects.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		ps, err := ops.ListServerProjects(r.Context(), s.in.Auth)
		answer(w, map[string]any{"projects": ps}, err)
	}))
	mux.HandleFunc(api.RouteAdminAddProject.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name    string   `json:"name"`
			Members []string `json:"members"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		pi, err := ops.NewServerProject(r.Context(), s.in.Auth, req.Name, req.Members)
		answer(w, pi, err)
	}))
	mux.HandleFunc(api.RouteAdminRmProject.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		in := *s.in
		in.Actor = who(r).name
		answer(w, map[string]any{"removed": r.PathValue("p")}, ops.RemoveServerProject(r.Context(), &in, r.PathValue("p")))
	}))
	mux.HandleFunc(api.RouteAdminMembers.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Add    []string `json:"add"`
			Remove []string `json:"remove"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		pi, err := ops.SetProjectMembers(r.Context(), s.in.Auth, r.PathValue("p"), req.Add, req.Remove)
		answer(w, pi, err)
	}))
	mux.HandleFunc(api.RouteAdminGC.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		rep, err := s.gc(r.Context())
		answer(w, rep, err)
	}))
	mux.HandleFunc(api.RouteAdminFsck.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		rep, err := ops.Fsck(r.Context(), s.in)
		if rep == nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, ops.FsckSummaryOf(rep)) // problems are in the summary; the client decides the exit code
	}))
	// The ledger of a served root, for auditors: verified here, or exported as it is now
	// (a consistent read: the events up to the head when the export began).
	mux.HandleFunc(api.RouteAdminVerify.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		rep, err := ops.VerifyLedger(r.Context(), s.in)
		answer(w, rep, err) // problems are in the report; the client decides the exit code
	}))
	// Checkpoints and proofs: for every user (hashes only); the inclusion proof carries the
	// event, so it is for admins.
	mux.HandleFunc(api.RouteLedgerKey.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		k, err := ops.LedgerKey(r.Context(), s.in)
		answer(w, map[string]any{"key": k}, err)
	})
	mux.HandleFunc(api.RouteCheckpoint.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		b, err := ops.SignedCheckpoint(r.Context(), s.in)
		if err != nil {
			writeErr(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(b)
	})
	mux.HandleFunc(api.RouteConsistency.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		from, err1 := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
		to, err2 := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
		if err1 != nil || err2 != nil {
			writeErr(w, ops.Errorf(ops.KindUsage, "", "consistency needs from and to, two sizes"))
			return
		}
		p, err := ops.ProveConsistency(r.Context(), s.in, from, to)
		answer(w, p, err)
	})
	mux.HandleFunc(api.RouteCosignatures.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		m, err := s.cosignatures()
		out := []string{}
		for _, n := range m {
			out = append(out, n)
		}
		slices.Sort(out)
		answer(w, map[string]any{"cosigned": out}, err)
	})
	mux.HandleFunc(api.RouteCosign.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		msg, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
		if err != nil {
			writeErr(w, bodyErr(err))
			return
		}
		name, err := ops.TakeCosignature(r.Context(), s.in, msg)
		if err != nil {
			writeErr(w, err)
			return
		}
		answer(w, map[string]any{"witness": name}, s.keepCosignature(name, string(msg)))
	})
	mux.HandleFunc(api.RouteInclusion.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		seq, err1 := strconv.ParseUint(r.URL.Query().Get("seq"), 10, 64)
		size, err2 := strconv.ParseUint(r.URL.Query().Get("size"), 10, 64)
		if err1 != nil || err2 != nil {
			writeErr(w, ops.Errorf(ops.KindUsage, "", "inclusion needs seq and size"))
			return
		}
		p, err := ops.ProveInclusion(r.Context(), s.in, seq, size)
		answer(w, p, err)
	}))
	mux.HandleFunc(api.RouteAdminExport.Pattern(), adminOnly(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		if err := s.in.Ledger.Export(r.Context(), w); err != nil {
			s.logf("ledger export: %v", err)
			panic(http.ErrAbortHandler) // a cut stream: the client's check names the line
		}
	}))
}

// cosignatures reads the witnesses' latest cosigned checkpoints (name → note).
func (s *Server) cosignatures() (map[string]string, error) {
	s.cosignMu.Lock()
	defer s.cosignMu.Unlock()
	return s.readCosignatures()
}

func (s *Server) readCosignatures() (map[string]string, error) {
	m := map[string]string{}
	b, err := formats.ReadNoFollow(filepath.Join(s.in.Root, ops.CosignaturesFile))
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	return m, json.Unmarshal(b, &m)
}

// keepCosignature files a witness's cosigned checkpoint (replacing its older one).
func (s *Server) keepCosignature(name, msg string) error {
	s.cosignMu.Lock()
	defer s.cosignMu.Unlock()
	m, err := s.readCosignatures()
	if err != nil {
		return err
	}
	if _, ok := m[name]; !ok && len(m) >= ops.MaxWitnesses {
		return ops.Errorf(ops.KindTooMany, "", "this server keeps the cosignatures of %d witnesses at most", ops.MaxWitnesses)
	}
	m[name] = msg
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(s.in.Root, ops.CosignaturesFile), b, 0o600)
}

func answer(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, v)
}

// SocketHandler serves the admin socket: every request is the server's own admin.
func (s *Server) SocketHandler() http.Handler {
	h := s.routes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, principal{name: "admin", admin: true})))
	})
}
