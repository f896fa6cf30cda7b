// Package console is swcli server's web console: pages rendered on the server from Go
// templates embedded in the binary, at Starwhale's console paths
// (/projects/P/runtimes/R/versions/V/overview is the link Starwhale's client prints after a
// copy), with the API's users, tokens and access rules.
//
// A session is a random cookie naming a session held in the server's memory (the token
// never leaves the sign-in form): HttpOnly, SameSite=Strict, Secure behind TLS. Every
// change is a form POST that carries the session's CSRF token and comes from the console's
// own origin. A project that is not the user's is a 404, as one that does not exist.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/server"
)

//go:embed templates/*.html static/*
var files embed.FS

// Session limits.
const (
	SessionTTL  = 12 * time.Hour
	MaxSessions = 10000
	cookieName  = "swcli_session"
)

// Console serves the pages of one server.
type Console struct {
	srv      *server.Server
	in       *ops.Instance
	pages    map[string]*template.Template
	mux      *http.ServeMux
	mu       sync.Mutex
	sessions map[string]*session
	verifyMu sync.Mutex // one ledger verification at a time
	now      func() time.Time
}

type session struct {
	token   string // the token it was opened with: checked again on every request
	csrf    string
	expires time.Time
}

// New returns the console of srv; serve it as srv.Pages.
func New(srv *server.Server) *Console {
	c := &Console{srv: srv, in: srv.Instance(), sessions: map[string]*session{}, now: time.Now}
	c.pages = parsePages()
	c.mux = http.NewServeMux()
	c.routes()
	return c
}

func parsePages() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html"))
	out := map[string]*template.Template{}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		out[name] = template.Must(template.Must(layout.Clone()).ParseFS(files, n))
	}
	return out
}

// ServeHTTP serves a page, with headers that keep it from being framed, sniffed, cached
// or fed scripts from elsewhere.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	c.mux.ServeHTTP(w, r)
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// open starts a session for tok (already checked) and sets its cookie.
func (c *Console) open(w http.ResponseWriter, r *http.Request, tok string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.sessions) >= MaxSessions {
		for id, s := range c.sessions {
			if now.After(s.expires) {
				delete(c.sessions, id)
			}
		}
		if len(c.sessions) >= MaxSessions {
			return ops.Errorf(ops.KindBusy, "try again later", "the server has %d sessions open, its most", MaxSessions)
		}
	}
	id := randomString(32)
	c.sessions[id] = &session{token: tok, csrf: randomString(32), expires: now.Add(SessionTTL)}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secure(r), MaxAge: int(SessionTTL / time.Second)})
	return nil
}

func secure(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

// current returns the session of r's cookie, if it is one the server opened and has not
// ended, and the user its token stands for now.
func (c *Console) current(r *http.Request) (string, *session, server.User, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return "", nil, server.User{}, false
	}
	c.mu.Lock()
	s := c.sessions[ck.Value]
	if s != nil && c.now().After(s.expires) {
		delete(c.sessions, ck.Value)
		s = nil
	}
	c.mu.Unlock()
	if s == nil {
		return "", nil, server.User{}, false
	}
	u, err := c.srv.UserByToken(r.Context(), s.token)
	if err != nil { // revoked since: the session ends with it
		c.end(ck.Value)
		return "", nil, server.User{}, false
	}
	return ck.Value, s, u, true
}

func (c *Console) end(id string) {
	c.mu.Lock()
	delete(c.sessions, id)
	c.mu.Unlock()
}

// sameOrigin says whether a POST comes from the console's own pages: browsers send
// Sec-Fetch-Site or Origin on every POST; a request with neither (not a browser) must
// still carry the CSRF token.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// req is what a page handler gets: the request, the user, the session's CSRF token.
type req struct {
	*http.Request
	w    http.ResponseWriter
	user server.User
	csrf string
	sid  string
}

type handler func(q *req) error

// errNotFound is the console's answer to what does not exist or is not the user's.
var errNotFound = errors.New("not found")

