package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/flock"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/formats"
)

// Server limits.
const (
	MaxBatchBody  = 96 << 20 // a chunk batch request
	MaxHashesBody = 32 << 20 // a hash list: 1M hashes
	MaxJSONBody   = 4 << 20  // any JSON request

)

// DefaultMaxGetResponse bounds the chunks one /chunks/get answers (Server.MaxGetResponse);
// the client asks again for the rest.
const DefaultMaxGetResponse = 256 << 20

// AccessEntry is one line of the server's access log.
type AccessEntry struct {
	Method, Path, User string
	Status             int
	Bytes              int64
	Took               time.Duration
}

// Server is a cloud instance: the same store and ledger as a standalone one, behind an
// authenticated JSON and chunk API.
type Server struct {
	in   *ops.Instance
	auth ops.AuthCache
	Log  func(AccessEntry) // optional
	// OnError is told of errors no request returns (optional).
	OnError func(msg string)
	// GCGrace is how long gc keeps what it needs to (DefaultGCGrace).
	GCGrace time.Duration
	// MaxGetResponse bounds the stored bytes of one /chunks/get answer.
	MaxGetResponse int64
	mu             sync.Mutex // serialises project creation
	// uploads holds a slot per chunk batch being received (MaxUploads of them): memory
	// stays under MaxUploads × (MaxBatchBody + MaxBatchDecoded) whatever clients send.
	uploads chan struct{}
	// lists holds a slot per hash list being read (missing, get, delete): MaxLists of them.
	lists chan struct{}
	// access says which chunks each user may read or learn about (access.go).
	access access
	// gcMu and promised make an online gc safe beside copies (server_admin.go).
	gcMu     sync.RWMutex
	promised promises
	// MaxUpload bounds one .swrt uploaded by Starwhale's client (DefaultMaxUpload).
	MaxUpload int64
	// swUploads holds a slot per upload being unpacked (MaxUploadsAtOnce).
	swUploads chan struct{}
	cosignMu  sync.Mutex // serialises changes of the witnesses' cosignatures
	// Pages serves every path outside /api/ (the web console, ops/console), or nil.
	Pages http.Handler
}

func (s *Server) logf(format string, args ...any) {
	if s.OnError != nil {
		s.OnError(fmt.Sprintf(format, args...))
	}
}

// readable returns whether u may read project p, by auth.json as it is now.
func (s *Server) readable(ctx context.Context, u principal) (func(string) bool, error) {
	auth, _, err := s.auth.Get(ctx)
	if err != nil {
		return nil, err
	}
	return func(p string) bool { return u.mayRead(auth, p) }, nil
}

// mayRead says whether u may use project p: an admin, or a member by auth.json.
func (u principal) mayRead(auth *ops.Auth, p string) bool {
	if u.admin {
		return true
	}
	ap := auth.Projects[p]
	return ap != nil && slices.Contains(ap.Members, u.name)
}

// allowedChunks says which of hs the user of r may use (access.go).
func (s *Server) allowedChunks(r *http.Request, hs []cas.Hash) ([]bool, error) {
	if err := s.access.load(r.Context(), s.in); err != nil {
		return nil, err
	}
	u := who(r)
	readable, err := s.readable(r.Context(), u)
	if err != nil {
		return nil, err
	}
	return s.access.allowed(r.Context(), u, readable, hs)
}

// MaxLists is how many hash-list requests a server reads at once; more wait with 429.
const MaxLists = 8

// MaxUploads is how many chunk batches a server receives at once; more wait with 429.
const MaxUploads = 4

// ServerMemoryLimit is the soft memory limit 'swcli server run' sets (runtime/debug) unless
// GOMEMLIMIT is set: past it the collector works harder instead of letting garbage pile up.
// The requests themselves are bounded by MaxUploads × (MaxBatchBody + MaxBatchDecoded).
const ServerMemoryLimit = 1 << 30

