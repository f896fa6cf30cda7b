package ops_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
)

// Attacks on `runtime import` (issue 25): a .swrt is hostile input. Import never writes
// outside its temporary directory, writes at most what the bundle carries, refuses what it
// cannot hold with exit 6 (KindInvalid), and leaves no temporary behind, even when killed.

// dirBytes is the bytes of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func importErr(t *testing.T, in *ops.Instance, file string) error {
	t.Helper()
	_, err := ops.ImportSwrt(context.Background(), in, ops.ImportRequest{File: file, Project: "self"})
	return err
}

func noVersions(t *testing.T, in *ops.Instance) {
	t.Helper()
	if vs, _, _ := in.Ledger.Versions("self", "", ledger.ListOptions{ShowRemoved: true}); len(vs) != 0 {
		t.Fatalf("recorded %d versions", len(vs))
	}
}

// A 2022 bundle whose export/ or dependencies/ is a link: the rearranging moves of a 2022
// import went through it and replaced files wherever the importing user could write.
func TestImport2022LinksStayInside(t *testing.T) {
	root := t.TempDir()
	in := openInstance(t, root)
	for _, link := range []string{"export", "dependencies", "export/venv", "runtime.yaml"} {
		t.Run(strings.ReplaceAll(link, "/", "_"), func(t *testing.T) {
			outside := t.TempDir()
			victim := filepath.Join(outside, "requirements.txt")
			os.WriteFile(victim, []byte("mine\n"), 0o644)
			os.MkdirAll(filepath.Join(outside, "venv"), 0o755)
			es := []tarEntry{
				{name: "_manifest.yaml", body: "name: evil\ndep:\n  env: venv\n  python: '3.11'\n", typ: tar.TypeReg},
				{name: "dep/", typ: tar.TypeDir},
				{name: "dep/python/", typ: tar.TypeDir},
				{name: "dep/python/requirements.txt", body: "evil\n", typ: tar.TypeReg},
				{name: "dep/python/requirements-lock.txt", body: "evil==1\n", typ: tar.TypeReg},
				{name: "dep/python/venv/", typ: tar.TypeDir},
				{name: "dep/python/venv/pyvenv.cfg", body: "home = /x\n", typ: tar.TypeReg},
			}
			if strings.Contains(link, "/") {
				es = append(es, tarEntry{name: "export/", typ: tar.TypeDir})
			}
			es = append(es, tarEntry{name: link, link: outside, typ: tar.TypeSymlink})
			f := filepath.Join(t.TempDir(), "x.swrt")
			writeTar(t, f, es)
			err := importErr(t, in, f)
			if b, _ := os.ReadFile(victim); string(b) != "mine\n" {
				t.Fatalf("import replaced a file outside its root (%v)", err)
			}
			if ents, _ := os.ReadDir(filepath.Join(outside, "venv")); len(ents) != 0 {
				t.Fatalf("import wrote into a directory outside its root (%v)", err)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 2 {
				t.Fatalf("import wrote outside: %v (%v)", ents, err)
			}
			if err != nil && (ops.KindOf(err) != ops.KindInvalid || strings.Contains(err.Error(), "\n")) {
				t.Fatalf("refused with %v (kind %v), want one line of kind invalid", err, ops.KindOf(err))
			}
		})
	}
}

// rawWriter is where rawEntry writes: the buffer under the tar.Writer of rawTar.
var rawWriter *bytes.Buffer

// rawEntry appends an entry with a hand-made ustar header (what tar.Writer will not write:
// PAX headers of the test's choosing).
func rawEntry(_ *tar.Writer, name string, typ byte, data []byte) {
	var h [512]byte
	copy(h[0:], name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", len(data)))
	copy(h[136:], "00000000000\x00")
	h[156] = typ
	copy(h[257:], "ustar\x0000")
	for i := 148; i < 156; i++ {
		h[i] = ' '
	}
	sum := 0
	for _, b := range h {
		sum += int(b)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	rawWriter.Write(h[:])
	rawWriter.Write(data)
	if pad := len(data) % 512; pad != 0 {
		rawWriter.Write(make([]byte, 512-pad))
	}
}

// paxRecords encodes PAX records ("LEN key=value\n", LEN counting itself).
func paxRecords(recs map[string]string) []byte {
	var out []byte
	for k, v := range recs {
		body := " " + k + "=" + v + "\n"
		n := len(body) + 1
		for len(fmt.Sprint(n))+len(body) != n {
			n++
		}
		out = append(out, fmt.Sprintf("%d%s", n, body)...)
	}
	return out
}

// rawTar writes a tar whose headers the test sets whole (PAX records included).
func rawTar(t *testing.T, path string, write func(tw *tar.Writer)) {
	t.Helper()
	var buf bytes.Buffer
	rawWriter = &buf
	tw := tar.NewWriter(&buf)
	write(tw)
	tw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A bundle makes import write at most the bytes it carries: a sparse entry's holes, a
// header that lies about its size, or hard links repeated a thousand times cannot turn
// kilobytes into gigabytes.
func TestImportWritesAtMostWhatTheBundleCarries(t *testing.T) {
	root := t.TempDir()
	in := openInstance(t, root)
	yml := []byte("name: evil\n")
	reg := func(tw *tar.Writer, name string, body []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write(body)
	}
	cases := map[string]func(tw *tar.Writer){
		"pax sparse 1GiB": func(tw *tar.Writer) {
			reg(tw, "runtime.yaml", yml)
			tw.Flush()
			// GNU sparse 1.0 in PAX (what GNU tar writes): the data starts with the map, one
			// region of 1 byte at the end; the records declare a real size of 1 GiB.
			sparseMap := []byte("1\n1073741823\n1\n")
			data := append(append(sparseMap, make([]byte, 512-len(sparseMap))...), 'x')
			rawEntry(tw, "PaxHeaders/big", tar.TypeXHeader, paxRecords(map[string]string{
				"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "big",
				"GNU.sparse.realsize": "1073741824"}))
			rawEntry(tw, "GNUSparseFile.0/big", tar.TypeReg, data)
		},
		"hard links": func(tw *tar.Writer) {
			reg(tw, "runtime.yaml", yml)
			reg(tw, "files/a", bytes.Repeat([]byte("a"), 1<<20))
			for i := range 1000 {
				tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("files/l%d", i), Typeflag: tar.TypeLink, Linkname: "files/a"})
			}
		},
	}
	for name, write := range cases {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "x.swrt")
			rawTar(t, f, write)
			fi, _ := os.Stat(f)
			// What import wrote is what is in the root now, plus what it removed: watch the
			// root's size while it runs.
			stop := make(chan int64)
			go func() {
				var peak int64
				for {
					select {
					case stop <- peak:
						return
					default:
					}
					peak = max(peak, dirBytes(root))
				}
			}()
			before := dirBytes(root)
			err := importErr(t, in, f)
			peak := <-stop
			if err == nil || ops.KindOf(err) != ops.KindInvalid || strings.Contains(err.Error(), "\n") {
				t.Fatalf("import of a %d-byte bundle: %v (kind %v), want one line of kind invalid", fi.Size(), err, ops.KindOf(err))
			}
			t.Logf("a %d-byte bundle: import wrote at most %d bytes, then: %v", fi.Size(), peak-before, err)
			if grew := peak - before; grew > 2*fi.Size()+(1<<20) {
				t.Fatalf("a %d-byte bundle made import write %d bytes", fi.Size(), grew)
			}
			noVersions(t, in)
			if m, _ := filepath.Glob(filepath.Join(root, "import-*")); len(m) != 0 {
				t.Fatalf("left %v", m)
			}
		})
	}
}

