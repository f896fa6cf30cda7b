package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/server"
)

// Page sizes.
const (
	DefaultPageSize = 50
	MaxPageSize     = 10000
	historyPage     = 100
	maxShownFile    = 1 << 20 // a file's text is shown up to this size
	maxCompareRows  = 2000    // rows of one kind in a comparison
)

func (c *Console) routes() {
	m := c.mux
	static, _ := fs.Sub(files, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/projects", http.StatusSeeOther) })
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("POST /login", c.loginPage)
	m.HandleFunc("POST /logout", c.auth(c.logout))
	m.HandleFunc("GET /projects", c.auth(c.projects))
	m.HandleFunc("GET /projects/{p}", c.auth(func(q *req) error { return redirect(q, "/runtimes") }))
	m.HandleFunc("GET /projects/{p}/runtimes", c.auth(c.runtimes))
	m.HandleFunc("GET /projects/{p}/history", c.auth(c.history))
	m.HandleFunc("GET /projects/{p}/runtimes/{r}", c.auth(func(q *req) error { return redirect(q, "/versions") }))
	m.HandleFunc("GET /projects/{p}/runtimes/{r}/versions", c.auth(c.versions))
	m.HandleFunc("GET /projects/{p}/runtimes/{r}/history", c.auth(c.history))
	m.HandleFunc("GET /projects/{p}/runtimes/{r}/compare", c.auth(c.compare))
	m.HandleFunc("GET /projects/{p}/runtimes/{r}/versions/{v}", c.auth(func(q *req) error { return redirect(q, "/overview") }))
	m.HandleFunc("GET /projects/{p}/runtimes/{r}/versions/{v}/overview", c.auth(c.overview))
	m.HandleFunc("GET /projects/{p}/runtimes/{r}/versions/{v}/files", c.auth(c.tree))
	m.HandleFunc("GET /projects/{p}/runtimes/{r}/versions/{v}/file", c.auth(c.file))
	m.HandleFunc("GET /projects/{p}/runtimes/{r}/versions/{v}/download", c.auth(c.download))
	m.HandleFunc("GET /projects/{p}/runtimes/{r}/versions/{v}/remove", c.auth(c.confirmRemove))
	m.HandleFunc("POST /projects/{p}/runtimes/{r}/versions/{v}/tag", c.auth(c.tag))
	m.HandleFunc("POST /projects/{p}/runtimes/{r}/versions/{v}/remove", c.auth(c.remove))
	m.HandleFunc("POST /projects/{p}/runtimes/{r}/versions/{v}/recover", c.auth(c.recoverVersion))
	m.HandleFunc("GET /ledger", c.auth(c.ledgerPage))
	m.HandleFunc("GET /ledger/proof/{seq}", c.auth(c.proof))
	m.HandleFunc("GET /admin", c.auth(c.admin))
	m.HandleFunc("POST /admin/users", c.auth(c.adminAddUser))
	m.HandleFunc("POST /admin/users/{u}/token", c.auth(c.adminToken))
	m.HandleFunc("POST /admin/users/{u}/revoke", c.auth(c.adminRevoke))
	m.HandleFunc("POST /admin/projects", c.auth(c.adminAddProject))
	m.HandleFunc("POST /admin/projects/{p}/members", c.auth(c.adminMembers))
	m.HandleFunc("/", c.auth(func(q *req) error { return errNotFound }))
}

func redirect(q *req, suffix string) error {
	http.Redirect(q.w, q.Request, strings.TrimSuffix(q.URL.Path, "/")+suffix, http.StatusSeeOther)
	return nil
}

var funcs = template.FuncMap{
	"bytes": humanBytes,
	"when":  when,
	"short": func(s string) string { return s[:min(12, len(s))] },
	"join":  strings.Join,
	"pct": func(a, b int64) string {
		if b <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(b))
	},
	"esc":  url.PathEscape,
	"qesc": url.QueryEscape,
}

func humanBytes(n int64) string { return server.HumanBytes(n) }

// project enters the project of the path for the user (name or number; not theirs: 404).
func (c *Console) project(q *req) (ops.LocalEndpoint, string, error) {
	l, p, err := c.srv.Enter(q.ctx(), q.user, q.PathValue("p"))
	if err != nil {
		if server.HTTPStatus(err) == http.StatusForbidden {
			return l, "", errNotFound
		}
		return l, "", err
	}
	if _, err := c.in.Ledger.Project(p); err != nil {
		return l, "", errNotFound
	}
	return l, p, nil
}

