package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/formats"
)

// Starwhale's runtime API: the requests Starwhale's own Python client (0.6.15) makes for
// instance login, project list/info and runtime list/info/history/tag/remove/recover/copy,
// answered as Starwhale's server answers them (its envelope {"code", "message", "data"},
// its pages), on the same port, users, tokens and access rules as swcli's API. An upload is
// an import (deduplicated against everything stored, a ledger event with the actor); a
// download is an export streamed as it is made.
//
// Starwhale names a project by number or name and a version by its id or a tag; a version
// imported from Starwhale answers to Starwhale's id too (ledger.Version.Origin).

// The routes, in net/http's pattern syntax: {p} a project (name or number), {r} a runtime,
// {v} a version (id, Starwhale's id, tag), {tag} a tag.
var (
	SWRouteLogin         = api.Route{Method: "POST", Path: "/api/v1/login"}
	SWRouteCurrentUser   = api.Route{Method: "GET", Path: "/api/v1/user/current"}
	SWRouteProjects      = api.Route{Method: "GET", Path: "/api/v1/project"}
	SWRouteAddProject    = api.Route{Method: "POST", Path: "/api/v1/project"}
	SWRouteProject       = api.Route{Method: "GET", Path: "/api/v1/project/{p}"}
	SWRouteRuntimes      = api.Route{Method: "GET", Path: "/api/v1/project/{p}/runtime"}
	SWRouteRuntime       = api.Route{Method: "GET", Path: "/api/v1/project/{p}/runtime/{r}"}
	SWRouteRemoveRuntime = api.Route{Method: "DELETE", Path: "/api/v1/project/{p}/runtime/{r}"}
	SWRouteRecover       = api.Route{Method: "PUT", Path: "/api/v1/project/{p}/runtime/{r}/recover"}
	SWRouteVersions      = api.Route{Method: "GET", Path: "/api/v1/project/{p}/runtime/{r}/version"}
	SWRouteVersion       = api.Route{Method: "GET", Path: "/api/v1/project/{p}/runtime/{r}/version/{v}"} // HEAD too
	SWRouteUpload        = api.Route{Method: "POST", Path: "/api/v1/project/{p}/runtime/{r}/version/{v}/file"}
	SWRouteDownload      = api.Route{Method: "GET", Path: "/api/v1/project/{p}/runtime/{r}/version/{v}/file"}
	SWRouteTags          = api.Route{Method: "GET", Path: "/api/v1/project/{p}/runtime/{r}/version/{v}/tag"}
	SWRouteAddTag        = api.Route{Method: "POST", Path: "/api/v1/project/{p}/runtime/{r}/version/{v}/tag"}
	SWRouteRemoveTag     = api.Route{Method: "DELETE", Path: "/api/v1/project/{p}/runtime/{r}/version/{v}/tag/{tag}"}
)

// StarwhaleRoutes lists them (the server serves each).
var StarwhaleRoutes = []api.Route{SWRouteLogin, SWRouteCurrentUser, SWRouteProjects, SWRouteAddProject,
	SWRouteProject, SWRouteRuntimes, SWRouteRuntime, SWRouteRemoveRuntime, SWRouteRecover, SWRouteVersions,
	SWRouteVersion, SWRouteUpload, SWRouteDownload, SWRouteTags, SWRouteAddTag, SWRouteRemoveTag}

// Upload limits.
const (
	// DefaultMaxUpload bounds one uploaded .swrt (Server.MaxUpload): it is streamed to a
	// temporary file of the root, never held in memory.
	DefaultMaxUpload = 16 << 30
	// MaxUploadsAtOnce is how many uploads a server unpacks at once; more wait their turn.
	MaxUploadsAtOnce = 2
	maxFormField     = 4 << 10 // a multipart field other than the file
	maxFormParts     = 16
)

func isStarwhalePath(p string) bool {
	return p == "/api/v1/project" || strings.HasPrefix(p, "/api/v1/project/") ||
		p == SWRouteLogin.Path || p == SWRouteCurrentUser.Path
}

