package ops_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops"
)

// A manifest that says a file holds 32 bytes while its chunks hold 4 MiB: extract wrote
// the 4 MiB before it failed, and fsck stayed clean. Sizes are enforced as chunks are
// written, and fsck names the file.
func TestManifestSizeLiesAreCaught(t *testing.T) {
	in := openInstance(t, t.TempDir())
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	var hs []cas.Hash
	for off := 0; off < len(data); off += 1 << 20 {
		c := data[off : off+1<<20]
		h := cas.Sum(c)
		if err := in.Store.Put(ctx, h, c); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	m := &cas.Manifest{Entries: []cas.Entry{
		{Path: "big", Kind: cas.KindFile, Mode: 0o644, Size: 32, Chunks: hs},
		{Path: "runtime.yaml", Kind: cas.KindFile, Mode: 0o644, Size: 0},
	}}
	mb := m.Encode()
	if err := in.Store.Put(ctx, cas.Sum(mb), mb); err != nil {
		t.Fatal(err)
	}
	if err := in.Store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	v := recordBuilt(t, in, "liar", &cas.IngestResult{Hash: cas.Sum(mb), Totals: cas.Totals{Size: 32, Files: 2}})
	target := filepath.Join(t.TempDir(), "x")
	_, err := ops.Extract(ctx, in, "self", v.Runtime, v.ID, target, false, nil)
	if err == nil || ops.KindOf(err) == ops.KindFailure && !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("extract of a lying manifest: %v", err)
	}
	if n := dirBytes(filepath.Dir(target)); n > 1<<20 {
		t.Fatalf("extract wrote %d bytes for a file the manifest says is 32", n)
	}
	if ents, _ := os.ReadDir(filepath.Dir(target)); len(ents) != 0 {
		t.Fatalf("extract left %v", ents)
	}
	_, err = ops.Fsck(ctx, in)
	if err == nil || !strings.Contains(err.Error(), "big says 32 bytes, its chunks hold 4194304") {
		t.Fatalf("fsck: %v, want the size lie named", err)
	}
}

// In a shared directory (sticky /tmp), extract's temporary has a name nobody can guess and
// is made exclusively: links planted at the names it used before receive nothing.
func TestExtractTempIsNotPlantable(t *testing.T) {
	in := openInstance(t, t.TempDir())
	v := bundle(t, in, "plain", map[string]string{"runtime.yaml": "name: plain\n", "a": "secret"}, nil, nil)
	shared := t.TempDir()
	attacker := t.TempDir()
	target := filepath.Join(shared, "rt")
	// Every name of the old scheme, for this process, is a link to the attacker's dir.
	for i := range 16 {
		for _, suffix := range []string{"", ".old"} {
			os.Symlink(attacker, filepath.Join(shared, "rt.swcli-tmp-"+itoa(os.Getpid())+"-"+itoa(i)+suffix))
		}
	}
	if _, err := ops.Extract(ctx, in, "self", v.Runtime, v.ID, target, false, nil); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(attacker); len(ents) != 0 {
		t.Fatalf("the runtime's files went through a planted link: %v", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "a")); string(b) != "secret" {
		t.Fatalf("extract wrote %q", b)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