// What import reads from the bundle is bounded, and a name the file system cannot hold is
// the bundle's fault (exit 6), not a failure of swcli (exit 1).
func TestImportBoundsAndNames(t *testing.T) {
	root := t.TempDir()
	in := openInstance(t, root)
	big := "name: evil\n# " + strings.Repeat("x", 2<<20) + "\n"
	cases := []struct {
		name string
		es   []tarEntry
		want string
	}{
		{"big runtime.yaml", []tarEntry{{name: "runtime.yaml", body: big, typ: tar.TypeReg}}, "over the limit"},
		{"long component", []tarEntry{
			{name: "runtime.yaml", body: "name: evil\n", typ: tar.TypeReg},
			{name: "files/" + strings.Repeat("n", 300), body: "x", typ: tar.TypeReg},
		}, "path component of 300 bytes"},
		{"control characters in python", []tarEntry{
			{name: "_manifest.yaml", body: "environment:\n  python: \"3.11\\e[31m\\nboom\"\n", typ: tar.TypeReg},
			{name: "runtime.yaml", body: "name: evil\n", typ: tar.TypeReg},
		}, "is not a version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "x.swrt")
			writeTar(t, f, c.es)
			_, err := ops.ImportSwrt(context.Background(), in, ops.ImportRequest{File: f, Project: "self"})
			if err == nil || ops.KindOf(err) != ops.KindInvalid || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v (kind %v), want one line of kind invalid with %q", err, ops.KindOf(err), c.want)
			}
			noVersions(t, in)
		})
	}
}

// An import killed with -9 leaves its temporary directory; the next command that opens
// the root removes it, and never one that a living import still holds.
func TestImportTempsOfTheDeadAreSwept(t *testing.T) {
	root := t.TempDir()
	openInstance(t, root).Close()
	dead := filepath.Join(root, "import-123.tmp")
	os.MkdirAll(filepath.Join(dead, "raw", "big"), 0o700)
	os.WriteFile(filepath.Join(dead, ".held"), nil, 0o600)
	os.WriteFile(filepath.Join(dead, "raw", "big", "f"), make([]byte, 1<<20), 0o600)
	live := filepath.Join(root, "import-456.tmp")
	os.MkdirAll(live, 0o700)
	h, err := os.OpenFile(filepath.Join(live, ".held"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := syscall.Flock(int(h.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	in := openInstance(t, root) // any command
	in.Close()
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a dead import's temporary is still there: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("a living import's temporary was removed: %v", err)
	}
}