func (s *Server) starwhaleRoutes(mux *http.ServeMux) {
	mux.HandleFunc(SWRouteCurrentUser.Pattern(), s.swCurrentUser)
	mux.HandleFunc(SWRouteProjects.Pattern(), s.swProjects)
	mux.HandleFunc(SWRouteAddProject.Pattern(), s.swAddProject)
	mux.HandleFunc(SWRouteProject.Pattern(), s.swProject(s.swProjectInfo))
	mux.HandleFunc(SWRouteRuntimes.Pattern(), s.swProject(s.swRuntimes))
	mux.HandleFunc(SWRouteRuntime.Pattern(), s.swProject(s.swRuntimeInfo))
	mux.HandleFunc(SWRouteRemoveRuntime.Pattern(), s.swProject(s.swRemove))
	mux.HandleFunc(SWRouteRecover.Pattern(), s.swProject(s.swRecover))
	mux.HandleFunc(SWRouteVersions.Pattern(), s.swProject(s.swVersions))
	mux.HandleFunc(SWRouteVersion.Pattern(), s.swProject(s.swVersion))
	mux.HandleFunc(SWRouteUpload.Pattern(), s.swProject(s.swUpload))
	mux.HandleFunc(SWRouteDownload.Pattern(), s.swProject(s.swDownload))
	mux.HandleFunc(SWRouteTags.Pattern(), s.swProject(s.swTags))
	mux.HandleFunc(SWRouteAddTag.Pattern(), s.swProject(s.swAddTag))
	mux.HandleFunc(SWRouteRemoveTag.Pattern(), s.swProject(s.swRemoveTag))
	// Starwhale's client 0.6.15 spells remove's and recover's paths with the project's
	// whole URI and the type's Python name (/project/http://HOST/project/P/ResourceType.runtime/R):
	// taken as meant.
	mux.HandleFunc("DELETE /api/v1/project/{scheme}/{host}/project/{p}/{typ}/{r}", s.swMangled(s.swRemove))
	mux.HandleFunc("PUT /api/v1/project/{scheme}/{host}/project/{p}/{typ}/{r}/recover", s.swMangled(s.swRecover))
	// Anything else under Starwhale's paths (its models, datasets, jobs): a clear answer
	// in its envelope.
	mux.HandleFunc("/api/v1/project/", func(w http.ResponseWriter, r *http.Request) {
		swFail(w, ops.Errorf(ops.KindNotFound, "swcli server keeps runtimes only", "%s %s: not served here", r.Method, r.URL.Path))
	})
}

// swMangled serves the paths of swcli remove/recover as Starwhale's 0.6.15 client spells
// them, when they name a runtime.
func (s *Server) swMangled(h func(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if typ := r.PathValue("typ"); typ != "runtime" && typ != "ResourceType.runtime" {
			swFail(w, ops.Errorf(ops.KindNotFound, "swcli server keeps runtimes only", "%s %s: not served here", r.Method, r.URL.Path))
			return
		}
		s.swProject(h)(w, r)
	}
}

// swEnvelope is Starwhale's answer: code "success" or an error code, a message, the data.
type swEnvelope struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data"`
}

func swOK(w http.ResponseWriter, data any) {
	writeJSON(w, swEnvelope{Code: "success", Message: "Success", Data: data})
}

// swFail answers an error in Starwhale's envelope, with the status and text swcli's API
// gives it (internal errors kept back, as writeErr does).
func swFail(w http.ResponseWriter, err error) {
	status, body := errAnswer(w, err)
	code := map[int]string{http.StatusUnauthorized: "accessDenied", http.StatusForbidden: "accessDenied",
		http.StatusInternalServerError: "internalServerError", http.StatusServiceUnavailable: "internalServerError"}[status]
	if code == "" {
		code = "validationException"
	}
	msg := body.Error
	if body.Hint != "" {
		msg += " (" + body.Hint + ")"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(swEnvelope{Code: code, Message: msg})
}

func (s *Server) swProject(h func(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		l, p, err := s.enterProject(r)
		if err != nil {
			swFail(w, err)
			return
		}
		h(w, r, l, p)
	}
}

// ms is a time as Starwhale sends it: milliseconds since the epoch.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func swUser(name string, admin bool) map[string]any {
	role := map[string]any{"id": "1", "roleName": "normal", "roleCode": "GUEST", "name": "normal", "code": "GUEST"}
	sys := "GUEST"
	if admin {
		role = map[string]any{"id": "0", "roleName": "admin", "roleCode": "OWNER", "name": "admin", "code": "OWNER"}
		sys = "OWNER"
	}
	return map[string]any{"id": name, "name": name, "createdTime": 0, "isEnabled": true, "systemRole": sys,
		"projectRoles": map[string]string{}, "role": role}
}