// NewServer serves the instance in (whose root holds auth.json).
func NewServer(in *ops.Instance) *Server {
	return &Server{in: in, auth: ops.AuthCache{Store: in.Auth}, MaxGetResponse: DefaultMaxGetResponse, GCGrace: ops.DefaultGCGrace,
		uploads: make(chan struct{}, MaxUploads), lists: make(chan struct{}, MaxLists),
		MaxUpload: DefaultMaxUpload, swUploads: make(chan struct{}, MaxUploadsAtOnce)}
}

type ctxKey struct{}

type principal struct {
	name  string
	admin bool
}

// Handler returns the HTTP handler: the API under /api/, and Pages (when set) for every
// other path.
func (s *Server) Handler() http.Handler {
	api := s.authenticate(s.routes())
	if s.Pages == nil {
		return api
	}
	pages := s.logged(s.Pages)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			api.ServeHTTP(w, r)
			return
		}
		pages.ServeHTTP(w, r)
	})
}

// logged logs every request of next in the access log (the user is the one next names
// with SetLogUser), with internal errors' texts sent to OnError: the API's requests
// (authenticate) and the pages' alike.
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cw := &countingWriter{ResponseWriter: w, status: 200, internal: func(msg string) { s.logf("%s", msg) }}
		defer func() {
			if s.Log != nil {
				s.Log(AccessEntry{Method: r.Method, Path: r.URL.Path, User: cw.user, Status: cw.status, Bytes: cw.n, Took: time.Since(start)})
			}
		}()
		next.ServeHTTP(cw, r)
	})
}

// SetLogUser names the user of a request in the access log (w: what logged handed on).
func SetLogUser(w http.ResponseWriter, name string) {
	if cw, ok := w.(*countingWriter); ok {
		cw.user = name
	}
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	s.adminRoutes(mux)
	mux.HandleFunc(api.RouteWhoami.Pattern(), s.whoami)
	mux.HandleFunc(api.RouteProjects.Pattern(), s.projects)
	mux.HandleFunc(api.RouteVersions.Pattern(), s.project(s.versions))
	mux.HandleFunc(api.RouteHistory.Pattern(), s.project(s.history))
	mux.HandleFunc(api.RouteResolve.Pattern(), s.project(s.resolve))
	mux.HandleFunc(api.RouteInfo.Pattern(), s.project(s.info))
	mux.HandleFunc(api.RouteTag.Pattern(), s.project(s.tag))
	mux.HandleFunc(api.RouteRemove.Pattern(), s.project(s.remove))
	mux.HandleFunc(api.RouteRecover.Pattern(), s.project(s.recover))
	mux.HandleFunc(api.RouteCommit.Pattern(), s.project(s.commit))
	mux.HandleFunc(api.RouteMissing.Pattern(), s.missing)
	mux.HandleFunc(api.RouteGetChunks.Pattern(), s.getChunks)
	mux.HandleFunc(api.RoutePutChunks.Pattern(), s.putChunks)
	mux.HandleFunc(api.RouteWalkChunks.Pattern(), adminOnly(s.walkChunks))
	mux.HandleFunc(api.RouteDeleteChunk.Pattern(), adminOnly(s.deleteChunks))
	s.starwhaleRoutes(mux)
	return mux
}

type countingWriter struct {
	http.ResponseWriter
	status   int
	n        int64
	internal func(msg string) // hears the whole text of errors the answer keeps back
	user     string           // for the access log of pages (SetLogUser)
}

