package cas

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func FuzzHashText(f *testing.F) {
	f.Add([]byte("content"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := Sum(data)
		got, err := ParseHash(h.String())
		if err != nil || got != h {
			t.Fatalf("round trip of %s: %v", h, err)
		}
		// Arbitrary text either fails or parses to a hash that formats back to it.
		if p, err := ParseHash(string(data)); err == nil && p.String() != string(data) {
			t.Fatalf("%q parsed but formats as %s", data, p)
		}
	})
}

func FuzzManifestDecode(f *testing.F) {
	m := &Manifest{Entries: []Entry{
		{Path: "a", Kind: KindDir, Mode: 0o755},
		{Path: "a/b", Kind: KindFile, Mode: 0o644, Size: 3, Chunks: []Hash{Sum([]byte("abc"))}},
		{Path: "a/c", Kind: KindLink, Mode: 0o777, Target: "../x"},
	}}
	f.Add(m.Encode())
	f.Add([]byte(manifestMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		sm, serr := streamed(b)
		if (err == nil) != (serr == nil) {
			t.Fatalf("decoded whole: %v; as a stream: %v", err, serr)
		}
		if err != nil {
			return
		}
		if !slices.EqualFunc(m.Entries, sm.Entries, entryEqual) {
			t.Fatal("the stream gives other entries than the decoded manifest")
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatal("a decoded manifest does not re-encode to its input")
		}
		for _, e := range m.Entries {
			if ValidPath(e.Path) != nil {
				t.Fatalf("decoded an invalid path %q", e.Path)
			}
		}
	})
}

func FuzzChunkerReassembles(f *testing.F) {
	f.Add([]byte("x"), uint16(1))
	f.Fuzz(func(t *testing.T, seed []byte, reps uint16) {
		data := bytes.Repeat(append(seed, byte(reps)), int(reps)%5000+1)
		var out []byte
		for rest := data; len(rest) > 0; {
			n := Cut(rest)
			if n <= 0 || n > MaxChunk {
				t.Fatalf("cut %d", n)
			}
			out = append(out, rest[:n]...)
			rest = rest[n:]
		}
		if !bytes.Equal(out, data) {
			t.Fatal("chunks do not reassemble")
		}
	})
}

// FuzzVerifyGroup: a group from outside is verified or refused, never trusted, and never
// inflated past what it declares.
func FuzzVerifyGroup(f *testing.F) {
	hs := []Hash{Sum([]byte("one")), Sum([]byte("two"))}
	content, _, _ := groupContent(append(make([]byte, groupHeadroom), "onetwo"...), []int64{3, 3}, nil)
	enc, _ := codecs()
	f.Add(groupName(hs).String(), int64(len(content)), enc.EncodeAll(content, nil))
	f.Add("blake3:"+strings.Repeat("0", 64), int64(1<<30), []byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, name string, n int64, data []byte) {
		h, err := ParseHash(name)
		if err != nil {
			return
		}
		g, err := VerifyGroup(h, Raw{Enc: EncGroup, Len: n, Data: data})
		checked, _, cerr := CheckGroup(h, Raw{Enc: EncGroup, Len: n, Data: data}, []byte("scratch in use"))
		if (err == nil) != (cerr == nil) {
			t.Fatalf("VerifyGroup says %v, CheckGroup %v", err, cerr)
		}
		if err != nil {
			return
		}
		if !slices.Equal(g.Chunks(), checked.Chunks()) {
			t.Fatal("VerifyGroup and CheckGroup found different chunks")
		}
		if len(g.Chunks()) == 0 || groupName(g.Chunks()) != h {
			t.Fatalf("accepted a group of %d chunks named %s", len(g.Chunks()), h)
		}
		for _, c := range g.Chunks() {
			if d, ok := g.Chunk(c); !ok || Sum(d) != c {
				t.Fatal("a chunk of an accepted group does not match its hash")
			}
		}
	})
}

// streamed reads an encoded manifest as a ManifestStream, into a Manifest.
func streamed(b []byte) (*Manifest, error) {
	s := &ManifestStream{hash: Sum(b), raw: Raw{Enc: EncRaw, Len: int64(len(b)), Data: b}}
	if err := s.check(false); err != nil {
		return nil, err
	}
	m := &Manifest{}
	err := s.Each(func(e *Entry) error { m.Entries = append(m.Entries, *e); return nil })
	return m, err
}

func entryEqual(a, b Entry) bool {
	return a.Path == b.Path && a.Kind == b.Kind && a.Mode == b.Mode && a.Size == b.Size &&
		a.Target == b.Target && slices.Equal(a.Chunks, b.Chunks)
}
