package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The console in a real browser: Debian's chromium, headless, driven over the DevTools
// protocol. Without chromium the test is skipped, unless SWCLI_REQUIRE_BROWSER is set
// (CI sets it, having installed chromium); -short skips it unless that is set. Screenshots go to SWCLI_SCREENSHOTS if set,
// else to the test's temporary directory.

func chromium(t *testing.T) string {
	if testing.Short() && os.Getenv("SWCLI_REQUIRE_BROWSER") == "" {
		t.Skip("a real browser takes ten seconds: -short leaves it to the full suite (or SWCLI_REQUIRE_BROWSER=1)")
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("SWCLI_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium on PATH, and SWCLI_REQUIRE_BROWSER is set (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH (apt-get install chromium)")
	return ""
}

// socketTemp is a temporary directory for chromium's own: it binds a unix socket there,
// and a socket's address holds at most 107 bytes, so under a long $TMPDIR it would not
// start ("Socket path too long"). Then /tmp serves, as it does for the admin socket.
func socketTemp(t *testing.T) string {
	parent := os.TempDir()
	if len(parent) > 40 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "swcli-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// newTab starts a browser of its own (its own profile: cookies are not shared) and
// returns a tab in it. The browser dies with the test (chromedp kills it on cancel, and
// the kernel when the test binary dies: Pdeathsig).
func newTab(t *testing.T, exe string, w, h int) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, // a fresh profile each, which chromedp removes
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(w, h), chromedp.Env("TMPDIR="+socketTemp(t)))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	tctx, cancelT := chromedp.NewContext(actx)
	tctx, cancelD := context.WithTimeout(tctx, 3*time.Minute)
	t.Cleanup(func() { chromedp.Cancel(tctx); cancelD(); cancelT(); cancelA() })
	if err := chromedp.Run(tctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if w < 500 { // narrower than a window may be: a phone's viewport
		if err := chromedp.Run(tctx, chromedp.EmulateViewport(int64(w), int64(h), chromedp.EmulateMobile)); err != nil {
			t.Fatalf("emulate a phone: %v", err)
		}
	}
	return tctx
}

type shooter struct {
	t   *testing.T
	dir string
}

func (s shooter) shot(ctx context.Context, name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var b []byte
		if err := chromedp.FullScreenshot(&b, 100).Do(ctx); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(s.dir, name+".png"), b, 0o644)
	})
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(step, actions...); err != nil {
		var loc, body string
		chromedp.Run(ctx, chromedp.Location(&loc), chromedp.Text("body", &body, chromedp.ByQuery))
		t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
	}
}

func textOf(t *testing.T, ctx context.Context) string {
	t.Helper()
	var s string
	run(t, ctx, "read the page", chromedp.Text("body", &s, chromedp.ByQuery))
	return s
}

func wantText(t *testing.T, ctx context.Context, where string, wants ...string) {
	t.Helper()
	s := textOf(t, ctx)
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s: no %q on the page:\n%s", where, w, s)
		}
	}
}

