package ledger

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
)

// FuzzEventBody checks the round trip of an event's canonical body and that the fast
// decoder agrees with encoding/json whenever it accepts an input.
func FuzzEventBody(f *testing.F) {
	f.Add("alice@host", "/w/dir \"q\"\n\x01ü", "mnist", uint64(7), int64(1234567890123))
	f.Fuzz(func(t *testing.T, actor, workdir, runtime string, seq uint64, nanos int64) {
		e, err := New(RuntimeBuilt, "self", runtime, "v", BuiltData{Workdir: workdir, Manifest: cas.Sum([]byte(workdir))})
		if err != nil {
			t.Skip()
		}
		e.Actor, e.Seq, e.Time = actor, seq, time.Unix(0, nanos).UTC()
		e.Prev = cas.Sum([]byte(actor))
		body := e.Body()
		got, err := DecodeBody(body)
		if err != nil {
			t.Fatalf("decode of a canonical body: %v\n%s", err, body)
		}
		if string(got.Body()) != string(body) {
			t.Fatalf("re-encoding differs:\n%s\n%s", got.Body(), body)
		}
		// encoding/json reads it the same way (strings with invalid UTF-8 are replaced
		// by both).
		var x body2
		if err := json.Unmarshal(body, &x); err != nil {
			t.Fatalf("encoding/json rejects the canonical body: %v", err)
		}
		if x.Actor != got.Actor || x.Runtime != got.Runtime || x.Seq != got.Seq {
			t.Fatalf("fast decoder and encoding/json disagree: %+v vs %+v", got, x)
		}
		p1, ok := fastPayload(RuntimeBuilt, got.Data, map[string]string{}, &CopiedData{Source: "left over"})
		var p2 BuiltData
		if err := json.Unmarshal(got.Data, &p2); err != nil {
			t.Fatal(err)
		}
		p2.Host, p2.ToolVersion, p2.Workdir = "", "", "" // not read by apply, so not decoded
		if ok && !reflect.DeepEqual(p1, &p2) {
			t.Fatalf("payload decoders disagree: %+v vs %+v", p1, p2)
		}
	})
}

type body2 struct {
	Actor   string `json:"actor"`
	Runtime string `json:"runtime"`
	Seq     uint64 `json:"seq"`
}

// FuzzValidName checks the written-out name and built-in tag rules against the SPEC's regular expression.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"", "a", "_", "9a", "a9", "mnist-v1.2_x", "-a", ".a", "a b", "ä",
		strings.Repeat("a", 80), strings.Repeat("a", 81), "a\x00", "A-Z.z"} {
		f.Add(s)
	}
	f.Add("latest")
	f.Add("v12")
	f.Add("v")
	f.Add("v1a")
	re := regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.-]{0,79}$`)
	builtin := regexp.MustCompile(`^(latest|v[0-9]+)$`)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidName(s), re.MatchString(s); got != want {
			t.Fatalf("ValidName(%q) = %v, the SPEC's rule says %v", s, got, want)
		}
		if got, want := IsBuiltinTag(s), builtin.MatchString(s); got != want {
			t.Fatalf("IsBuiltinTag(%q) = %v, want %v", s, got, want)
		}
	})
}