func (w *countingWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// authenticate checks the bearer token of every request and logs it (logged).
func (s *Server) authenticate(next http.Handler) http.Handler {
	return s.logged(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := writeErr
		sw := isStarwhalePath(r.URL.Path)
		if sw {
			fail = swFail // Starwhale's client reads its own envelope
		}
		// "Bearer TOKEN", or the bare token Starwhale's client sends.
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok && h != "" && !strings.ContainsRune(h, ' ') {
			tok, ok = h, true
		}
		auth, byTok, err := s.auth.Get(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		if sw && r.Method == http.MethodPost && r.URL.Path == SWRouteLogin.Path {
			SetLogUser(w, s.swLogin(w, r, auth, byTok))
			return
		}
		name, known := byTok[cas.Sum([]byte(tok))]
		if !ok || !known {
			fail(w, &ops.Error{Kind: ops.KindAuth, Err: errors.New("the server refused the token"), Hint: "log in again: swcli instance login URL --alias NAME --token-stdin (the token on stdin)"})
			return
		}
		SetLogUser(w, name)
		p := principal{name: name, admin: auth.Users[name].Admin}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	}))
}

func who(r *http.Request) principal { p, _ := r.Context().Value(ctxKey{}).(principal); return p }

// errForbidden is what a user gets for a project that is not theirs, whether or not it
// exists: nothing of it is revealed.
func errForbidden(p string) error {
	return &ops.Error{Kind: ops.KindForbidden, Err: fmt.Errorf("no access to project %s", p), Hint: "ask the server's admin to add you to the project"}
}

// project wraps handlers of /projects/{p}/…: the user must be a member (or an admin), and
// the project is created in the ledger the first time it is used.
func (s *Server) project(h func(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		l, p, err := s.enterProject(r)
		if err != nil {
			writeErr(w, err)
			return
		}
		h(w, r, l, p)
	}
}

// enterProject checks that the user of r may use the project of its path ({p}: a name or
// a number), creates it in the ledger on first use, and returns the endpoint that acts
// for the user there.
func (s *Server) enterProject(r *http.Request) (ops.LocalEndpoint, string, error) {
	return s.enter(r.Context(), who(r), r.PathValue("p"))
}

func (s *Server) enter(ctx context.Context, u principal, p string) (ops.LocalEndpoint, string, error) {
	auth, _, err := s.auth.Get(ctx)
	if err != nil {
		return ops.LocalEndpoint{}, "", err
	}
	if ops.IsProjectID(p) {
		id, _ := strconv.Atoi(p)
		if name := auth.ProjectByID(id); name != "" {
			p = name
		} else if !u.admin {
			return ops.LocalEndpoint{}, "", errForbidden(p) // ids that do not exist say no more than others
		} else {
			return ops.LocalEndpoint{}, "", ops.Errorf(ops.KindNotFound, "'swcli project list' shows the projects and their ids", "no project with id %s", p)
		}
	}
	if !u.mayRead(auth, p) {
		return ops.LocalEndpoint{}, "", errForbidden(p)
	}
	if auth.Projects[p] != nil {
		if err := s.ensureProject(ctx, p); err != nil {
			return ops.LocalEndpoint{}, "", err
		}
	}
	in := *s.in
	in.Actor = u.name
	return ops.LocalEndpoint{In: &in}, p, nil
}

func (s *Server) ensureProject(ctx context.Context, p string) error {
	if _, err := s.in.Ledger.Project(p); err == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.in.Ledger.Project(p); err == nil {
		return nil
	}
	_, err := s.in.Append(ctx, ledger.ProjectCreated, p, "", "", ledger.EmptyData{})
	return err
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	u := who(r)
	writeJSON(w, map[string]any{"user": u.name, "admin": u.admin, "instance": s.in.Name})
}

func (s *Server) projects(w http.ResponseWriter, r *http.Request) {
	ps, err := s.projectsFor(r.Context(), who(r))
	if err != nil {
		writeErr(w, err)
		return
	}
	names := make([]string, 0, len(ps))
	ids := map[string]int{}
	for _, p := range ps {
		names = append(names, p.Name)
		ids[p.Name] = p.ID
	}
	writeJSON(w, map[string]any{"projects": names, "ids": ids})
}