func projectCrumbs(p string) []crumb {
	return []crumb{{"Projects", "/projects"}, {p, "/projects/" + url.PathEscape(p) + "/runtimes"}}
}

func runtimeCrumbs(p, r string) []crumb {
	return append(projectCrumbs(p), crumb{r, runtimeURL(p, r) + "/versions"})
}

func runtimeURL(p, r string) string {
	return "/projects/" + url.PathEscape(p) + "/runtimes/" + url.PathEscape(r)
}

func versionURL(p, r, v string) string { return runtimeURL(p, r) + "/versions/" + url.PathEscape(v) }

type projectRow struct {
	Name     string
	ID       int
	Members  []string
	Runtimes int
	Created  time.Time
}

func (c *Console) projects(q *req) error {
	ps, err := c.srv.ProjectsFor(q.ctx(), q.user)
	if err != nil {
		return err
	}
	rows := make([]projectRow, 0, len(ps))
	for _, p := range ps {
		row := projectRow{Name: p.Name, ID: p.ID, Members: p.Members, Created: p.Created}
		if rts, err := c.in.Ledger.Runtimes(p.Name); err == nil {
			row.Runtimes = len(rts)
		}
		rows = append(rows, row)
	}
	return c.render(q, "projects", "Projects", []crumb{{"Projects", "/projects"}}, rows)
}

type runtimeRow struct {
	Name, Mode string
	Versions   int
	Latest     *api.VersionDTO
	Created    time.Time
}

func (c *Console) runtimes(q *req) error {
	l, p, err := c.project(q)
	if err != nil {
		return err
	}
	rts, err := c.in.Ledger.Runtimes(p)
	if err != nil {
		return err
	}
	rows := make([]runtimeRow, 0, len(rts))
	for _, rt := range rts {
		vs, total, err := l.Versions(q.ctx(), p, rt.Name, ledger.ListOptions{Page: 1, Size: 1})
		if err != nil {
			return err
		}
		row := runtimeRow{Name: rt.Name, Mode: rt.Mode, Versions: total, Created: rt.Created}
		if len(vs) > 0 {
			d := api.DTO(vs[0])
			row.Latest = &d
		}
		rows = append(rows, row)
	}
	return c.render(q, "runtimes", p+" · runtimes", projectCrumbs(p), map[string]any{"Project": p, "Runtimes": rows})
}

// versionRow is a version in a table, with the commands that use it.
type versionRow struct {
	api.VersionDTO
	Href string
	Copy string // the command that copies it to the reader's own instance
	// Shown as text, made here: a template's function calls cost more than the page.
	Short, TagList, SizeText, NewText, CreatedText string
	Removed                                        bool
	Overview                                       template.URL
}

func newVersionRow(d api.VersionDTO) versionRow {
	return versionRow{VersionDTO: d, Short: d.Version[:min(12, len(d.Version))], TagList: strings.Join(d.Tags, ", "),
		SizeText: humanBytes(d.Size), NewText: humanBytes(d.NewBytes), CreatedText: when(d.Created), Removed: d.Status == "removed"}
}

func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func (c *Console) commands(q *req, p, r, v string) []string {
	scheme := "http"
	if secure(q.Request) {
		scheme = "https"
	}
	uri := fmt.Sprintf("%s://%s/project/%s/runtime/%s/version/%s", scheme, q.Host, p, r, v)
	local := fmt.Sprintf("%s/version/%s", r, v)
	return []string{
		"swcli runtime copy " + uri + " local/project/self",
		"swcli runtime run " + local + " -- python -V",
		"swcli runtime extract " + local + " --target-dir " + r + "-" + v[:min(12, len(v))],
	}
}

// pageArgs reads page, size (default and bound) and the filter.
func pageArgs(q *req) (page, size int, filter string) {
	page, _ = strconv.Atoi(q.URL.Query().Get("page"))
	size, _ = strconv.Atoi(q.URL.Query().Get("size"))
	if size <= 0 {
		size = DefaultPageSize
	}
	return max(page, 1), min(size, MaxPageSize), strings.TrimSpace(q.URL.Query().Get("q"))
}

// matches says whether a version answers to a filter: a prefix of its id or origin, one
// of its tags, its python, mode, actor or status.
func matches(v *api.VersionDTO, f string) bool {
	if f == "" {
		return true
	}
	f = strings.ToLower(f)
	if strings.HasPrefix(v.Version, f) || (v.Origin != "" && strings.HasPrefix(v.Origin, f)) ||
		strings.Contains(strings.ToLower(v.Actor), f) || v.Python == f || strings.HasPrefix(v.Python, f+".") ||
		v.Mode == f || v.Status == f {
		return true
	}
	return slices.Contains(v.Tags, f)
}