// swLogin is Starwhale's `instance login --username U --password P`: the password is one
// of the user's tokens (as git hosts take a token for a password), answered in the
// Authorization header as Starwhale's server answers.
func (s *Server) swLogin(w http.ResponseWriter, r *http.Request, auth *ops.Auth, byTok map[cas.Hash]string) string {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormField*4)
	if err := r.ParseForm(); err != nil {
		swFail(w, ops.Errorf(ops.KindUsage, "", "login: bad form: %v", err))
		return ""
	}
	user, tok := ops.NormalizeName(r.PostForm.Get("userName")), r.PostForm.Get("userPwd")
	name, ok := byTok[cas.Sum([]byte(tok))]
	if tok == "" || !ok || name != user {
		swFail(w, &ops.Error{Kind: ops.KindAuth, Err: errors.New("login: the server refused the user name or token"),
			Hint: "give your swcli token as the password, or log in with --token"})
		return ""
	}
	w.Header().Set("Authorization", tok)
	swOK(w, swUser(name, auth.Users[name].Admin))
	return name
}

func (s *Server) swCurrentUser(w http.ResponseWriter, r *http.Request) {
	u := who(r)
	swOK(w, swUser(u.name, u.admin))
}

// swPage is Starwhale's page (PageHelper's PageInfo) of list, the total before paging.
func swPage[T any](list []T, total, page, size int) map[string]any {
	if list == nil {
		list = []T{}
	}
	pages := 0
	if size > 0 {
		pages = (total + size - 1) / size
	}
	start := (page - 1) * size
	end := start + len(list)
	if len(list) > 0 {
		start++
	}
	prev, next := max(page-1, 0), 0
	if page < pages {
		next = page + 1
	}
	return map[string]any{"total": total, "list": list, "pageNum": page, "pageSize": size, "size": len(list),
		"startRow": start, "endRow": end, "pages": pages, "prePage": prev, "nextPage": next,
		"isFirstPage": page == 1, "isLastPage": page >= pages, "hasPreviousPage": page > 1, "hasNextPage": page < pages,
		"navigatePages": 8, "navigatepageNums": []int{}, "navigateFirstPage": min(1, pages), "navigateLastPage": pages}
}

// swPaging reads pageNum and pageSize (defaults 1 and 20, the size bounded).
func swPaging(r *http.Request) (page, size int) {
	q := r.URL.Query()
	page, _ = strconv.Atoi(q.Get("pageNum"))
	size, _ = strconv.Atoi(q.Get("pageSize"))
	if size <= 0 {
		size = 20
	}
	return max(page, 1), min(size, api.MaxPageSize)
}

func pageOf[T any](all []T, page, size int) []T {
	lo := min((page-1)*size, len(all))
	return all[lo:min(lo+size, len(all))]
}

func (s *Server) swProjectVO(name string, ap *ops.AuthProject) map[string]any {
	owner := "admin"
	if len(ap.Members) > 0 {
		owner = ap.Members[0]
	}
	runtimes := 0
	if rts, err := s.in.Ledger.Runtimes(name); err == nil {
		runtimes = len(rts)
	}
	return map[string]any{"id": strconv.Itoa(ap.ID), "name": name, "description": "", "privacy": "PRIVATE",
		"createdTime": ms(ap.Created), "owner": swUser(owner, false),
		"statistics": map[string]int{"modelCounts": 0, "datasetCounts": 0, "runtimeCounts": runtimes,
			"memberCounts": len(ap.Members), "evaluationCounts": 0}}
}