func (s *Server) versions(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	q := r.URL.Query()
	page, _ := strconv.Atoi(q.Get("page"))
	size, _ := strconv.Atoi(q.Get("size"))
	// An answer is a page, never the whole project: size defaults to and stops at a bound.
	if size <= 0 {
		size = api.DefaultPageSize
	}
	size = min(size, api.MaxPageSize)
	page = max(page, 1)
	vs, total, err := l.Versions(r.Context(), p, q.Get("runtime"), ledger.ListOptions{ShowRemoved: q.Get("show_removed") == "1",
		MissingOK: q.Get("missing_ok") == "1", Page: page, Size: size})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]any{"total": total, "versions": api.DTOs(vs)})
}

func (s *Server) history(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	vs, err := l.History(r.Context(), p, r.PathValue("r"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]any{"versions": api.DTOs(vs)})
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	v, err := l.Resolve(r.Context(), p, r.PathValue("r"), r.PathValue("ref"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, api.DTO(v))
}

func (s *Server) info(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	info, err := l.Info(r.Context(), p, r.PathValue("r"), r.PathValue("ref"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, api.InfoDTO{Version: api.DTO(info.Version), Files: info.Totals.Files, Dirs: info.Totals.Dirs,
		Links: info.Totals.Links, Size: info.Totals.Size, Lock: info.Lock, YAML: info.YAML})
}

func (s *Server) tag(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	var req api.TagRequest
	if !readJSON(w, r, &req) {
		return
	}
	res, err := l.Tag(r.Context(), p, r.PathValue("r"), req.Version, req.Tags, req.Remove, req.Quiet, req.Force)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]any{"changed": formats.NonNil(res.Changed), "skipped": formats.NonNil(res.Skipped)})
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	var req api.RemoveRequest
	if !readJSON(w, r, &req) {
		return
	}
	var vs []*ledger.Version
	var err error
	if req.DryRun {
		vs, err = l.RemoveTargets(r.Context(), p, r.PathValue("r"), req.Version, req.Purge)
	} else {
		vs, err = l.Remove(r.Context(), p, r.PathValue("r"), req.Version, req.Purge)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]any{"versions": api.DTOs(vs)})
}

func (s *Server) recover(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	var req api.RemoveRequest
	if !readJSON(w, r, &req) {
		return
	}
	vs, err := l.Recover(r.Context(), p, r.PathValue("r"), req.Version)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]any{"versions": api.DTOs(vs)})
}

