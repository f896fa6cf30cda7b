package cas_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/cas/treecmp"
	"github.com/swcli/swcli/internal/corpus"
)

// TestCorpusRoundTrip stores the ml-v1 runtime workdir and materialises it into an empty
// directory: contents, modes and symlinks (dangling ones included) come back identical.
func TestCorpusRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ml corpus (about a minute); CI runs it")
	}
	dir, err := corpus.Dir()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "ml-v1")
	ctx := context.Background()
	s := openLocal(t, t.TempDir())
	res, err := cas.Ingest(ctx, s, []cas.Input{{Src: src}}, cas.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files < 5000 || res.Links == 0 {
		t.Fatalf("ml-v1 stored as %d files and %d links: not the corpus", res.Files, res.Links)
	}
	out := filepath.Join(t.TempDir(), "ml-v1")
	if err := cas.Materialize(ctx, s, manifestOf(t, s, res.Hash), out, cas.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	if diff := treecmp.Diff(src, out); diff != "" {
		t.Fatalf("materialised ml-v1 differs:\n%s", diff)
	}
	rep, err := cas.VerifyAll(ctx, s)
	if err != nil || len(rep.Corrupt) > 0 {
		t.Fatalf("verify after round trip: %v %v", err, rep.Corrupt)
	}
}