func (s *Server) swProjects(w http.ResponseWriter, r *http.Request) {
	u := who(r)
	auth, _, err := s.auth.Get(r.Context())
	if err != nil {
		swFail(w, err)
		return
	}
	var names []string
	for name := range auth.Projects {
		if u.mayRead(auth, name) && strings.Contains(name, r.URL.Query().Get("projectName")) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	page, size := swPaging(r)
	var list []map[string]any
	for _, name := range pageOf(names, page, size) {
		list = append(list, s.swProjectVO(name, auth.Projects[name]))
	}
	swOK(w, swPage(list, len(names), page, size))
}

// swAddProject is Starwhale's `project create`: for admins, as `swcli server project add`.
func (s *Server) swAddProject(w http.ResponseWriter, r *http.Request) {
	if !who(r).admin {
		swFail(w, &ops.Error{Kind: ops.KindForbidden, Err: errAdminOnly, Hint: "ask the server's admin to create the project"})
		return
	}
	var req struct {
		Name string `json:"projectName"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxJSONBody)).Decode(&req); err != nil {
		swFail(w, ops.Errorf(ops.KindUsage, "", "bad request body: %v", err))
		return
	}
	if err := ops.CreateServerProject(r.Context(), s.in.Auth, req.Name, nil); err != nil {
		swFail(w, err)
		return
	}
	auth, _, err := s.auth.Get(r.Context())
	if err != nil {
		swFail(w, err)
		return
	}
	name := ops.NormalizeName(req.Name)
	id := 0
	if ap := auth.Projects[name]; ap != nil {
		id = ap.ID
	}
	swOK(w, strconv.Itoa(id))
}

func (s *Server) swProjectInfo(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	auth, _, err := s.auth.Get(r.Context())
	if err != nil {
		swFail(w, err)
		return
	}
	ap := auth.Projects[p]
	if ap == nil { // an admin's project of the ledger that auth.json does not list
		ap = &ops.AuthProject{}
	}
	swOK(w, s.swProjectVO(p, ap))
}

func swVersionVO(v *ledger.Version, meta string) map[string]any {
	vo := map[string]any{"tags": formats.NonNil(v.Tags), "latest": v.Latest, "id": v.ID, "runtimeId": v.Runtime,
		"name": v.ID, "alias": fmt.Sprintf("v%d", v.VN), "image": "", "createdTime": ms(v.Created),
		"owner": swUser(v.Actor, false), "shared": false}
	if meta != "" {
		vo["meta"] = meta
	}
	if v.Origin != "" {
		vo["origin"] = v.Origin
	}
	return vo
}

// swRuntimes lists the project's runtimes, each with its latest version (runtimes with no
// live version are left out), by name; ?name= keeps those whose name starts with it.
func (s *Server) swRuntimes(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	rts, err := l.In.Ledger.Runtimes(p)
	if err != nil {
		swFail(w, ops.LedgerErr(err))
		return
	}
	prefix := ops.NormalizeName(r.URL.Query().Get("name"))
	var list []map[string]any
	for _, rt := range rts {
		if rt.Latest == "" || !strings.HasPrefix(rt.Name, prefix) {
			continue
		}
		v, err := l.In.Ledger.Resolve(p, rt.Name, "latest")
		if err != nil {
			continue // removed: not listed, as Starwhale lists only what is there
		}
		list = append(list, map[string]any{"id": rt.Name, "name": rt.Name, "createdTime": ms(rt.Created),
			"owner": swUser(v.Actor, false), "version": swVersionVO(v, "")})
	}
	page, size := swPaging(r)
	swOK(w, swPage(pageOf(list, page, size), len(list), page, size))
}

// swRef is the version a request names: {v} of its path, else ?versionName= or
// ?versionUrl=, else latest.
func swRef(r *http.Request) string {
	for _, ref := range []string{r.PathValue("v"), r.URL.Query().Get("versionName"), r.URL.Query().Get("versionUrl")} {
		if ref != "" {
			return strings.ToLower(ref)
		}
	}
	return "latest"
}

// swLive resolves the request's version and refuses one that is not live.
func (s *Server) swLive(r *http.Request, l ops.LocalEndpoint, p string) (*ledger.Version, error) {
	v, err := l.Resolve(r.Context(), p, ops.NormalizeName(r.PathValue("r")), swRef(r))
	if err != nil {
		return nil, err
	}
	if v.Status != ledger.StatusLive {
		return nil, ops.Errorf(ops.KindNotFound, "recover it first", "version %s of %s is %s", v.ID, v.Runtime, v.Status)
	}
	return v, nil
}

func (s *Server) swRuntimeInfo(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	v, err := s.swLive(r, l, p)
	if err != nil {
		swFail(w, err)
		return
	}
	m, err := cas.LoadManifest(r.Context(), l.In.Chunks, v.Manifest)
	if err != nil {
		swFail(w, err)
		return
	}
	mb, err := ops.ExportManifest(r.Context(), l.In, v, m)
	if err != nil {
		swFail(w, err)
		return
	}
	meta := string(mb)
	var tag any
	if len(v.Tags) > 0 {
		tag = strings.Join(v.Tags, ",")
	}
	swOK(w, map[string]any{"versionInfo": swVersionVO(v, meta), "id": v.Runtime, "name": v.Runtime,
		"versionId": v.ID, "versionName": v.ID, "versionAlias": fmt.Sprintf("v%d", v.VN), "versionTag": tag,
		"versionMeta": meta, "manifest": meta, "shared": false, "createdTime": ms(v.Created),
		"files": []map[string]string{{"name": v.ID + ".swrt", "size": strconv.FormatInt(v.Size, 10)}}})
}

// swVersions is a runtime's history: its live versions, newest first, a page of them.
func (s *Server) swVersions(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	page, size := swPaging(r)
	vs, total, err := l.Versions(r.Context(), p, ops.NormalizeName(r.PathValue("r")), ledger.ListOptions{Page: page, Size: size})
	if err != nil {
		swFail(w, err)
		return
	}
	list := make([]map[string]any, 0, len(vs))
	for _, v := range vs {
		vo := swVersionVO(v, "")
		vo["size"] = v.Size
		list = append(list, vo)
	}
	swOK(w, swPage(list, total, page, size))
}

// swVersion answers whether a version is there (Starwhale asks with HEAD before a copy).
func (s *Server) swVersion(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	v, err := s.swLive(r, l, p)
	if err != nil {
		swFail(w, err)
		return
	}
	swOK(w, swVersionVO(v, ""))
}

func (s *Server) swRemove(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	vs, err := l.Remove(r.Context(), p, ops.NormalizeName(r.PathValue("r")), "", false)
	if err != nil {
		swFail(w, err)
		return
	}
	swOK(w, fmt.Sprintf("%d versions removed", len(vs)))
}

func (s *Server) swRecover(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	vs, err := l.Recover(r.Context(), p, ops.NormalizeName(r.PathValue("r")), "")
	if err != nil {
		swFail(w, err)
		return
	}
	swOK(w, fmt.Sprintf("%d versions recovered", len(vs)))
}

func (s *Server) swTags(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	v, err := s.swLive(r, l, p)
	if err != nil {
		swFail(w, err)
		return
	}
	swOK(w, formats.NonNil(v.Tags))
}

func (s *Server) swAddTag(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	var req struct {
		Tag   string `json:"tag"`
		Force bool   `json:"force"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxJSONBody)).Decode(&req); err != nil {
		swFail(w, ops.Errorf(ops.KindUsage, "", "bad request body: %v", err))
		return
	}
	if _, err := l.Tag(r.Context(), p, ops.NormalizeName(r.PathValue("r")), swRef(r), []string{req.Tag}, false, false, req.Force); err != nil {
		swFail(w, err)
		return
	}
	swOK(w, "")
}