// commit makes versions appear in project p, once every chunk each names is one the user
// may use (access.go): a hash alone never lets a user into another tenant's content.
func (s *Server) commit(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	var req []api.CommitVersion
	if !readJSON(w, r, &req) {
		return
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	if len(req) > ops.MaxCommitVersions {
		writeErr(w, ops.Errorf(ops.KindTooLarge, "copy fewer versions at once", "commit of %d versions: %d at most", len(req), ops.MaxCommitVersions))
		return
	}
	manifests := map[cas.Hash]*cas.Manifest{}
	entries := 0
	for _, c := range req {
		if manifests[c.Manifest] != nil {
			continue // checked once per commit, however often it is named
		}
		if ok, err := s.allowedChunks(r, []cas.Hash{c.Manifest}); err != nil {
			writeErr(w, err)
			return
		} else if !ok[0] {
			writeErr(w, ops.Errorf(ops.KindExists, "run the copy again: it sends what is missing", "commit %s/%s: manifest not there yet", c.Runtime, c.Version))
			return
		}
		m, err := ops.LoadCommitManifest(r.Context(), s.in.Chunks, c)
		if err != nil {
			writeErr(w, err)
			return
		}
		if entries += len(m.Entries); entries > ops.MaxCommitEntries {
			writeErr(w, ops.Errorf(ops.KindTooLarge, "copy fewer versions at once", "commit: its manifests hold over %d entries", ops.MaxCommitEntries))
			return
		}
		allowed, err := s.allowedChunks(r, m.Chunks())
		if err != nil {
			writeErr(w, err)
			return
		}
		if slices.Contains(allowed, false) {
			writeErr(w, ops.Errorf(ops.KindExists, "run the copy again: it sends what is missing", "commit %s/%s: chunks not there yet", c.Runtime, c.Version))
			return
		}
		manifests[c.Manifest] = m
	}
	if err := l.CommitLoaded(r.Context(), p, req, manifests); err != nil {
		writeErr(w, err)
		return
	}
	for h, m := range manifests {
		s.access.addVersion(p, h, m)
	}
	writeJSON(w, map[string]any{"committed": len(req)})
	// The uploads are part of a project now; until they are forgotten, gc only keeps them
	// (they are used anyway), so the answer need not wait.
	ctx := context.WithoutCancel(r.Context()) // the client may hang up once answered
	for h, m := range manifests {
		if err := s.access.forgetUploads(ctx, who(r).name, append(m.Chunks(), h)); err != nil {
			s.logf("forget uploads after a commit: %v", err)
		}
	}
}

// readHashes reads a hash list; release must be called once the request is answered.
func (s *Server) readHashes(w http.ResponseWriter, r *http.Request) (hs []cas.Hash, release func(), ok bool) {
	select {
	case s.lists <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "1")
		writeErr(w, &ops.Error{Kind: ops.KindTooMany, Err: fmt.Errorf("the server is reading %d hash lists already", MaxLists), Hint: "send again in a moment"})
		return nil, nil, false
	}
	release = func() { <-s.lists }
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxHashesBody))
	if err != nil {
		release()
		writeErr(w, bodyErr(err))
		return nil, nil, false
	}
	hs, err = api.DecodeHashes(body)
	if err != nil {
		release()
		writeErr(w, &ops.Error{Kind: ops.KindUsage, Err: err})
		return nil, nil, false
	}
	return hs, release, true
}

// missing answers which chunks the server lacks; a chunk the user may not know about
// counts as missing, whether or not the server holds it (access.go).
func (s *Server) missing(w http.ResponseWriter, r *http.Request) {
	hs, release, ok := s.readHashes(w, r)
	if !ok {
		return
	}
	defer release()
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	miss, err := s.in.Chunks.Missing(r.Context(), hs)
	if err != nil {
		writeErr(w, err)
		return
	}
	allowed, err := s.allowedChunks(r, hs)
	if err != nil {
		writeErr(w, err)
		return
	}
	absent := make(map[cas.Hash]bool, len(miss))
	for _, h := range miss {
		absent[h] = true
	}
	for i, h := range hs {
		if !allowed[i] && !absent[h] {
			absent[h] = true
			miss = append(miss, h)
		}
	}
	slices.SortFunc(miss, cas.Hash.Compare)
	var present []cas.Hash
	for _, h := range hs {
		if !absent[h] {
			present = append(present, h)
		}
	}
	s.promised.add(present) // an online gc keeps them a while (server_admin.go)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(api.EncodeHashes(miss))
}

