// Package lint holds checks of the code base that run inside go test, so that a layering
// slip fails at once (pebble's internal/lint is the model).
package lint

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const module = "github.com/swcli/swcli"

// layer is where a package sits: a package may import only packages of lower layers (and
// of its own layer in its own tree, as cas/storetest imports cas).
//
//	cmd → cli → ops/console → ops/server → ops → ops/client → ops/api → ops/formats →
//	ops/errs → ledger → cas → internal
//
// The server and its console are front ends over the use cases, as the CLI is: they sit
// above ops and ops knows nothing of them. The client knows a server only through the
// contract both sides share (ops/api); Starwhale's formats know nothing of instances,
// servers or the network (see noNetwork); the error kinds sit beneath everything that
// returns them. bench and test helpers are apart.
func layer(pkg string) (int, bool) {
	p := strings.TrimPrefix(pkg, module)
	switch p {
	case "/cmd/swcli":
		return 11, true
	case "/cli":
		return 10, true
	case "/ops/console":
		return 9, true
	case "/ops/server":
		return 8, true
	case "/ops":
		return 7, true
	case "/ops/client":
		return 6, true
	case "/ops/api":
		return 5, true
	case "/ops/formats":
		return 4, true
	case "/ops/errs":
		return 3, true
	case "/ledger":
		return 2, true
	case "/internal/flock", "/internal/fsutil", "/internal/membudget", "/internal/pebblewin", "/internal/pgschema":
		return 0, true
	}
	if p == "/cas" || strings.HasPrefix(p, "/cas/") {
		return 1, true
	}
	return 0, false // bench, test helpers (internal/engines, internal/corpus, internal/cmd): not layered
}

// noNetwork lists packages that must not reach the network: reading and writing bundles
// and runtime.yaml, and restoring an environment, are local work.
var noNetwork = map[string]bool{module + "/ops/formats": true, module + "/ops/errs": true}

// only says which outside modules a layer may use at all: kong and zerolog are the CLI's.
var onlyIn = map[string]int{"github.com/alecthomas/kong": 10, "github.com/rs/zerolog": 10}

func TestImportLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := f[0], f[1:]
		from, layered := layer(pkg)
		for _, imp := range imports {
			if noNetwork[pkg] && (imp == "net" || strings.HasPrefix(imp, "net/")) {
				t.Errorf("%s imports %s: it must not reach the network", pkg, imp)
			}
			for mod, at := range onlyIn {
				if strings.HasPrefix(imp, mod) && from != at && !(from == 11 && at == 10) {
					if layered || strings.HasPrefix(pkg, module+"/internal") {
						t.Errorf("%s imports %s, which only the CLI may", pkg, imp)
					}
				}
			}
			if !layered || !strings.HasPrefix(imp, module) {
				continue
			}
			to, ok := layer(imp)
			if !ok {
				t.Errorf("%s imports %s, a helper outside the layers", pkg, imp)
				continue
			}
			sameTree := to == from && (strings.HasPrefix(imp, pkg+"/") || strings.HasPrefix(pkg, imp+"/"))
			if to >= from && !sameTree && !(from == 0 && to == 0) { // internal packages may use each other
				t.Errorf("%s imports %s: against the layers (see layer)", pkg, imp)
			}
			checked++
		}
		// Helpers (internal/engines, internal/corpus) sit below everything they serve.
		if strings.HasPrefix(pkg, module+"/internal/") && !layered {
			for _, imp := range imports {
				if l, ok := layer(imp); ok && l > 0 {
					t.Errorf("test helper %s imports %s: helpers import only internal packages", pkg, imp)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d imports: go list gave too little\n%s", checked, out)
	}
}

// TestCLIReachesTheLedgerThroughOps: cli opens instances and renders; what it reads of
// the ledger it reads through ops (ops/history.go and the use cases), so that a server's
// rules and the errors' kinds apply to it as to everything else.
func TestCLIReachesTheLedgerThroughOps(t *testing.T) {
	files, err := filepath.Glob("../../cli/*.go")
	if err != nil || len(files) < 5 {
		t.Fatalf("cli's files: %v %v", files, err)
	}
	direct := regexp.MustCompile(`\b[iI]n(st|stance)?\.Ledger\b|\.In\.Ledger\b`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if direct.MatchString(line) {
				t.Errorf("%s:%d reads the ledger directly (use ops): %s", filepath.Base(f), i+1, strings.TrimSpace(line))
			}
		}
	}
}