func TestConsoleInBrowser(t *testing.T) {
	exe := chromium(t)
	s := newSite(t)
	shots := shooter{t, os.Getenv("SWCLI_SCREENSHOTS")}
	if shots.dir == "" {
		shots.dir = t.TempDir()
	}
	os.MkdirAll(shots.dir, 0o755)
	tab := newTab(t, exe, 1280, 900)
	overview := s.url + vurl(s.v2) + "/overview"

	// The link Starwhale's client prints, opened before signing in: sign in, land on it.
	run(t, tab, "sign in",
		chromedp.Navigate(overview),
		chromedp.WaitVisible("#token", chromedp.ByID),
		shots.shot(tab, "01-sign-in"),
		chromedp.SendKeys("#token", s.tokens["alice"], chromedp.ByID),
		chromedp.Submit("#token", chromedp.ByID),
		chromedp.WaitVisible(`//h2[text()="runtime.yaml"]`),
	)
	wantText(t, tab, "overview", s.v2.ID, "torch==2.1.0", "_manifest.yaml", "swcli runtime copy")
	run(t, tab, "overview shot", shots.shot(tab, "05-overview"))

	// Projects → runtime → versions, by the links.
	run(t, tab, "walk",
		chromedp.Navigate(s.url+"/projects"),
		chromedp.WaitVisible(`//a[text()="mnist"]`),
		shots.shot(tab, "02-projects"),
		chromedp.Click(`//td/a[text()="mnist"]`),
		chromedp.WaitVisible(`//a[text()="pytorch"]`),
		shots.shot(tab, "03-runtimes"),
		chromedp.Click(`//td/a[text()="pytorch"]`),
		chromedp.WaitVisible(`table.versions`, chromedp.ByQuery),
		shots.shot(tab, "04-versions"),
	)
	wantText(t, tab, "versions", s.v1.ID[:12], s.v2.ID[:12], "2 versions")

	// Compare the two, ticked in the table.
	run(t, tab, "compare",
		chromedp.Click(fmt.Sprintf(`input[value="%s"]`, s.v1.ID), chromedp.ByQuery),
		chromedp.Click(fmt.Sprintf(`input[value="%s"]`, s.v2.ID), chromedp.ByQuery),
		chromedp.Click(`//button[contains(text(),"Compare")]`),
		chromedp.WaitVisible(`pre.diff`, chromedp.ByQuery),
		shots.shot(tab, "07-compare"),
	)
	wantText(t, tab, "compare", "+torch==2.1.0", "-scipy==1.10.1", "torch/__init__.py", "New content")

	// The files, a directory at a time, then a file.
	run(t, tab, "files",
		chromedp.Navigate(overview),
		chromedp.Click(`//a[text()="Files"]`),
		chromedp.Click(`//a[text()="export/"]`),
		chromedp.Click(`//a[text()="venv/"]`),
		chromedp.Click(`//a[text()="lib/"]`),
		chromedp.Click(`//a[text()="python3.11/"]`),
		chromedp.Click(`//a[text()="site-packages/"]`),
		chromedp.WaitVisible(`//a[text()="torch/"]`),
		shots.shot(tab, "06-files"),
		chromedp.Click(`//a[text()="scipy/"]`),
		chromedp.Click(`//a[text()="__init__.py"]`),
		chromedp.WaitVisible(`pre.file`, chromedp.ByQuery),
	)
	wantText(t, tab, "file", "import numpy  # 1.11")

	// Tag and untag, remove (confirmed) and recover, from v1's page.
	v1 := s.url + vurl(s.v1) + "/overview"
	run(t, tab, "tag",
		chromedp.Navigate(v1),
		chromedp.SendKeys("#tag", "prod", chromedp.ByID),
		chromedp.Click(`//button[text()="Add tag"]`),
		chromedp.WaitVisible(`//p[@class="flash" and contains(text(),"tagged prod")]`),
		chromedp.Click(`//button[@aria-label="remove tag prod"]`),
		chromedp.WaitVisible(`//p[@class="flash" and contains(text(),"removed tag prod")]`),
		chromedp.Click(`//a[contains(text(),"Remove this version")]`),
		chromedp.WaitVisible(`//button[text()="Yes, remove it"]`),
		shots.shot(tab, "08-confirm-remove"),
		chromedp.Click(`//button[text()="Yes, remove it"]`),
		chromedp.WaitVisible(`//button[text()="Recover this version"]`),
		chromedp.Click(`//button[text()="Recover this version"]`),
		chromedp.WaitVisible(`//p[@class="flash" and contains(text(),"recovered")]`),
	)
	if v, err := s.in.Ledger.Resolve("mnist", "pytorch", s.v1.ID); err != nil || v.Status.String() != "live" {
		t.Errorf("after recover from the page: %v %v", v, err)
	}

	// History: the events just made, by alice, and a chain that verifies.
	run(t, tab, "history",
		chromedp.Click(`//a[text()="History"]`),
		chromedp.Click(`//button[text()="Verify the whole chain"]`),
		chromedp.WaitVisible(`//p[@class="ok"]`),
		shots.shot(tab, "09-history"),
	)
	wantText(t, tab, "history", "runtime.recovered", "runtime.removed", "runtime.untagged", "runtime.tagged", "alice", "The chain verifies")

	// A form on another origin posting into the console with alice's cookie: refused,
	// nothing changes.
	before := head(t, s.in)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form id="f" method="post" action="%s%s/tag"><input name="tag" value="pwned"><input name="csrf" value="guess"></form><script>document.getElementById("f").submit()</script>`, s.url, vurl(s.v1))
	}))
	defer evil.Close()
	run(t, tab, "cross-site form", chromedp.Navigate(evil.URL), chromedp.WaitVisible(`//h1[contains(text(),"Forbidden")]`))
	if h := head(t, s.in); h != before {
		t.Errorf("a cross-site form changed the ledger: %d → %d", before, h)
	}
	// A forged session cookie opens nothing.
	run(t, tab, "forged cookie",
		network.ClearBrowserCookies(),
		network.SetCookie("swcli_session", strings.Repeat("A", 43)).WithDomain("127.0.0.1").WithPath("/"),
		chromedp.Navigate(s.url+"/projects/mnist/runtimes"),
		chromedp.WaitVisible("#token", chromedp.ByID),
	)

	// Bob, in a browser of his own, finds nothing of mnist.
	bob := newTab(t, exe, 390, 844) // a phone's screen
	run(t, bob, "bob signs in",
		chromedp.Navigate(s.url+"/login"),
		chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", s.tokens["bob"], chromedp.ByID),
		chromedp.Submit("#token", chromedp.ByID),
		chromedp.WaitVisible(`//a[text()="secret"]`),
		shots.shot(bob, "10-phone-projects"),
		chromedp.Navigate(overview),
		chromedp.WaitVisible(`//h1[contains(text(),"404")]`),
	)
	if page := textOf(t, bob); strings.Contains(page, "torch") || strings.Contains(page, s.v2.ID) {
		t.Errorf("bob sees mnist's version:\n%s", page)
	}
	// Keyboard: the first Tab reaches the skip link, which jumps to the content.
	var focused string
	run(t, bob, "keyboard",
		chromedp.Navigate(s.url+"/projects"),
		chromedp.WaitVisible(`//a[text()="secret"]`),
		chromedp.KeyEvent("\t"),
		chromedp.Evaluate(`document.activeElement.textContent`, &focused),
	)
	if focused != "Skip to content" {
		t.Errorf("the first Tab focuses %q, not the skip link", focused)
	}
	t.Logf("screenshots in %s", shots.dir)
}
