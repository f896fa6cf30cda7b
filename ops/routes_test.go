package ops_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/server"
)

// Every route of the table is served, by that method: the server registers the table and
// the client builds its paths from it, so neither can name a path the other does not know.
// (A path the mux does not know answers its plain-text 404; a wrong method, 405.)
func TestRoutesServedAsListed(t *testing.T) {
	c := newCloud(t)
	tok, err := ops.AddUser(ctx, ops.FileAuth{Root: c.root}, "root", true)
	if err != nil {
		t.Fatal(err)
	}
	c.serve(t)
	for _, r := range append(api.Routes, server.StarwhaleRoutes...) {
		args := make([]string, strings.Count(r.Path, "{"))
		for i := range args {
			args[i] = "x y/z" // escaped by URL: one segment
		}
		req, _ := http.NewRequest(r.Method, c.url+r.URL(args...), strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusMethodNotAllowed || strings.HasPrefix(string(body), "404 page not found") ||
			strings.Contains(string(body), "not served here") {
			t.Errorf("%s %s: %d %q: the server does not serve it", r.Method, r.URL(args...), resp.StatusCode, body)
		}
	}
}

func TestRouteURL(t *testing.T) {
	if got := api.RouteInfo.URL("p 1", "a/b", "v%1"); got != "/api/v1/projects/p%201/runtimes/a%2Fb/versions/v%251/info" {
		t.Fatalf("URL %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a route filled with too few arguments did not panic")
		}
	}()
	api.RouteInfo.URL("p")
}