func (c *Console) versions(q *req) error {
	l, p, err := c.project(q)
	if err != nil {
		return err
	}
	r := q.PathValue("r")
	page, size, filter := pageArgs(q)
	removed := q.URL.Query().Get("removed") == "1"
	opt := ledger.ListOptions{ShowRemoved: removed, Page: page, Size: size}
	if filter != "" {
		opt.Page, opt.Size = 0, 0
	}
	vs, total, err := l.Versions(q.ctx(), p, r, opt)
	if err != nil {
		return err
	}
	rows := make([]versionRow, 0, min(len(vs), size))
	if filter != "" { // filter every version, then page
		total = 0
		for _, v := range vs {
			d := api.DTO(v)
			if !matches(&d, filter) {
				continue
			}
			total++
			if total > (page-1)*size && total <= page*size {
				rows = append(rows, newVersionRow(d))
			}
		}
	} else {
		for _, v := range vs {
			rows = append(rows, newVersionRow(api.DTO(v)))
		}
	}
	for i := range rows {
		rows[i].Href = versionURL(p, r, rows[i].Version)
		rows[i].Overview = template.URL(rows[i].Href + "/overview")
		rows[i].Copy = c.commands(q, p, r, rows[i].Version)[0]
	}
	pages := max((total+size-1)/size, 1)
	rowsHTML := versionRowsHTML(rows)
	link := func(n int) string {
		v := url.Values{"page": {strconv.Itoa(n)}}
		if size != DefaultPageSize {
			v.Set("size", strconv.Itoa(size))
		}
		if filter != "" {
			v.Set("q", filter)
		}
		if removed {
			v.Set("removed", "1")
		}
		return "?" + v.Encode()
	}
	data := map[string]any{"Project": p, "Runtime": r, "RowsHTML": rowsHTML, "Total": total, "Page": page, "Pages": pages,
		"Filter": filter, "Removed": removed, "Size": size}
	if page > 1 {
		data["Prev"] = link(page - 1)
	}
	if page < pages {
		data["Next"] = link(page + 1)
	}
	data["Base"] = runtimeURL(p, r)
	return c.render(q, "versions", r+" · versions", runtimeCrumbs(p, r), data)
}

// info resolves the version of the path and reads its manifest and small files.
func (c *Console) info(q *req) (string, string, *api.Info, error) {
	_, p, err := c.project(q)
	if err != nil {
		return "", "", nil, err
	}
	r := q.PathValue("r")
	v, err := server.ResolveAny(c.in, p, r, q.PathValue("v"))
	if err != nil {
		return p, r, nil, err
	}
	info, err := ops.InfoOf(q.ctx(), c.in, v)
	return p, r, info, err
}

func (c *Console) overview(q *req) error {
	p, r, info, err := c.info(q)
	if err != nil {
		return err
	}
	v := info.Version
	manifest, err := ops.ExportManifest(q.ctx(), c.in, v, info.Manifest)
	if err != nil {
		manifest = []byte("(unreadable: " + err.Error() + ")")
	}
	d := api.DTO(v)
	data := map[string]any{"Project": p, "Runtime": r, "V": d, "Info": info, "Totals": info.Totals,
		"Manifest": string(manifest), "Base": versionURL(p, r, v.ID), "Commands": c.commands(q, p, r, v.ID),
		"Removed": v.Status == ledger.StatusRemoved, "RuntimeBase": runtimeURL(p, r)}
	return c.render(q, "overview", r+" · "+v.ID[:12], append(runtimeCrumbs(p, r), crumb{v.ID[:12], ""}), data)
}

type treeRow struct {
	Name, Path, Kind, Target string
	Href                     template.URL // the page of the entry (made here: faster than in the template)
	SizeText                 string
	Size                     int64
	Files                    int
	Mode                     string
}

