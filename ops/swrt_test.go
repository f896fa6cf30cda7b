package ops_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
)

type tarEntry struct {
	name, body, link string
	typ              byte
}

func writeTar(t *testing.T, path string, es []tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Linkname: e.link, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestImportRefusesHostileBundles: a .swrt comes from outside; nothing in it may write
// outside the import's directory, and a refused import records nothing.
func TestImportRefusesHostileBundles(t *testing.T) {
	const yml = "name: evil\n"
	outside := t.TempDir()
	cases := []struct {
		name string
		es   []tarEntry
		want string
	}{
		{"write through a link", []tarEntry{
			{name: "runtime.yaml", body: yml, typ: tar.TypeReg},
			{name: "files", link: outside, typ: tar.TypeSymlink},
			{name: "files/pwned", body: "x", typ: tar.TypeReg},
		}, "its directory files is a symbolic link"},
		{"hard link out", []tarEntry{
			{name: "runtime.yaml", body: yml, typ: tar.TypeReg},
			{name: "wheels/x.whl", link: "/etc/passwd", typ: tar.TypeLink},
		}, "not an earlier file of the bundle"},
		{"device", []tarEntry{
			{name: "runtime.yaml", body: yml, typ: tar.TypeReg},
			{name: "dev", typ: tar.TypeChar},
		}, "of a kind a bundle does not hold"},
		{"absolute", []tarEntry{{name: "/etc/x", body: "x", typ: tar.TypeReg}}, "not a relative path"},
		{"twice", []tarEntry{
			{name: "runtime.yaml", body: yml, typ: tar.TypeReg},
			{name: "runtime.yaml", body: yml, typ: tar.TypeReg},
		}, "appears twice"},
		{"bad runtime.yaml", []tarEntry{{name: "runtime.yaml", body: "name: x\nmode: docker\n", typ: tar.TypeReg}}, "mode: unknown mode"},
		{"bad manifest", []tarEntry{
			{name: "_manifest.yaml", body: "environment: [", typ: tar.TypeReg},
			{name: "runtime.yaml", body: yml, typ: tar.TypeReg},
		}, "_manifest.yaml"},
	}
	root := t.TempDir()
	in := openInstance(t, root)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "x.swrt")
			writeTar(t, f, c.es)
			_, err := ops.ImportSwrt(context.Background(), in, ops.ImportRequest{File: f, Project: "self"})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line with %q", err, c.want)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("wrote outside: %v", ents)
			}
			if vs, _, _ := in.Ledger.Versions("self", "", ledger.ListOptions{ShowRemoved: true}); len(vs) != 0 {
				t.Fatalf("recorded %d versions", len(vs))
			}
			if m, _ := filepath.Glob(filepath.Join(root, "import-*")); len(m) != 0 {
				t.Fatalf("left %v", m)
			}
		})
	}
}