func (s *Server) swRemoveTag(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	if _, err := l.Tag(r.Context(), p, ops.NormalizeName(r.PathValue("r")), swRef(r), []string{r.PathValue("tag")}, true, false, false); err != nil {
		swFail(w, err)
		return
	}
	swOK(w, "")
}

// swDownload streams the version as a .swrt while it is made.
func (s *Server) swDownload(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	v, err := s.swLive(r, l, p)
	if err != nil {
		swFail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": v.ID + ".swrt"}))
	if _, err := ops.WriteSwrt(r.Context(), l.In, v, w); err != nil {
		// The status is sent: the cut stream is what the client sees (its tar is short).
		s.logf("download %s/%s/%s: %v", p, v.Runtime, v.ID, err)
		panic(http.ErrAbortHandler)
	}
}

// swUpload takes a .swrt as Starwhale's client sends it (multipart: the fields runtime
// "NAME:VERSION", project and force, then the file), streamed to a temporary file of the
// root within MaxUpload, then imports it as `swcli runtime import` does. A malformed body
// or bundle stores nothing.
func (s *Server) swUpload(w http.ResponseWriter, r *http.Request, l ops.LocalEndpoint, p string) {
	name := ops.NormalizeName(r.PathValue("r"))
	select {
	case s.swUploads <- struct{}{}:
		defer func() { <-s.swUploads }()
	case <-r.Context().Done():
		return
	}
	limit := s.MaxUpload
	if limit <= 0 {
		limit = DefaultMaxUpload
	}
	if r.ContentLength > limit+1<<20 {
		swFail(w, ops.Errorf(ops.KindTooLarge, "", "upload of %d bytes: this server takes %d at most", r.ContentLength, limit))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		swFail(w, ops.Errorf(ops.KindUsage, "send the bundle as multipart/form-data", "upload: %v", err))
		return
	}
	tmp, err := ops.NewWorkTemp(l.In.Root, "upload")
	if err != nil {
		swFail(w, err)
		return
	}
	defer tmp.Remove()
	file := filepath.Join(tmp.Dir, "bundle.swrt")
	got := false
	label := "upload.swrt"
	fields := map[string]string{}
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			swFail(w, uploadErr(err, limit))
			return
		}
		if n >= maxFormParts {
			swFail(w, ops.Errorf(ops.KindUsage, "", "upload: more than %d parts", maxFormParts))
			return
		}
		if part.FormName() == "file" {
			if got {
				swFail(w, ops.Errorf(ops.KindUsage, "", "upload: two files"))
				return
			}
			got = true
			if fn := filepath.Base(part.FileName()); ops.CheckText(fn) == nil && fn != "." && fn != "/" && len(fn) <= 128 {
				label = fn
			}
			if err := saveUpload(part, file, limit); err != nil {
				swFail(w, err)
				return
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
		if err != nil {
			swFail(w, uploadErr(err, limit))
			return
		}
		if len(b) > maxFormField {
			swFail(w, ops.Errorf(ops.KindTooLarge, "", "upload: field %q is over %d bytes", ops.Truncate(part.FormName()), maxFormField))
			return
		}
		fields[part.FormName()] = string(b)
	}
	if !got {
		swFail(w, ops.Errorf(ops.KindUsage, "send the bundle in a part named file", "upload: no file part"))
		return
	}
	if rt, _, ok := strings.Cut(fields["runtime"], ":"); ok && ops.NormalizeName(rt) != name {
		swFail(w, ops.Errorf(ops.KindUsage, "", "upload: the form names runtime %q, the path %q", ops.Truncate(rt), name))
		return
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	res, err := ops.ImportSwrt(r.Context(), l.In, ops.ImportRequest{File: file, Project: p, Runtime: name, Label: label})
	if err != nil {
		swFail(w, err)
		return
	}
	swOK(w, map[string]any{"version": res.Version, "origin": res.Origin, "new": res.New, "files": res.Files,
		"size": res.Size, "newBytes": res.NewBytes})
}

// saveUpload writes the file part to path, refusing more than limit bytes; an error of
// reading the body is the client's (uploadErr), one of writing the server's.
func saveUpload(part io.Reader, path string, limit int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, readErrs{io.LimitReader(part, limit+1)})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var re *ops.ReadErr
	if errors.As(err, &re) {
		return uploadErr(re.Err, limit)
	}
	if err == nil && n > limit {
		err = ops.Errorf(ops.KindTooLarge, "", "upload: the bundle is over %d bytes, this server's limit", limit)
	}
	return err
}

// readErrs marks the errors of reading r, to tell them from those of writing.
type readErrs struct{ r io.Reader }

func (x readErrs) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	if err != nil && err != io.EOF {
		err = &ops.ReadErr{Err: err}
	}
	return n, err
}

// uploadErr says what was wrong with an upload's body.
func uploadErr(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return ops.Errorf(ops.KindTooLarge, "", "upload: the body is over this server's limit (%d bytes)", limit)
	}
	return ops.Errorf(ops.KindUsage, "", "upload: malformed multipart body: %v", err)
}