// getChunks streams the chunks asked for, as stored, in the order asked: a group whose
// chunks are all asked for goes whole (cas.Local.Transfer). The answer stops once it passes
// Server.MaxGetResponse bytes, and ends with an end frame saying how many of the hashes asked for
// it answered; the client asks again for the rest. Knowing a chunk's hash is what entitles
// a user to it: hashes are only learnt from manifests of readable versions.
func (s *Server) getChunks(w http.ResponseWriter, r *http.Request) {
	hs, release, ok := s.readHashes(w, r)
	if !ok {
		return
	}
	defer release()
	seen := make(map[cas.Hash]bool, len(hs))
	for _, h := range hs {
		if seen[h] {
			writeErr(w, &ops.Error{Kind: ops.KindUsage, Err: fmt.Errorf("chunk %s asked for twice", h)})
			return
		}
		seen[h] = true
	}
	// A chunk the user may not read is not found, exactly as one the server lacks.
	allowed, err := s.allowedChunks(r, hs)
	if err != nil {
		writeErr(w, err)
		return
	}
	for i, h := range hs {
		if !allowed[i] {
			writeErr(w, &cas.NotFoundError{Hash: h})
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream") // writeErr replaces it if nothing was sent
	var sent int64
	answered := 0 // hashes of hs the frames written so far cover
	errFull := errors.New("answer full")
	err = s.in.Chunks.Transfer(r.Context(), hs, func(i int, h cas.Hash, raw cas.Raw) error {
		if err := api.WriteFrame(w, h, raw); err != nil {
			return err
		}
		answered = i + 1
		if sent += int64(len(raw.Data)); sent > s.MaxGetResponse {
			return errFull
		}
		return nil
	})
	switch {
	case err == nil:
		answered = len(hs)
	case answered == 0:
		writeErr(w, err)
		return
	case !errors.Is(err, errFull):
		return // the client sees no end frame and fails
	}
	api.WriteFrame(w, cas.Hash{}, cas.Raw{Len: int64(answered)})
}

// putChunks receives a batch: every chunk is decoded and hashed before any is stored;
// the answer comes once the batch is durable.
func (s *Server) putChunks(w http.ResponseWriter, r *http.Request) {
	select {
	case s.uploads <- struct{}{}:
		defer func() { <-s.uploads }()
	default:
		w.Header().Set("Retry-After", "1")
		writeErr(w, &ops.Error{Kind: ops.KindTooMany, Err: fmt.Errorf("the server is receiving %d batches already", MaxUploads), Hint: "send again in a moment"})
		return
	}
	var batch []api.Chunk
	err := api.ReadFrames(http.MaxBytesReader(w, r.Body, MaxBatchBody), func(h cas.Hash, raw cas.Raw) error {
		batch = append(batch, api.Chunk{Hash: h, Raw: raw})
		return nil
	})
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.Is(err, api.ErrBadFrame) && !errors.As(err, &mbe) {
			writeErr(w, &ops.Error{Kind: ops.KindUsage, Err: err})
		} else {
			writeErr(w, bodyErr(err))
		}
		return
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	sent, err := (ops.LocalEndpoint{In: s.in}).PutChunksHeld(r.Context(), batch)
	if err != nil {
		writeErr(w, err)
		return
	}
	// The user proved they have these bytes: they may use them from now on.
	if err := s.access.load(r.Context(), s.in); err != nil {
		writeErr(w, err)
		return
	}
	if err := s.access.addUploads(r.Context(), who(r).name, sent); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]any{"stored": len(batch)})
}

// errAdminOnly answers chunk listing and deletion for users who are not admins.
var errAdminOnly = errors.New("no access: this is for the server's admins")

// adminOnly wraps the handlers that reach every project (chunks, users, the ledger).
func adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !who(r).admin {
			writeErr(w, &ops.Error{Kind: ops.KindForbidden, Err: errAdminOnly, Hint: "use an admin's token"})
			return
		}
		h(w, r)
	}
}

// walkChunks lists every stored chunk in hash order (api.WalkRecord each), then a record with
// a zero hash and the count, so that a list cut short is never taken for the whole.
func (s *Server) walkChunks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	bw := bufio.NewWriterSize(w, 1<<16)
	var rec [api.WalkRecord]byte
	var n uint64
	err := s.in.Chunks.Walk(r.Context(), func(ci cas.ChunkInfo) error {
		copy(rec[:], ci.Hash[:])
		binary.BigEndian.PutUint64(rec[cas.HashSize:], uint64(ci.Size))
		binary.BigEndian.PutUint64(rec[cas.HashSize+8:], uint64(ci.Stored))
		n++
		_, err := bw.Write(rec[:])
		return err
	})
	if err != nil {
		if n == 0 {
			writeErr(w, err)
		}
		return // the client sees no end record
	}
	clear(rec[:])
	binary.BigEndian.PutUint64(rec[cas.HashSize:], n)
	bw.Write(rec[:])
	bw.Flush()
}