// tree lists one directory of a version: lazy by construction, so that a tree of any size
// costs one pass over its manifest and a page as long as the directory.
func (c *Console) tree(q *req) error {
	p, r, info, err := c.info(q)
	if err != nil {
		return err
	}
	dir := strings.Trim(q.URL.Query().Get("dir"), "/")
	rows, found := listDir(info.Manifest, dir)
	if !found {
		return errNotFound
	}
	base := versionURL(p, r, info.Version.ID)
	var parts []crumb
	if dir != "" {
		acc := ""
		for _, s := range strings.Split(dir, "/") {
			acc = path.Join(acc, s)
			parts = append(parts, crumb{s, base + "/files?dir=" + url.QueryEscape(acc)})
		}
	}
	for i := range rows {
		rows[i].SizeText = humanBytes(rows[i].Size)
		switch rows[i].Kind {
		case "dir":
			rows[i].Href = template.URL(base + "/files?dir=" + url.QueryEscape(rows[i].Path))
		case "file":
			rows[i].Href = template.URL(base + "/file?path=" + url.QueryEscape(rows[i].Path))
		}
	}
	data := map[string]any{"Project": p, "Runtime": r, "V": api.DTO(info.Version), "Dir": dir, "RowsHTML": treeRowsHTML(rows),
		"Parts": parts, "Base": base, "Totals": info.Totals}
	return c.render(q, "files", r+" · files", append(runtimeCrumbs(p, r), crumb{info.Version.ID[:12], base + "/overview"}, crumb{"files", ""}), data)
}

