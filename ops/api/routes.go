package api

import (
	"fmt"
	"net/url"
	"strings"
)

// Routes: swcli's HTTP API in one table, read by both sides. The server registers each
// route's Pattern on its mux; the client builds each request's path with URL. A route
// spelled once cannot drift between them (TestRoutesServedAsListed checks the server).

// Route is one endpoint: a method and a path in net/http's pattern syntax, whose {name}
// segments URL fills.
type Route struct{ Method, Path string }

// The routes. {p} is a project, {r} a runtime, {ref} a version reference, {u} a user.
var (
	RouteWhoami      = Route{"GET", "/api/v1/whoami"}
	RouteProjects    = Route{"GET", "/api/v1/projects"}
	RouteVersions    = Route{"GET", "/api/v1/projects/{p}/versions"}
	RouteHistory     = Route{"GET", "/api/v1/projects/{p}/runtimes/{r}/history"}
	RouteResolve     = Route{"GET", "/api/v1/projects/{p}/runtimes/{r}/versions/{ref}"}
	RouteInfo        = Route{"GET", "/api/v1/projects/{p}/runtimes/{r}/versions/{ref}/info"}
	RouteTag         = Route{"POST", "/api/v1/projects/{p}/runtimes/{r}/tag"}
	RouteRemove      = Route{"POST", "/api/v1/projects/{p}/runtimes/{r}/remove"}
	RouteRecover     = Route{"POST", "/api/v1/projects/{p}/runtimes/{r}/recover"}
	RouteCommit      = Route{"POST", "/api/v1/projects/{p}/commit"}
	RouteMissing     = Route{"POST", "/api/v1/chunks/missing"}
	RouteGetChunks   = Route{"POST", "/api/v1/chunks/get"}
	RoutePutChunks   = Route{"POST", "/api/v1/chunks"}
	RouteWalkChunks  = Route{"GET", "/api/v1/chunks"}
	RouteDeleteChunk = Route{"POST", "/api/v1/chunks/delete"}

	RouteAdminUsers      = Route{"GET", "/api/v1/admin/users"}
	RouteAdminAddUser    = Route{"POST", "/api/v1/admin/users"}
	RouteAdminToken      = Route{"POST", "/api/v1/admin/users/{u}/token"}
	RouteAdminRevoke     = Route{"POST", "/api/v1/admin/users/{u}/revoke"}
	RouteAdminProjects   = Route{"GET", "/api/v1/admin/projects"}
	RouteAdminAddProject = Route{"POST", "/api/v1/admin/projects"}
	RouteAdminRmProject  = Route{"POST", "/api/v1/admin/projects/{p}/remove"}
	RouteAdminMembers    = Route{"POST", "/api/v1/admin/projects/{p}/members"}
	RouteAdminGC         = Route{"POST", "/api/v1/admin/gc"}
	RouteAdminFsck       = Route{"POST", "/api/v1/admin/fsck"}
	RouteLedgerKey       = Route{"GET", "/api/v1/ledger/key"}
	RouteCheckpoint      = Route{"GET", "/api/v1/ledger/checkpoint"}
	RouteConsistency     = Route{"GET", "/api/v1/ledger/consistency"}
	RouteInclusion       = Route{"GET", "/api/v1/admin/ledger/inclusion"}
	RouteCosignatures    = Route{"GET", "/api/v1/ledger/cosignatures"}
	RouteCosign          = Route{"POST", "/api/v1/ledger/cosignatures"}
	RouteAdminVerify     = Route{"POST", "/api/v1/admin/ledger/verify"}
	RouteAdminExport     = Route{"GET", "/api/v1/admin/ledger/export"}
)

// Routes lists every route (the server serves each).
var Routes = []Route{RouteWhoami, RouteProjects, RouteVersions, RouteHistory, RouteResolve, RouteInfo,
	RouteTag, RouteRemove, RouteRecover, RouteCommit, RouteMissing, RouteGetChunks, RoutePutChunks,
	RouteWalkChunks, RouteDeleteChunk, RouteAdminUsers, RouteAdminAddUser, RouteAdminToken, RouteAdminRevoke,
	RouteAdminProjects, RouteAdminAddProject, RouteAdminRmProject, RouteAdminMembers, RouteAdminGC, RouteAdminFsck,
	RouteAdminVerify, RouteAdminExport, RouteLedgerKey, RouteCheckpoint, RouteConsistency, RouteInclusion,
	RouteCosignatures, RouteCosign}

// Pattern is the route as a net/http ServeMux pattern ("GET /api/v1/…").
func (r Route) Pattern() string { return r.Method + " " + r.Path }

// URL is the route's path with its {name} segments filled by args, in order, each
// path-escaped; it panics if the count differs (a programming error, caught by any test
// that uses the route).
func (r Route) URL(args ...string) string {
	segs := strings.Split(r.Path, "/")
	n := 0
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			if n >= len(args) {
				panic(fmt.Sprintf("route %s: %d arguments, want more", r.Path, len(args)))
			}
			segs[i] = url.PathEscape(args[n])
			n++
		}
	}
	if n != len(args) {
		panic(fmt.Sprintf("route %s: %d arguments, want %d", r.Path, len(args), n))
	}
	return strings.Join(segs, "/")
}
