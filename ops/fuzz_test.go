package ops

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/formats"
)

// Every decoder of bytes from outside is fuzzed: it returns an error or a value, never
// panics, and never allocates from what the input claims rather than what it holds.

func FuzzReadFrames(f *testing.F) {
	var buf bytes.Buffer
	api.WriteFrame(&buf, cas.Sum([]byte("a")), cas.Raw{Enc: cas.EncRaw, Len: 1, Data: []byte("a")})
	api.WriteFrame(&buf, cas.Hash{}, cas.Raw{Len: 1})
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Add(make([]byte, api.FrameHeader))
	hdr := make([]byte, api.FrameHeader)
	hdr[cas.HashSize+5] = 0xff // claims a huge chunk, sends nothing
	f.Add(hdr)
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := api.ReadFrames(bytes.NewReader(b), func(h cas.Hash, r cas.Raw) error {
			if int64(len(r.Data)) > api.MaxWireChunk {
				t.Fatalf("frame of %d bytes passed", len(r.Data))
			}
			n += len(r.Data)
			return nil
		})
		if err == nil && n > len(b) {
			t.Fatalf("read %d bytes of payload from %d bytes", n, len(b))
		}
	})
}

func FuzzDecodeHashes(f *testing.F) {
	f.Add(api.EncodeHashes([]cas.Hash{cas.Sum([]byte("a")), cas.Sum([]byte("b"))}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := api.DecodeHashes(b)
		if err == nil && !bytes.Equal(api.EncodeHashes(hs), b) {
			t.Fatal("hash list does not round-trip")
		}
	})
}

func FuzzParseRuntimeURI(f *testing.F) {
	for _, s := range []string{"mnist", "mnist/version/latest", "cloud://team/project/p/runtime/r/version/v1",
		"http://h:1/project/p/runtime/r", "local/project/self/runtime/x", "a/runtime/b/version/", "///", "cloud:///project//runtime/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseRuntimeURI(s)
		if err != nil {
			if KindOf(err) != KindUsage {
				t.Fatalf("%q: error of kind %v", s, KindOf(err))
			}
			return
		}
		// What parses prints back to a URI that parses to the same thing.
		again, err := ParseRuntimeURI(u.String())
		if err != nil || again.Name != u.Name || again.Version != u.Version || again.Project != u.Project && u.Project != "" {
			t.Fatalf("%q -> %q -> %+v, %v", s, u.String(), again, err)
		}
	})
}

func FuzzLoadRuntimeYAML(f *testing.F) {
	for _, s := range []string{"name: a\n", "name: a\nmode: conda\nenvironment: {python: '3.10'}\n",
		"name: a\ndependencies:\n  - pip: [numpy]\n  - files: [{src: a, dest: b}]\n",
		"name: &x a\nmode: *x\n", "a: [\n", "- 1\n", "name: a\nname: b\n"} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "runtime.yaml")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ry, _, err := formats.LoadRuntimeYAML(p, "")
		if err != nil {
			if k := KindOf(err); k != KindInvalid && k != KindNotFound {
				t.Fatalf("error of kind %v: %v", k, err)
			}
			return
		}
		if ry.Name == "" || (ry.Mode != "venv" && ry.Mode != "conda") {
			t.Fatalf("accepted %+v", ry)
		}
	})
}