// listDir returns the entries directly in dir (directories first, each with the size
// and file count beneath it) and whether dir is a directory of the manifest.
func listDir(m *cas.Manifest, dir string) ([]treeRow, bool) {
	prefix := ""
	found := dir == ""
	if dir != "" {
		prefix = dir + "/"
	}
	idx := map[string]int{}
	var rows []treeRow
	for _, e := range m.Entries {
		if e.Path == dir && e.Kind == cas.KindDir {
			found = true
			continue
		}
		if !strings.HasPrefix(e.Path, prefix) {
			continue
		}
		rest := e.Path[len(prefix):]
		name, _, deeper := strings.Cut(rest, "/")
		if !deeper {
			row := treeRow{Name: name, Path: e.Path, Kind: e.Kind.String(), Size: e.Size, Target: e.Target,
				Mode: fmt.Sprintf("%04o", e.Mode&0o7777)}
			if e.Kind == cas.KindDir {
				if i, ok := idx[name]; ok {
					rows[i].Mode = row.Mode
					continue
				}
				idx[name] = len(rows)
			}
			rows = append(rows, row)
			continue
		}
		i, ok := idx[name]
		if !ok {
			i = len(rows)
			idx[name] = i
			rows = append(rows, treeRow{Name: name, Path: prefix + name, Kind: "dir"})
		}
		if e.Kind == cas.KindFile {
			rows[i].Size += e.Size
			rows[i].Files++
		}
	}
	slices.SortStableFunc(rows, func(a, b treeRow) int {
		if (a.Kind == "dir") != (b.Kind == "dir") {
			if a.Kind == "dir" {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return rows, found
}

func findEntry(m *cas.Manifest, p string) (cas.Entry, bool) {
	i, ok := slices.BinarySearchFunc(m.Entries, p, func(e cas.Entry, p string) int { return strings.Compare(e.Path, p) })
	if !ok {
		return cas.Entry{}, false
	}
	return m.Entries[i], true
}

// isText says whether b is shown as text: UTF-8 without NULs.
func isText(b []byte) bool { return utf8.Valid(b) && !slices.Contains(b, 0) }

func (c *Console) file(q *req) error {
	p, r, info, err := c.info(q)
	if err != nil {
		return err
	}
	fp := strings.Trim(q.URL.Query().Get("path"), "/")
	e, ok := findEntry(info.Manifest, fp)
	if !ok || e.Kind == cas.KindDir {
		return errNotFound
	}
	base := versionURL(p, r, info.Version.ID)
	if q.URL.Query().Get("raw") == "1" && e.Kind == cas.KindFile {
		q.w.Header().Set("Content-Type", "application/octet-stream")
		q.w.Header().Set("Content-Disposition", "attachment; filename="+strconv.Quote(path.Base(fp)))
		q.w.Header().Set("Content-Length", strconv.FormatInt(e.Size, 10))
		for _, h := range e.Chunks {
			b, err := c.in.Chunks.Get(q.ctx(), h)
			if err != nil {
				panic(http.ErrAbortHandler) // a cut download, never a wrong one
			}
			if _, err := q.w.Write(b); err != nil {
				return nil
			}
		}
		return nil
	}
	data := map[string]any{"Project": p, "Runtime": r, "Path": fp, "E": e, "Kind": e.Kind.String(),
		"Mode": fmt.Sprintf("%04o", e.Mode&0o7777), "Base": base, "Dir": path.Dir(fp)}
	if e.Kind == cas.KindFile {
		if e.Size <= maxShownFile {
			b, err := server.ReadVersionFile(q.ctx(), c.in, e, maxShownFile)
			if err != nil {
				return err
			}
			if isText(b) {
				data["Text"] = string(b)
			} else {
				data["Note"] = "binary content: download it to look at it"
			}
		} else {
			data["Note"] = fmt.Sprintf("%s: larger than the %s shown here; download it to look at it", humanBytes(e.Size), humanBytes(maxShownFile))
		}
	}
	if data["Dir"] == "." {
		data["Dir"] = ""
	}
	return c.render(q, "file", path.Base(fp), append(runtimeCrumbs(p, r), crumb{info.Version.ID[:12], base + "/overview"},
		crumb{"files", base + "/files"}, crumb{fp, ""}), data)
}

func (c *Console) download(q *req) error {
	_, r, info, err := c.info(q)
	if err != nil {
		return err
	}
	q.w.Header().Set("Content-Type", "application/x-tar")
	q.w.Header().Set("Content-Disposition", "attachment; filename="+strconv.Quote(r+"-"+info.Version.ID[:12]+".swrt"))
	if _, err := ops.WriteSwrt(q.ctx(), c.in, info.Version, q.w); err != nil {
		panic(http.ErrAbortHandler) // headers are gone: cut the stream so that it is not taken whole
	}
	return nil
}

// Changes from the page: each is what the CLI does, a ledger event with the user as actor.

func (c *Console) tag(q *req) error {
	l, p, err := c.project(q)
	if err != nil {
		return err
	}
	r, v := q.PathValue("r"), q.PathValue("v")
	tag := strings.TrimSpace(q.PostForm.Get("tag"))
	remove := q.PostForm.Get("action") == "remove"
	if tag == "" {
		return ops.Errorf(ops.KindUsage, "", "give a tag")
	}
	if _, err := l.Tag(q.ctx(), p, r, v, []string{tag}, remove, false, q.PostForm.Get("force") == "1"); err != nil {
		return err
	}
	done := "tagged " + tag
	if remove {
		done = "removed tag " + tag
	}
	return back(q, versionURL(p, r, v)+"/overview", done)
}

func (c *Console) confirmRemove(q *req) error {
	p, r, info, err := c.info(q)
	if err != nil {
		return err
	}
	return c.render(q, "confirm", "Remove "+info.Version.ID[:12], runtimeCrumbs(p, r),
		map[string]any{"V": api.DTO(info.Version), "Base": versionURL(p, r, info.Version.ID)})
}

func (c *Console) remove(q *req) error {
	l, p, err := c.project(q)
	if err != nil {
		return err
	}
	r, v := q.PathValue("r"), q.PathValue("v")
	if q.PostForm.Get("confirm") != "yes" {
		return ops.Errorf(ops.KindUsage, "confirm on the page that asks", "removal not confirmed")
	}
	vs, err := l.Remove(q.ctx(), p, r, v, false)
	if err != nil {
		return err
	}
	return back(q, versionURL(p, r, vs[0].ID)+"/overview", "removed (recoverable)")
}

func (c *Console) recoverVersion(q *req) error {
	l, p, err := c.project(q)
	if err != nil {
		return err
	}
	r, v := q.PathValue("r"), q.PathValue("v")
	vs, err := l.Recover(q.ctx(), p, r, v)
	if err != nil {
		return err
	}
	return back(q, versionURL(p, r, vs[0].ID)+"/overview", "recovered")
}

var errPageDone = errors.New("page done")

// eventRow is an event in a history table.
type eventRow struct {
	Seq                    uint64
	Time                   time.Time
	Actor, Type, Data      string
	Project, Runtime, Ver  string
	Hash                   string
	VersionHref, ProofHref string
}

func (c *Console) history(q *req) error {
	_, p, err := c.project(q)
	if err != nil {
		return err
	}
	r := q.PathValue("r")
	if r != "" {
		if _, err := c.in.Ledger.Runtime(p, r); err != nil {
			return errNotFound
		}
	}
	page, _, _ := pageArgs(q)
	// Two passes, so that a request holds one page of events whatever the history's
	// length: count, then keep the page's (newest first).
	f := ledger.Filter{Project: p, Runtime: r}
	total := 0
	if err := c.in.Ledger.Log(q.ctx(), f, func(ledger.Event) error { total++; return nil }); err != nil {
		return err
	}
	pages := max((total+historyPage-1)/historyPage, 1)
	page = min(page, pages)
	hi := total - (page-1)*historyPage // events [lo, hi) in log order
	lo := max(hi-historyPage, 0)
	rows := make([]eventRow, 0, hi-lo)
	i := 0
	if err := c.in.Ledger.Log(q.ctx(), f, func(e ledger.Event) error {
		if i >= lo && i < hi {
			rows = append(rows, c.eventRow(&e))
		}
		i++
		if i >= hi {
			return errPageDone
		}
		return nil
	}); err != nil && !errors.Is(err, errPageDone) {
		return err
	}
	slices.Reverse(rows)
	data := map[string]any{"Project": p, "Runtime": r, "Rows": rows, "Total": total, "Page": page, "Pages": pages}
	if page > 1 {
		data["Prev"] = "?page=" + strconv.Itoa(page-1)
	}
	if page < pages {
		data["Next"] = "?page=" + strconv.Itoa(page+1)
	}
	c.ledgerState(q, data)
	crumbs := append(projectCrumbs(p), crumb{"history", ""})
	title := p + " · history"
	if r != "" {
		crumbs = append(runtimeCrumbs(p, r), crumb{"history", ""})
		title = r + " · history"
	}
	return c.render(q, "history", title, crumbs, data)
}

func (c *Console) eventRow(e *ledger.Event) eventRow {
	row := eventRow{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Type: string(e.Type), Project: e.Project,
		Runtime: e.Runtime, Ver: e.Version, Hash: e.Hash.String(), ProofHref: "/ledger/proof/" + strconv.FormatUint(e.Seq, 10)}
	if d := string(e.Data); d != "{}" && d != "null" {
		row.Data = d[:min(len(d), 160)]
	}
	if e.Version != "" && e.Runtime != "" {
		row.VersionHref = versionURL(e.Project, e.Runtime, e.Version) + "/overview"
	}
	return row
}

// ledgerState adds the signed checkpoint and, when asked (?verify=1), a verification of
// the whole chain to a page's data.
func (c *Console) ledgerState(q *req, data map[string]any) {
	if note, key, err := ops.CheckpointAndKey(q.ctx(), c.in); err == nil {
		data["Checkpoint"], data["Key"] = string(note), key
	} else {
		_, text, _ := server.ErrorAnswer(q.w, err)
		data["CheckpointError"] = text
	}
	if q.URL.Query().Get("verify") != "1" {
		return
	}
	if !c.verifyMu.TryLock() {
		data["VerifyBusy"] = true
		return
	}
	defer c.verifyMu.Unlock()
	rep, err := ops.VerifyLedger(q.ctx(), c.in)
	if err != nil {
		_, text, _ := server.ErrorAnswer(q.w, err)
		data["VerifyError"] = text
		return
	}
	type problem struct {
		Seq    uint64
		Detail string
	}
	var ps []problem
	for _, pr := range rep.Problems {
		d := pr.Detail
		if !q.user.Admin { // what went wrong elsewhere is for admins; where is for everyone
			d = "the event's hash or the chain does not check"
		}
		ps = append(ps, problem{pr.Seq, d})
	}
	data["Verified"] = map[string]any{"Events": rep.Events, "Head": rep.Head, "HeadHash": rep.HeadHash.String(), "Problems": ps}
}

func (c *Console) ledgerPage(q *req) error {
	data := map[string]any{}
	c.ledgerState(q, data)
	return c.render(q, "ledger", "Ledger", []crumb{{"Ledger", ""}}, data)
}

// proof serves what 'swcli ledger prove SEQ' prints, for an event of a project the user
// may read: scripts/verify-ledger-proof.py checks it offline.
func (c *Console) proof(q *req) error {
	seq, err := strconv.ParseUint(q.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		return errNotFound
	}
	e, err := c.in.Ledger.Event(seq)
	if err != nil {
		return errNotFound
	}
	if e.Project != "" && !q.user.Admin {
		ok, err := c.srv.MayRead(q.ctx(), q.user, e.Project)
		if err != nil {
			return err
		}
		if !ok {
			return errNotFound
		}
	}
	proof, err := ops.ProveLedger(q.ctx(), c.in, seq, 0)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(proof, "", "  ")
	if err != nil {
		return err
	}
	q.w.Header().Set("Content-Type", "application/json")
	q.w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=\"proof-%d.json\"", seq))
	q.w.Write(append(b, '\n'))
	return nil
}
