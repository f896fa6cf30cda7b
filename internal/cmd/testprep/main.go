// Command testprep makes what the test suite needs once per machine, outside any test's
// deadline: Debian's PostgreSQL and nginx (installed when missing, as root, as the corpus
// script installs Python's packages), SeaweedFS's weed (built from its module, about 5
// minutes the first time) and the ml corpus (about a minute). It says what it does on
// stderr and prints, on stdout, the variables that point the tests at weed and the corpus
// (for eval in scripts/test.sh).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/swcli/swcli/internal/corpus"
	"github.com/swcli/swcli/internal/engines"
)

func main() {
	repo, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	step := func(what string, fn func() (string, error)) string {
		fmt.Fprintf(os.Stderr, "testprep: %s (once per machine; cached) ...\n", what)
		start := time.Now()
		out, err := fn()
		if err != nil {
			fail(fmt.Errorf("%s: %w", what, err))
		}
		fmt.Fprintf(os.Stderr, "testprep: %s: ready in %s: %s\n", what, time.Since(start).Round(time.Second), out)
		return out
	}
	step("PostgreSQL and nginx from Debian (the replica tests' engines; installed when missing, as root)", func() (string, error) {
		return engines.InstallDebian(context.Background())
	})
	weed := step("SeaweedFS (the S3 tests' engine; about 6 minutes on 2 cores the first time)", func() (string, error) { return engines.WeedBin(repo) })
	dir := step("the ml corpus (../shared/corpus/make-corpus.sh; about a minute the first time)", corpus.Dir)
	fmt.Printf("export SWCLI_WEED=%q\nexport SWCLI_CORPUS=%q\n", weed, filepath.Clean(dir))
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "testprep: %v\n", err)
	os.Exit(1)
}
