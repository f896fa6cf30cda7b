package console_test

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/console"
	"github.com/swcli/swcli/ops/server"
)

var ctx = context.Background()

// hostileName is a file name a page must show as text, never as markup.
const hostileName = `export/x"><script>alert(1)</script>.py`

// site is a served root with a console: alice is a member of mnist (two versions of
// runtime pytorch), bob of secret (one version of runtime hidden), root an admin.
type site struct {
	root   string
	in     *ops.Instance
	url    string
	tokens map[string]string
	v1, v2 *ledger.Version
	secret *ledger.Version
	ids    map[string]int
	close  func()
}

func newSite(t testing.TB) *site {
	t.Helper()
	s := &site{root: t.TempDir(), tokens: map[string]string{}, ids: map[string]int{}}
	as := ops.FileAuth{Root: s.root}
	for _, u := range []string{"alice", "bob", "root"} {
		tok, err := ops.AddUser(ctx, as, u, u == "root")
		if err != nil {
			t.Fatal(err)
		}
		s.tokens[u] = tok
	}
	for p, m := range map[string]string{"mnist": "alice", "secret": "bob"} {
		if err := ops.CreateServerProject(ctx, as, p, []string{m}); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := ops.ListServerProjects(ctx, as)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		s.ids[p.Name] = p.ID
	}
	in, err := ops.Open(ctx, s.root, ops.OpenOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	s.in = in
	for _, p := range []string{"mnist", "secret"} {
		if err := ops.CreateProject(ctx, in, p); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	s.v1 = s.build(t, "mnist", "pytorch", filepath.Join(work, "v1"), map[string]string{
		"runtime.yaml": "name: pytorch\nmode: venv\nenvironment:\n  python: \"3.11\"\n",
		"dependencies/.starwhale/lock/requirements-sw-lock.txt":      "numpy==1.24.2\nscipy==1.10.1\n",
		"export/venv/lib/python3.11/site-packages/numpy/__init__.py": strings.Repeat("# numpy\n", 300),
		"export/venv/lib/python3.11/site-packages/scipy/__init__.py": "import numpy\n",
	})
	s.v2 = s.build(t, "mnist", "pytorch", filepath.Join(work, "v2"), map[string]string{
		"runtime.yaml": "name: pytorch\nmode: venv\nenvironment:\n  python: \"3.11\"\n",
		"dependencies/.starwhale/lock/requirements-sw-lock.txt":      "numpy==1.24.2\nscipy==1.11.0\ntorch==2.1.0\n",
		"export/venv/lib/python3.11/site-packages/numpy/__init__.py": strings.Repeat("# numpy\n", 300),
		"export/venv/lib/python3.11/site-packages/scipy/__init__.py": "import numpy  # 1.11\n",
		"export/venv/lib/python3.11/site-packages/torch/__init__.py": strings.Repeat("# torch\n", 1000),
		hostileName: "<script>alert(2)</script>\n",
	})
	s.secret = s.build(t, "secret", "hidden", filepath.Join(work, "s"), map[string]string{"runtime.yaml": "name: hidden\n", "secret.txt": "the secret\n"})
	s.serve(t)
	return s
}

// serve serves s.in with its console on a loopback port (s.url).
func (s *site) serve(t testing.TB) {
	srv := server.NewServer(s.in)
	srv.Pages = console.New(srv)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	s.close = func() { hs.Close(); s.in.Close() }
	s.url = hs.URL
}

// build stores files as a new version of project/runtime, as a build records it.
func (s *site) build(t testing.TB, project, runtime, dir string, files map[string]string) *ledger.Version {
	t.Helper()
	for p, body := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := cas.Ingest(ctx, s.in.Store, []cas.Input{{Src: dir}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := ledger.New(ledger.RuntimeBuilt, project, runtime, ops.VersionID(res.Hash), ledger.BuiltData{Manifest: res.Hash, Size: res.Size, Files: int64(res.Files), Mode: "venv", Python: "3.11"})
	if err != nil {
		t.Fatal(err)
	}
	e.Actor, e.Instance = "builder", s.in.Name
	if _, err := s.in.Ledger.Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	v, err := s.in.Ledger.Resolve(project, runtime, "latest")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// browser is a client with a cookie jar, as a browser keeps one.
type browser struct {
	t    testing.TB
	s    *site
	c    *http.Client
	csrf string
}

func (s *site) browser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, s: s, c: &http.Client{Jar: jar}}
}

func (s *site) signIn(t testing.TB, user string) *browser {
	b := s.browser(t)
	res, body := b.post("/login", url.Values{"token": {s.tokens[user]}, "next": {"/projects"}})
	if res.StatusCode != 200 || res.Request.URL.Path != "/projects" || !strings.Contains(body, user) {
		t.Fatalf("sign in as %s: %d at %s\n%s", user, res.StatusCode, res.Request.URL, body)
	}
	return b
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	if m := csrfRE.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	return res, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	req, _ := http.NewRequest("GET", b.s.url+path, nil)
	return b.do(req)
}

// post sends a form as the console's pages do: same origin, with the CSRF token the
// last page carried (unless the form sets its own).
func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest("POST", b.s.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.s.url)
	return b.do(req)
}

func (b *browser) page(path string, wants ...string) string {
	b.t.Helper()
	res, body := b.get(path)
	if res.StatusCode != 200 {
		b.t.Fatalf("GET %s: %d\n%s", path, res.StatusCode, body)
	}
	text := html.UnescapeString(body)
	for _, w := range wants {
		if !strings.Contains(text, w) {
			b.t.Errorf("GET %s: no %q in the page\n%s", path, w, body)
		}
	}
	return body
}

func (b *browser) status(path string, want int) string {
	b.t.Helper()
	res, body := b.get(path)
	if res.StatusCode != want {
		b.t.Errorf("GET %s: %d, want %d\n%s", path, res.StatusCode, want, body)
	}
	return body
}

func vurl(v *ledger.Version) string {
	return "/projects/" + v.Project + "/runtimes/" + v.Runtime + "/versions/" + v.ID
}

func head(t testing.TB, in *ops.Instance) uint64 {
	h, err := in.Ledger.Head()
	if err != nil {
		t.Fatal(err)
	}
	return h.Seq
}

func TestSignInAndAccess(t *testing.T) {
	s := newSite(t)
	anon := s.browser(t)
	res, body := anon.get("/projects/mnist/runtimes")
	if res.Request.URL.Path != "/login" || res.Request.URL.Query().Get("next") != "/projects/mnist/runtimes" {
		t.Fatalf("a page without a session went to %s, not the sign-in page\n%s", res.Request.URL, body)
	}
	res, body = anon.post("/login", url.Values{"token": {"not-a-token"}})
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "refused the token") {
		t.Errorf("a wrong token: %d\n%s", res.StatusCode, body)
	}
	// Signed in, the page asked for first opens.
	res, body = anon.post("/login", url.Values{"token": {s.tokens["alice"]}, "next": {"/projects/mnist/runtimes"}})
	if res.Request.URL.Path != "/projects/mnist/runtimes" || !strings.Contains(body, "pytorch") {
		t.Fatalf("after sign-in: %s\n%s", res.Request.URL, body)
	}
	var ck *http.Cookie
	for _, c := range res.Request.Response.Cookies() {
		ck = c
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict", ck)
	}
	// Behind TLS (here: a proxy that says so), the cookie is Secure.
	req, _ := http.NewRequest("POST", s.url+"/login", strings.NewReader(url.Values{"token": {s.tokens["alice"]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if res, err := noFollow.Do(req); err != nil || len(res.Cookies()) != 1 || !res.Cookies()[0].Secure {
		t.Errorf("behind TLS the session cookie is not Secure: %v", err)
	}
	// A sign-in may only send the browser to this site.
	res, _ = s.browser(t).post("/login", url.Values{"token": {s.tokens["alice"]}, "next": {"//evil.example/x"}})
	if res.Request.URL.Host != strings.TrimPrefix(s.url, "http://") || res.Request.URL.Path != "/projects" {
		t.Errorf("next=//evil.example/x led to %s", res.Request.URL)
	}

	alice := anon
	body = alice.page("/projects", "mnist")
	if strings.Contains(body, "secret") {
		t.Errorf("alice's projects show bob's\n%s", body)
	}
	// Not hers, or not there: both 404, saying nothing more.
	for _, p := range []string{"/projects/secret/runtimes", "/projects/nosuch/runtimes", fmt.Sprintf("/projects/%d/runtimes", s.ids["secret"]),
		vurl(s.secret) + "/overview", vurl(s.secret) + "/file?path=secret.txt", vurl(s.secret) + "/download",
		"/projects/secret/history", "/projects/secret/runtimes/hidden/versions", "/admin", "/nowhere",
		"/ledger/proof/" + strconv.FormatUint(s.secret.Seq, 10)} {
		body := alice.status(p, 404)
		if strings.Contains(body, "the secret") || strings.Contains(body, s.secret.ID) {
			t.Errorf("%s tells alice of bob's project\n%s", p, body)
		}
	}
	// The project's number, as Starwhale's client links it, opens the same pages.
	alice.page(fmt.Sprintf("/projects/%d/runtimes/pytorch/versions/%s/overview", s.ids["mnist"], s.v2.ID), s.v2.ID)
	// An admin sees every project.
	s.signIn(t, "root").page("/projects", "mnist", "secret")

	// Signing out forgets the session: the old cookie no longer opens anything.
	old := alice.c.Jar.Cookies(mustURL(s.url))
	alice.post("/logout", nil)
	replay := s.browser(t)
	replay.c.Jar.SetCookies(mustURL(s.url), old)
	if res, _ := replay.get("/projects"); res.Request.URL.Path != "/login" {
		t.Errorf("the cookie of a signed-out session still opens %s", res.Request.URL)
	}
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

func TestPagesShowVersions(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	alice.page("/projects/mnist/runtimes", "pytorch", s.v2.ID[:12])
	// The runtime's link as Starwhale's client prints it leads to its versions.
	alice.page("/projects/mnist/runtimes/pytorch", s.v1.ID[:12], s.v2.ID[:12], "v0", "v1", "latest", "swcli runtime copy")
	body := alice.page("/projects/mnist/runtimes/pytorch/versions?q=v0", s.v1.ID[:12])
	if strings.Contains(body, s.v2.ID[:12]) {
		t.Errorf("filter v0 shows the other version")
	}
	body = alice.page("/projects/mnist/runtimes/pytorch/versions?size=1", s.v2.ID[:12], "page 1 of 2", `rel="next"`)
	if strings.Contains(body, s.v1.ID[:12]) {
		t.Errorf("a page of 1 shows 2")
	}
	alice.page("/projects/mnist/runtimes/pytorch/versions?size=1&page=2", s.v1.ID[:12], `rel="prev"`)

	// The overview: runtime.yaml, the lock, _manifest.yaml, the commands, the event.
	alice.page(vurl(s.v2)+"/overview", "name: pytorch", "torch==2.1.0", "_manifest.yaml", "swcli runtime copy http://",
		"/project/mnist/runtime/pytorch/version/"+s.v2.ID, "/ledger/proof/"+strconv.FormatUint(s.v2.Seq, 10))
	// The tree, a directory at a time, and a file's text and bytes.
	alice.page(vurl(s.v2)+"/files", "export/", "dependencies/", "runtime.yaml")
	alice.page(vurl(s.v2)+"/files?dir=export/venv/lib/python3.11/site-packages", "numpy/", "torch/")
	alice.status(vurl(s.v2)+"/files?dir=no/such/dir", 404)
	alice.page(vurl(s.v2)+"/file?path=export/venv/lib/python3.11/site-packages/scipy/__init__.py", "import numpy  # 1.11")
	res, raw := alice.get(vurl(s.v2) + "/file?path=export/venv/lib/python3.11/site-packages/torch/__init__.py&raw=1")
	if res.StatusCode != 200 || raw != strings.Repeat("# torch\n", 1000) || !strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("raw file: %d, %d bytes, %q", res.StatusCode, len(raw), res.Header.Get("Content-Disposition"))
	}
	alice.status(vurl(s.v2)+"/file?path=../../etc/passwd", 404)
	// A hostile file name and content are text on every page that shows them.
	for _, p := range []string{vurl(s.v2) + "/files?dir=export", vurl(s.v2) + "/file?path=" + url.QueryEscape(hostileName),
		"/projects/mnist/runtimes/pytorch/compare?a=" + s.v1.ID + "&b=" + s.v2.ID} {
		body := alice.page(p, `x"><script>alert(`)
		if strings.Contains(body, "<script>") {
			t.Errorf("%s carries a script from a file name or content", p)
		}
	}

	// The .swrt download is a bundle another instance imports as the same version.
	res, bundle := alice.get(vurl(s.v2) + "/download")
	if res.StatusCode != 200 {
		t.Fatalf("download: %d", res.StatusCode)
	}
	names := tarNames(t, bundle)
	if !names["_manifest.yaml"] || !names["runtime.yaml"] {
		t.Errorf("the .swrt lacks _manifest.yaml or runtime.yaml: %v", names)
	}
	f := filepath.Join(t.TempDir(), "p.swrt")
	os.WriteFile(f, []byte(bundle), 0o644)
	other, err := ops.Open(ctx, t.TempDir(), ops.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := ops.CreateProject(ctx, other, "self"); err != nil && !errors.Is(err, ledger.ErrConflict) && server.HTTPStatus(err) != 409 {
		t.Fatal(err)
	}
	if _, err := ops.ImportSwrt(ctx, other, ops.ImportRequest{File: f, Project: "self"}); err != nil {
		t.Fatalf("import the downloaded .swrt: %v", err)
	}

	// Compare: what changed, what was added, the lock's diff, the new bytes.
	body = alice.page("/projects/mnist/runtimes/pytorch/compare?v="+s.v2.ID+"&v="+s.v1.ID,
		"torch/__init__.py", "-scipy==1.10.1", "+scipy==1.11.0", "+torch==2.1.0", "Changed (", "Added (")
	// New content: torch's file (8000 B), scipy's and the lock's new bytes.
	want := int64(8000 + len("import numpy  # 1.11\n") + len("numpy==1.24.2\nscipy==1.11.0\ntorch==2.1.0\n"))
	if !strings.Contains(body, "New content</dt><dd>"+server.HumanBytes(want)+" ") {
		t.Errorf("compare: want new content %s\n%s", server.HumanBytes(want), body)
	}
	alice.page("/projects/mnist/runtimes/pytorch/compare?a="+s.v1.ID+"&b="+s.v2.ID+"&diff=export/venv/lib/python3.11/site-packages/scipy/__init__.py",
		"+import numpy  # 1.11")
	alice.status("/projects/mnist/runtimes/pytorch/compare?v="+s.v1.ID, 400)
}

func tarNames(t *testing.T, b string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	tr := tar.NewReader(strings.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("the .swrt is not a tar: %v", err)
		}
		out[strings.TrimPrefix(h.Name, "./")] = true
	}
}

func TestChangesAreEventsOfTheUser(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	alice.page(vurl(s.v1) + "/overview")
	res, body := alice.post(vurl(s.v1)+"/tag", url.Values{"tag": {"prod"}})
	if res.StatusCode != 200 || !strings.Contains(body, "tagged prod") {
		t.Fatalf("tag: %d\n%s", res.StatusCode, body)
	}
	v, err := s.in.Ledger.Resolve("mnist", "pytorch", "prod")
	if err != nil || v.ID != s.v1.ID {
		t.Fatalf("prod names %v, %v", v, err)
	}
	last := lastEvent(t, s.in)
	if last.Type != ledger.RuntimeTagged || last.Actor != "alice" {
		t.Errorf("the tag's event: %s by %s", last.Type, last.Actor)
	}
	// A tag another version holds is refused (a clear error) unless moved on purpose.
	res, body = alice.post(vurl(s.v2)+"/tag", url.Values{"tag": {"prod"}})
	if res.StatusCode == 200 || !strings.Contains(body, "prod") {
		t.Errorf("moving prod without force: %d\n%s", res.StatusCode, body)
	}
	res, body = alice.post(vurl(s.v1)+"/tag", url.Values{"tag": {"prod"}, "action": {"remove"}})
	if res.StatusCode != 200 || !strings.Contains(body, "removed tag prod") {
		t.Fatalf("untag: %d\n%s", res.StatusCode, body)
	}
	if _, err := s.in.Ledger.Resolve("mnist", "pytorch", "prod"); err == nil {
		t.Errorf("prod still names a version after untag")
	}
	// Remove asks first; unconfirmed, nothing happens.
	alice.page(vurl(s.v1)+"/remove", "Yes, remove it")
	before := head(t, s.in)
	if res, _ := alice.post(vurl(s.v1)+"/remove", url.Values{}); res.StatusCode == 200 || head(t, s.in) != before {
		t.Errorf("an unconfirmed remove: %d, events %d → %d", res.StatusCode, before, head(t, s.in))
	}
	res, body = alice.post(vurl(s.v1)+"/remove", url.Values{"confirm": {"yes"}})
	if res.StatusCode != 200 || !strings.Contains(body, "Recover this version") {
		t.Fatalf("remove: %d\n%s", res.StatusCode, body)
	}
	if v, _ := s.in.Ledger.ResolveRemoved("mnist", "pytorch", s.v1.ID); v.Status != ledger.StatusRemoved {
		t.Errorf("status after remove: %v", v.Status)
	}
	body = alice.page("/projects/mnist/runtimes/pytorch/versions")
	if strings.Contains(body, s.v1.ID[:12]) {
		t.Errorf("a removed version is listed without 'removed too'")
	}
	alice.page("/projects/mnist/runtimes/pytorch/versions?removed=1", s.v1.ID[:12], "removed")
	res, body = alice.post(vurl(s.v1)+"/recover", url.Values{})
	if res.StatusCode != 200 || !strings.Contains(body, "recovered") {
		t.Fatalf("recover: %d\n%s", res.StatusCode, body)
	}
	last = lastEvent(t, s.in)
	if last.Type != ledger.RuntimeRecovered || last.Actor != "alice" {
		t.Errorf("the recover's event: %s by %s", last.Type, last.Actor)
	}
	// History shows it all, with who, the hashes, the checkpoint, and a chain that verifies.
	body = alice.page("/projects/mnist/runtimes/pytorch/history?verify=1", "runtime.recovered", "runtime.removed",
		"runtime.untagged", "runtime.tagged", "alice", last.Hash.String()[:12], "The chain verifies", "swcli/")
	if strings.Contains(body, s.secret.ID[:12]) || strings.Contains(body, "runtimes/hidden") {
		t.Errorf("mnist's history shows secret's runtime")
	}
	alice.page("/projects/mnist/history", "project.created", "pytorch")
}

func lastEvent(t *testing.T, in *ops.Instance) ledger.Event {
	t.Helper()
	e, err := in.Ledger.Event(head(t, in))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestForgeriesAreRefused(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	alice.page(vurl(s.v1) + "/overview")
	before := head(t, s.in)
	try := func(what string, res *http.Response, body string) {
		t.Helper()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403\n%s", what, res.StatusCode, body)
		}
		if h := head(t, s.in); h != before {
			t.Errorf("%s changed the ledger: %d → %d events", what, before, h)
		}
	}
	res, body := alice.post(vurl(s.v1)+"/tag", url.Values{"tag": {"x"}, "csrf": {""}})
	try("no CSRF token", res, body)
	res, body = alice.post(vurl(s.v1)+"/tag", url.Values{"tag": {"x"}, "csrf": {"forged"}})
	try("a forged CSRF token", res, body)
	// From another site, with the right token even: refused by origin.
	form := url.Values{"tag": {"x"}, "csrf": {alice.csrf}}
	req, _ := http.NewRequest("POST", s.url+vurl(s.v1)+"/tag", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	res, body = alice.do(req)
	try("another origin", res, body)
	req, _ = http.NewRequest("POST", s.url+vurl(s.v1)+"/tag", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, body = alice.do(req)
	try("a cross-site fetch", res, body)
	// Bob's CSRF token on alice's session.
	bob := s.signIn(t, "bob")
	res, body = alice.post(vurl(s.v1)+"/tag", url.Values{"tag": {"x"}, "csrf": {bob.csrf}})
	try("another session's token", res, body)
	// A forged cookie opens nothing and changes nothing.
	forged := s.browser(t)
	forged.c.Jar.SetCookies(mustURL(s.url), []*http.Cookie{{Name: "swcli_session", Value: strings.Repeat("A", 43)}})
	if res, _ := forged.get("/projects/mnist/runtimes"); res.Request.URL.Path != "/login" {
		t.Errorf("a forged cookie opened %s", res.Request.URL)
	}
	res, body = forged.post(vurl(s.v1)+"/tag", url.Values{"tag": {"x"}, "csrf": {alice.csrf}})
	try("a forged cookie", res, body)
	// Bob may not change alice's project, with his own valid session.
	bob.page("/projects")
	res, _ = bob.post(vurl(s.v1)+"/tag", url.Values{"tag": {"x"}})
	if res.StatusCode != 404 || head(t, s.in) != before {
		t.Errorf("bob tagging mnist: %d", res.StatusCode)
	}
	// A revoked token ends the sessions it opened.
	if err := ops.RevokeTokens(ctx, ops.FileAuth{Root: s.root}, "alice"); err != nil {
		t.Fatal(err)
	}
	if res, _ := alice.get("/projects"); res.Request.URL.Path != "/login" {
		t.Errorf("a revoked user's session still opens %s", res.Request.URL)
	}
}

func TestAdminPage(t *testing.T) {
	s := newSite(t)
	root := s.signIn(t, "root")
	root.page("/admin", "alice", "bob", "mnist", "secret")
	res, body := root.post("/admin/users", url.Values{"name": {"carol"}})
	m := regexp.MustCompile(`class="cmd token">([^<]+)<`).FindStringSubmatch(body)
	if res.StatusCode != 200 || m == nil {
		t.Fatalf("add user: %d\n%s", res.StatusCode, body)
	}
	s.tokens["carol"] = m[1]
	res, body = root.post("/admin/projects/mnist/members", url.Values{"add": {"carol"}})
	if res.StatusCode != 200 || !strings.Contains(body, "members of mnist changed") {
		t.Fatalf("members: %d\n%s", res.StatusCode, body)
	}
	s.signIn(t, "carol").page("/projects/mnist/runtimes/pytorch/versions", s.v2.ID[:12])
	res, _ = root.post("/admin/projects", url.Values{"name": {"bad name!"}})
	if res.StatusCode != 400 {
		t.Errorf("an invalid project name: %d", res.StatusCode)
	}
	// Not an admin: the admin forms are not there.
	alice := s.signIn(t, "alice")
	alice.page("/projects")
	if res, _ := alice.post("/admin/users", url.Values{"name": {"mallory"}, "admin": {"1"}}); res.StatusCode != 404 {
		t.Errorf("alice adding a user: %d", res.StatusCode)
	}
	us, _ := ops.ListUsers(ctx, ops.FileAuth{Root: s.root})
	for _, u := range us {
		if u.Name == "mallory" {
			t.Errorf("alice made a user")
		}
	}
}

// TestProofsFromThePage: an event's proof from the console checks offline with the
// script and the key alone.
func TestProofsFromThePage(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	res, body := alice.get("/ledger/proof/" + strconv.FormatUint(s.v2.Seq, 10))
	if res.StatusCode != 200 {
		t.Fatalf("proof: %d\n%s", res.StatusCode, body)
	}
	var p struct {
		Key       string         `json:"key"`
		Inclusion *ops.Inclusion `json:"inclusion"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil || p.Inclusion == nil || !strings.Contains(p.Inclusion.Line, s.v2.ID) {
		t.Fatalf("proof: %v\n%s", err, body)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 to run the offline check")
	}
	f := filepath.Join(t.TempDir(), "proof.json")
	os.WriteFile(f, []byte(body), 0o644)
	out, err := exec.Command(py, "../../scripts/verify-ledger-proof.py", f, "--key", p.Key).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok") {
		t.Fatalf("verify-ledger-proof.py: %v\n%s", err, out)
	}
	alice.page("/ledger", "Checkpoint", p.Key)
}

// TestHistoryShowsWhereTheChainBreaks: a ledger edited behind the server's back verifies
// no more, and the history page names the event.
func TestHistoryShowsWhereTheChainBreaks(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	alice.page(vurl(s.v1) + "/overview")
	alice.post(vurl(s.v1)+"/tag", url.Values{"tag": {"prod"}})
	tagged := head(t, s.in)
	s.close()
	// Edit the tag event's payload in the ledger's own store (key 'e' + sequence).
	db, err := pebble.Open(filepath.Join(s.root, "ledger", "db"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 9)
	key[0] = 'e'
	binary.BigEndian.PutUint64(key[1:], tagged)
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(v), `"prod"`, `"dev0"`, 1)
	closer.Close()
	if edited == string(v) {
		t.Fatalf("event %d holds no tag prod: %q", tagged, v)
	}
	if err := db.Set(key, []byte(edited), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	in, err := ops.Open(ctx, s.root, ops.OpenOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	s.in = in
	s.serve(t)
	root := s.signIn(t, "root")
	root.page("/projects/mnist/history?verify=1", "The chain does not verify", fmt.Sprintf("the first at event %d", tagged))
	// A member learns where, not what (the detail may be of another project's event).
	alice = s.signIn(t, "alice")
	body := alice.page("/projects/mnist/runtimes/pytorch/history?verify=1", fmt.Sprintf("event %d:", tagged))
	if !strings.Contains(body, "does not check") {
		t.Errorf("a member's view of the failure:\n%s", body)
	}
}

// TestOddRequests: whatever a query or path holds, a page answers with a status that says
// what was wrong (never 500), and changes nothing.
func TestOddRequests(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	alice.page("/ledger") // the instance's key is made (and recorded) at its first checkpoint
	before := head(t, s.in)
	base := "/projects/mnist/runtimes/pytorch"
	for path, want := range map[string]int{
		base + "/versions?size=-5&page=-3":                200,
		base + "/versions?page=999999":                    200,
		base + "/versions?size=99999999":                  200,
		base + "/versions?q=" + strings.Repeat("x", 5000): 200,
		base + "/versions/zzzzz/overview":                 404,
		base + "/versions/" + s.v1.ID[:1] + "/overview":   404, // too short to be a prefix
		base + "/versions/..%2F..%2Fetc/overview":         404,
		vurl(s.v1) + "/files?dir=../..":                   404,
		vurl(s.v1) + "/files?dir=%00":                     404,
		vurl(s.v1) + "/file?path=":                        404,
		vurl(s.v1) + "/file?path=export":                  404, // a directory
		base + "/compare?a=" + s.v1.ID + "&b=nosuch":      404,
		base + "/compare?v=a&v=b&v=c":                     400,
		"/projects/mnist/runtimes/nosuch/versions":        404,
		"/projects/mnist/runtimes/nosuch/history":         404,
		"/projects/BAD NAME!/runtimes":                    404,
		"/ledger/proof/0":                                 404,
		"/ledger/proof/99999999":                          404,
		"/ledger/proof/-1":                                404,
		"/projects/mnist/history?page=-1":                 200,
	} {
		res, body := alice.get(path)
		if res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d\n%s", path, res.StatusCode, want, body)
		}
	}
	for path, form := range map[string]url.Values{
		vurl(s.v1) + "/tag":               {"tag": {"BAD TAG!"}},
		vurl(s.v1) + "/tag?x":             {"tag": {""}},
		vurl(s.v1) + "/tag#":              {"tag": {"latest"}},
		base + "/versions/nosuch/tag":     {"tag": {"ok"}},
		base + "/versions/nosuch/recover": {},
		vurl(s.v1) + "/recover":           {}, // not removed
	} {
		h0 := head(t, s.in)
		res, body := alice.post(path, form)
		if h := head(t, s.in); h != h0 {
			t.Errorf("POST %s %v appended %s", path, form, lastEvent(t, s.in).Type)
		}
		if res.StatusCode < 400 || res.StatusCode >= 500 {
			t.Errorf("POST %s %v: %d, want a 4xx\n%s", path, form, res.StatusCode, body)
		}
	}
	if h := head(t, s.in); h != before {
		t.Errorf("odd requests changed the ledger: %d → %d events", before, h)
	}
}

// TestHistoryPages: newest first, a hundred a page, each event on exactly one page.
func TestHistoryPages(t *testing.T) {
	s := newSite(t)
	for i := range 60 { // 120 events on pytorch: tag, untag
		for _, typ := range []ledger.Type{ledger.RuntimeTagged, ledger.RuntimeUntagged} {
			e, _ := ledger.New(typ, "mnist", "pytorch", s.v1.ID, ledger.TagsData{Tags: []string{fmt.Sprint("t", i)}})
			e.Actor = "builder"
			if _, err := s.in.Ledger.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	alice := s.signIn(t, "alice")
	seen := map[string]int{}
	rowRE := regexp.MustCompile(`<tr><td>(\d+)</td>`)
	var order []int
	for _, p := range []string{"1", "2"} {
		body := alice.page("/projects/mnist/runtimes/pytorch/history?page="+p, "page "+p+" of 2")
		for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
			seen[m[1]]++
			n, _ := strconv.Atoi(m[1])
			order = append(order, n)
		}
	}
	// pytorch's events: its two builds and the 120.
	if len(order) != 122 || len(seen) != 122 {
		t.Fatalf("%d rows, %d distinct, want 122", len(order), len(seen))
	}
	for i := 1; i < len(order); i++ {
		if order[i] >= order[i-1] {
			t.Fatalf("not newest first at row %d: %d after %d", i, order[i], order[i-1])
		}
	}
}