func (s *Server) deleteChunks(w http.ResponseWriter, r *http.Request) {
	hs, release, ok := s.readHashes(w, r)
	if !ok {
		return
	}
	defer release()
	if err := s.in.Chunks.Delete(r.Context(), hs); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]any{"deleted": len(hs)})
}

func bodyErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &ops.Error{Kind: ops.KindTooLarge, Err: fmt.Errorf("request body over the server's %d-byte limit", mbe.Limit)}
	}
	return &ops.Error{Kind: ops.KindRemote, Err: err}
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxJSONBody))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErr(w, bodyErr(err))
		} else {
			writeErr(w, &ops.Error{Kind: ops.KindUsage, Err: fmt.Errorf("bad request body: %v", err)})
		}
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// classify is the kind of an error as it travels: its own, or the one its sentinel means.
func classify(err error) ops.Kind {
	if k := ops.KindOf(err); k != ops.KindFailure {
		return k
	}
	switch {
	case errors.Is(err, cas.ErrCorrupt):
		return ops.KindCorrupt
	case errors.Is(err, cas.ErrNotFound):
		return ops.KindNotFound
	case errors.Is(err, cas.ErrTooLarge):
		return ops.KindTooLarge
	case errors.Is(err, flock.ErrBusy):
		return ops.KindBusy
	}
	return ops.KindFailure
}

// statusOf is the HTTP status of an error, by its kind.
func statusOf(err error) int {
	if st, ok := api.KindStatus[classify(err)]; ok {
		return st
	}
	return http.StatusInternalServerError
}

// writeErr answers with err. An error of no kind is the server's own (a bug, a disk, an
// engine that stopped): its text names hosts, users and paths, so the answer carries only a
// reference and the server's log the whole error. An engine that cannot be reached
// (PostgreSQL, S3, the network) is 503, so that clients retry; anything else 500.
func writeErr(w http.ResponseWriter, err error) {
	status, body := errAnswer(w, err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// errAnswer is the status and body an error is answered with. An internal error's text is
// kept back: the answer carries a reference, and the whole text goes to the log under it.
func errAnswer(w http.ResponseWriter, err error) (int, api.ErrorBody) {
	if classify(err) != ops.KindFailure {
		return statusOf(err), api.ErrorBody{Error: err.Error(), Hint: ops.HintOf(err), Kind: classify(err).String()}
	}
	var b [6]byte
	rand.Read(b[:])
	ref := hex.EncodeToString(b[:])
	if cw, ok := w.(*countingWriter); ok && cw.internal != nil {
		cw.internal(fmt.Sprintf("request failed (ref %s): %v", ref, err))
	}
	if engineDown(err) {
		return http.StatusServiceUnavailable, api.ErrorBody{Error: fmt.Sprintf("the server's storage is unavailable (ref %s)", ref), Hint: "try again later; its admin finds the reference in the server's log", Kind: ops.KindBusy.String()}
	}
	return http.StatusInternalServerError, api.ErrorBody{Error: fmt.Sprintf("the server failed (ref %s)", ref), Hint: "its admin finds the reference in the server's log", Kind: ops.KindFailure.String()}
}

// engineDown reports an error of reaching an engine: a network error (refused, reset,
// timed out), or PostgreSQL saying it cannot serve (connection exceptions, shutdown,
// insufficient resources).
func engineDown(err error) bool {
	var ne *net.OpError // (not net.Error: a syscall.Errno, EIO too, is one)
	var de *net.DNSError
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &ne), errors.As(err, &de), errors.As(err, &ce),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &pe):
		c := pe.Code
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "57") || strings.HasPrefix(c, "53")
	}
	return pgconn.SafeToRetry(err)
}
