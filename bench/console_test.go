package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/console"
	"github.com/swcli/swcli/ops/server"
)

// BenchmarkConsole renders the web console's heaviest pages on the server (the handler
// called directly: no network, no browser), against a runtime of 10,000 versions and a
// version of 15,000 files. The target is 200 ms a page.
//
//	go test -run '^$' -bench Console -benchtime 20x ./bench/
func BenchmarkConsole(b *testing.B) {
	root := b.TempDir()
	as := ops.FileAuth{Root: root}
	tok, err := ops.AddUser(bctx, as, "alice", false)
	if err != nil {
		b.Fatal(err)
	}
	if err := ops.CreateServerProject(bctx, as, "team", []string{"alice"}); err != nil {
		b.Fatal(err)
	}
	in, err := ops.Open(bctx, root, ops.OpenOptions{Exclusive: true})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	if err := ops.CreateProject(bctx, in, "team"); err != nil {
		b.Fatal(err)
	}
	// Two versions of a 15k-file tree (15,000 files in one directory, as site-packages
	// can grow), 50 files apart.
	work := b.TempDir()
	big := func(name string, n, changed int) *ledger.Version {
		dir := filepath.Join(work, name)
		sp := filepath.Join(dir, "export", "venv", "lib", "python3.11", "site-packages")
		os.MkdirAll(sp, 0o755)
		for i := range n {
			body := fmt.Sprintf("# module %d\nx = %d\n", i, i)
			if i < changed {
				body += "# changed\n"
			}
			os.WriteFile(filepath.Join(sp, fmt.Sprintf("m%05d.py", i)), []byte(body), 0o644)
		}
		os.WriteFile(filepath.Join(dir, "runtime.yaml"), []byte("name: big\n"), 0o644)
		res, err := cas.Ingest(bctx, in.Store, []cas.Input{{Src: dir}}, cas.IngestOptions{})
		if err != nil {
			b.Fatal(err)
		}
		e, _ := ledger.New(ledger.RuntimeBuilt, "team", "big", ops.VersionID(res.Hash), ledger.BuiltData{Manifest: res.Hash, Size: res.Size, Files: int64(res.Files), Mode: "venv", Python: "3.11"})
		e.Actor, e.Instance = "alice", "local"
		if _, err := in.Ledger.Append(bctx, e); err != nil {
			b.Fatal(err)
		}
		v, err := in.Ledger.Resolve("team", "big", "latest")
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	v1 := big("v1", 15000, 0)
	v2 := big("v2", 15000, 50)
	// 10,000 versions of one runtime, appended as builds are (in batches here, for time).
	const versions = 10000
	for i := 0; i < versions; i += 1000 {
		var evs []ledger.Event
		for j := i; j < i+1000; j++ {
			e := buildEv(b, "many", fmt.Sprintf("many-%d", j))
			e.Project = "team"
			evs = append(evs, e)
		}
		if _, err := in.Ledger.Append(bctx, evs...); err != nil {
			b.Fatal(err)
		}
	}
	srv := server.NewServer(in)
	srv.Pages = console.New(srv)
	h := srv.Handler()
	// Sign in once; every request carries the session's cookie.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h.ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cookies) == 0 {
		b.Fatalf("sign in: %d", rec.Code)
	}
	vu := func(v *ledger.Version) string { return "/projects/team/runtimes/big/versions/" + v.ID }
	pages := []struct{ name, path string }{
		{"versions-10k/page-50", "/projects/team/runtimes/many/versions"},
		{"versions-10k/all-10000", "/projects/team/runtimes/many/versions?size=10000"},
		{"versions-10k/filtered", "/projects/team/runtimes/many/versions?q=user"},
		{"runtimes", "/projects/team/runtimes"},
		{"history-10k/page-100", "/projects/team/runtimes/many/history"},
		{"tree-15k/dir-of-15000", vu(v2) + "/files?dir=export/venv/lib/python3.11/site-packages"},
		{"tree-15k/root", vu(v2) + "/files"},
		{"overview-15k", vu(v2) + "/overview"},
		{"compare-15k", "/projects/team/runtimes/big/compare?a=" + v1.ID + "&b=" + v2.ID},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", p.path, nil)
				for _, c := range cookies {
					req.AddCookie(c)
				}
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("%s: %d\n%s", p.path, rec.Code, rec.Body.String())
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "page-bytes")
		})
	}
}