// auth wraps pages that need a signed-in user. A GET without a session goes to the
// sign-in page (and back after it); a POST must carry the session's CSRF token and come
// from the console's origin, or it is refused before anything changes.
func (c *Console) auth(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		sid, s, u, ok := c.current(r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.fail(w, r, server.User{}, http.StatusForbidden, "sign in first: the session is unknown or has ended", "")
			return
		}
		server.SetLogUser(w, u.Name)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil {
				c.fail(w, r, u, http.StatusBadRequest, "the form could not be read: "+err.Error(), "")
				return
			}
			if !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
				c.fail(w, r, u, http.StatusForbidden, "refused: the form did not come from this console (CSRF check failed)", "reload the page and try again")
				return
			}
		}
		q := &req{Request: r, w: w, user: u, csrf: s.csrf, sid: sid}
		if err := h(q); err != nil {
			c.failErr(q, err)
		}
	}
}

// failErr answers an error as a page: not found and not the user's alike as 404, others
// as the API would.
func (c *Console) failErr(q *req, err error) {
	if errors.Is(err, errNotFound) {
		c.fail(q.w, q.Request, q.user, http.StatusNotFound, "not found: no such page, or not one of your projects'", "")
		return
	}
	status, text, hint := server.ErrorAnswer(q.w, err)
	if status == http.StatusForbidden || status == http.StatusNotFound {
		if !strings.Contains(text, "not found") {
			text = "not found: " + text
		}
		c.fail(q.w, q.Request, q.user, http.StatusNotFound, text, hint)
		return
	}
	c.fail(q.w, q.Request, q.user, status, text, hint)
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, u server.User, status int, text, hint string) {
	d := &page{Title: http.StatusText(status), User: u, Instance: c.in.Name,
		Data: map[string]any{"Status": status, "Text": text, "Hint": hint}}
	if err := c.write(w, "error", status, d); err != nil {
		http.Error(w, text, status)
	}
}

// write renders a page whole into memory first, so that a template's error is a clean
// error page and not half a page, then sends it with status.
func (c *Console) write(w http.ResponseWriter, name string, status int, d *page) error {
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, d); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// page is what every template gets.
type page struct {
	Title    string
	User     server.User
	CSRF     string
	Instance string
	Crumbs   []crumb
	Flash    string
	Data     any
}

type crumb struct{ Name, Href string }

// render writes a page of a signed-in user.
func (c *Console) render(q *req, name, title string, crumbs []crumb, data any) error {
	return c.write(q.w, name, http.StatusOK, &page{Title: title, User: q.user, CSRF: q.csrf, Instance: c.in.Name,
		Crumbs: crumbs, Data: data, Flash: q.URL.Query().Get("done")})
}

// back sends the browser to a page after a change (Post/Redirect/Get), with a message.
func back(q *req, to, done string) error {
	if done != "" {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		to += sep + "done=" + url.QueryEscape(done)
	}
	http.Redirect(q.w, q.Request, to, http.StatusSeeOther)
	return nil
}

// localPath accepts only a path of this site as a place to return to.
func localPath(s string) string {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") || strings.ContainsAny(s, "\r\n") {
		return "/projects"
	}
	return s
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if _, _, _, ok := c.current(r); ok && r.Method == http.MethodGet {
		http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	data := map[string]any{"Next": localPath(r.URL.Query().Get("next")), "Error": ""}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil || !sameOrigin(r) {
			c.fail(w, r, server.User{}, http.StatusForbidden, "refused: the sign-in did not come from this console", "")
			return
		}
		next := localPath(r.PostForm.Get("next"))
		data["Next"] = next
		tok := strings.TrimSpace(r.PostForm.Get("token"))
		u, err := c.srv.UserByToken(r.Context(), tok)
		if err == nil {
			if err = c.open(w, r, tok); err == nil {
				server.SetLogUser(w, u.Name)
				http.Redirect(w, r, next, http.StatusSeeOther)
				return
			}
		}
		status = http.StatusUnauthorized
		_, text, _ := server.ErrorAnswer(w, err)
		data["Error"] = text
	}
	if err := c.write(w, "login", status, &page{Title: "Sign in", Instance: c.in.Name, Data: data}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func (c *Console) logout(q *req) error {
	c.end(q.sid)
	http.SetCookie(q.w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secure(q.Request), MaxAge: -1})
	http.Redirect(q.w, q.Request, "/login", http.StatusSeeOther)
	return nil
}

// ctx is the request's context.
func (q *req) ctx() context.Context { return q.Context() }
