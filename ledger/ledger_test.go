package ledger

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/flock"
)

var ctx = context.Background()

// openTest opens a new ledger with a clock that ticks a second per event, on pebble, or on
// PostgreSQL when the test runs under onBoth's "postgres" subtest (backends_test.go).
func openTest(t testing.TB) (*Ledger, string) {
	t.Helper()
	dir := t.TempDir()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opt := Options{Hold: true, Now: func() time.Time { clock = clock.Add(time.Second); return clock }}
	var l *Ledger
	var err error
	if onPostgres(t) {
		l, err = OpenPostgres(ctx, newTestDatabase(t), opt)
	} else {
		l, err = Open(ctx, dir, opt)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, dir
}

// vid makes a version id the way ops does: base32 of a hash's first 20 bytes.
func vid(seed string) string {
	h := cas.Sum([]byte(seed))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h[:20]))
}

func ev(t testing.TB, typ Type, project, runtime, version string, payload any) Event {
	t.Helper()
	e, err := New(typ, project, runtime, version, payload)
	if err != nil {
		t.Fatal(err)
	}
	e.Actor, e.Instance = "tester@host", "local"
	return e
}

func mustAppend(t testing.TB, l *Ledger, es ...Event) []Event {
	t.Helper()
	out, err := l.Append(ctx, es...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func built(t testing.TB, runtime, seed string) Event {
	return ev(t, RuntimeBuilt, "self", runtime, vid(seed), BuiltData{Manifest: cas.Sum([]byte(seed)), Size: 100, Files: 3, Mode: "venv", Python: "3.11"})
}

func verifyOK(t *testing.T, l *Ledger) {
	t.Helper()
	rep, err := l.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("verify: %v", rep.Problems)
	}
}

func tagsOf(t *testing.T, l *Ledger, runtime, ref string) string {
	t.Helper()
	v, err := l.Resolve("self", runtime, ref)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(v.AllTags(), ",")
}

func TestEventEffects(t *testing.T) { onBoth(t, testEventEffects) }

func testEventEffects(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	mustAppend(t, l, ev(t, RuntimeCreated, "self", "mnist", "", CreatedData{Mode: "venv", Python: "3.11", Workdir: "/w"}))
	if rt, err := l.Runtime("self", "mnist"); err != nil || rt.Mode != "venv" {
		t.Fatalf("after created: %+v %v", rt, err)
	}
	a, b := vid("a"), vid("b")
	mustAppend(t, l, built(t, "mnist", "a"))
	mustAppend(t, l, built(t, "mnist", "b"))
	if got := tagsOf(t, l, "mnist", a); got != "v0" {
		t.Fatalf("first version's tags %q, want v0", got)
	}
	if got := tagsOf(t, l, "mnist", "latest"); got != "latest,v1" {
		t.Fatalf("latest's tags %q", got)
	}
	// Rebuilding identical content: no new vN, latest moves back.
	mustAppend(t, l, built(t, "mnist", "a"))
	if got := tagsOf(t, l, "mnist", a); got != "latest,v0" {
		t.Fatalf("rebuilt version's tags %q, want latest,v0", got)
	}
	mustAppend(t, l, ev(t, RuntimeTagged, "self", "mnist", b, TagsData{Tags: []string{"prod", "test"}}))
	mustAppend(t, l, ev(t, RuntimeTagged, "self", "mnist", a, TagsData{Tags: []string{"prod"}}))
	if got := tagsOf(t, l, "mnist", b); got != "v1,test" {
		t.Fatalf("prod did not move away from b: %q", got)
	}
	if v, _ := l.Resolve("self", "mnist", "prod"); v.ID != a {
		t.Fatal("prod does not name a")
	}
	mustAppend(t, l, ev(t, RuntimeUntagged, "self", "mnist", b, TagsData{Tags: []string{"test"}}))
	if got := tagsOf(t, l, "mnist", b); got != "v1" {
		t.Fatalf("after untag: %q", got)
	}
	mustAppend(t, l, ev(t, RuntimeRemoved, "self", "mnist", a, EmptyData{}))
	if _, err := l.Resolve("self", "mnist", "prod"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a removed version's tag resolved: %v", err)
	}
	vs, total, _ := l.Versions("self", "mnist", ListOptions{})
	if total != 1 || vs[0].ID != b {
		t.Fatalf("list after remove: %d versions", total)
	}
	_, total, _ = l.Versions("self", "mnist", ListOptions{ShowRemoved: true})
	if total != 2 {
		t.Fatalf("list --show-removed: %d versions, want 2", total)
	}
	mustAppend(t, l, ev(t, RuntimeRecovered, "self", "mnist", a, EmptyData{}))
	if v, err := l.Resolve("self", "mnist", "prod"); err != nil || v.ID != a {
		t.Fatalf("after recover prod resolves to %v, %v", v, err)
	}
	mustAppend(t, l, ev(t, RuntimePurged, "self", "mnist", a, EmptyData{}))
	if _, err := l.Resolve("self", "mnist", a); !errors.Is(err, ErrNotFound) {
		t.Fatalf("purged version resolves: %v", err)
	}
	if _, err := l.Append(ctx, ev(t, RuntimeRecovered, "self", "mnist", a, EmptyData{})); !errors.Is(err, ErrConflict) {
		t.Fatalf("recovering a purged version: %v, want ErrConflict", err)
	}
	// Whole-runtime remove and recover.
	mustAppend(t, l, ev(t, RuntimeRemoved, "self", "mnist", "", EmptyData{}))
	if _, total, _ := l.Versions("self", "mnist", ListOptions{}); total != 0 {
		t.Fatalf("after removing the runtime %d versions listed", total)
	}
	mustAppend(t, l, ev(t, RuntimeRecovered, "self", "mnist", "", EmptyData{}))
	if _, total, _ := l.Versions("self", "mnist", ListOptions{}); total != 1 {
		t.Fatalf("after recovering the runtime %d versions listed, want 1", total)
	}
	// Copied: a version arrives with its user tags.
	c := vid("c")
	mustAppend(t, l, ev(t, RuntimeCopied, "self", "mnist", c, CopiedData{
		BuiltData: BuiltData{Manifest: cas.Sum([]byte("c")), Size: 5, Mode: "venv"},
		Source:    "cloud://team/project/x/runtime/mnist/version/" + c, Tags: []string{"prod"}}))
	if got := tagsOf(t, l, "mnist", c); got != "latest,v2,prod" {
		t.Fatalf("copied version's tags %q", got)
	}
	mustAppend(t, l, ev(t, ProjectCreated, "gone", "", "", EmptyData{}))
	mustAppend(t, l, ev(t, ProjectRemoved, "gone", "", "", EmptyData{}))
	if _, err := l.Project("gone"); err == nil {
		t.Fatal("a removed project is still there")
	}
	// ledger.key: a key and nothing else; no projection changes.
	before, _ := l.Projects()
	mustAppend(t, l, ev(t, LedgerKeyed, "", "", "", KeyData{Key: "swcli/x+1234abcd+AQID"}))
	if after, _ := l.Projects(); len(after) != len(before) {
		t.Fatal("ledger.key changed the projects")
	}
	for _, bad := range []Event{ev(t, LedgerKeyed, "", "", "", KeyData{}), ev(t, LedgerKeyed, "self", "", "", KeyData{Key: "k"})} {
		if _, err := l.Append(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ledger.key %s: %v, want invalid", bad.Data, err)
		}
	}
	verifyOK(t, l)
	n := 0
	l.Log(ctx, Filter{Types: []Type{RuntimeTagged}}, func(Event) error { n++; return nil })
	if n != 2 {
		t.Fatalf("log of runtime.tagged gave %d events, want 2", n)
	}
	// Every event type went through apply above: a new type needs its effects here.
	seen := map[Type]bool{}
	l.Log(ctx, Filter{}, func(e Event) error { seen[e.Type] = true; return nil })
	for _, typ := range Types {
		if !seen[typ] {
			t.Errorf("event type %s is not exercised by this test", typ)
		}
	}
}

func TestAppendRefusesAndWritesNothing(t *testing.T) { onBoth(t, testAppendRefusesAndWritesNothing) }

func testAppendRefusesAndWritesNothing(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	head, _ := l.Head()
	bad := []Event{
		ev(t, RuntimeTagged, "self", "nope", vid("x"), TagsData{Tags: []string{"t"}}),
		ev(t, RuntimeBuilt, "nosuchproject", "r", vid("x"), BuiltData{}),
		ev(t, RuntimeBuilt, "self", "bad name!", vid("x"), BuiltData{}),
		ev(t, RuntimeBuilt, "self", "CON", vid("x"), BuiltData{}), // names are kept lowercase
		ev(t, ProjectCreated, "Team", "", "", EmptyData{}),
	}
	for _, e := range bad {
		// A good event before the bad one in the same call is not kept either.
		if _, err := l.Append(ctx, built(t, "ok", "fine"), e); err == nil {
			t.Fatalf("%s on %s/%s was accepted", e.Type, e.Project, e.Runtime)
		}
	}
	mustAppend(t, l, built(t, "r", "x"))
	if _, err := l.Append(ctx, ev(t, RuntimeTagged, "self", "r", vid("x"), TagsData{Tags: []string{"latest"}})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tagging latest by hand: %v", err)
	}
	if _, err := l.Append(ctx, ev(t, RuntimeCopied, "self", "r", vid("y"), CopiedData{Tags: []string{"v1"}})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a copy bringing a vN tag: %v", err)
	}
	after, _ := l.Head()
	if after.Seq != head.Seq+1 {
		t.Fatalf("head moved from %d to %d for one good event", head.Seq, after.Seq)
	}
	verifyOK(t, l)
}

func TestAppendIfConflict(t *testing.T) { onBoth(t, testAppendIfConflict) }

func testAppendIfConflict(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	h, _ := l.Head()
	mustAppend(t, l, built(t, "r", "1"))
	_, err := l.AppendIf(ctx, h.Seq, built(t, "r", "2"))
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Got != h.Seq+1 {
		t.Fatalf("append on a stale head: %v", err)
	}
	h, _ = l.Head()
	if _, err := l.AppendIf(ctx, h.Seq, built(t, "r", "2")); err != nil {
		t.Fatal(err)
	}
}

func TestResolvePrefixes(t *testing.T) { onBoth(t, testResolvePrefixes) }

func testResolvePrefixes(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	// Two seeds whose ids share their first MinPrefix characters, found by brute force.
	pre := map[string]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		seed := fmt.Sprint(i)
		if o, ok := pre[vid(seed)[:MinPrefix]]; ok {
			a, b = o, seed
		}
		pre[vid(seed)[:MinPrefix]] = seed
	}
	mustAppend(t, l, built(t, "r", a), built(t, "r", b), built(t, "r", "other"))
	var ae *AmbiguousError
	_, err := l.Resolve("self", "r", vid(a)[:MinPrefix])
	if !errors.As(err, &ae) || len(ae.Candidates) != 2 || !strings.Contains(err.Error(), vid(b)) {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if v, err := l.Resolve("self", "r", vid("other")[:MinPrefix]); err != nil || v.ID != vid("other") {
		t.Fatalf("unique prefix: %v", err)
	}
	if _, err := l.Resolve("self", "r", vid("other")[:MinPrefix-1]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("short prefix: %v, want not found", err)
	}
	if v, err := l.Resolve("self", "r", vid(a)); err != nil || v.ID != vid(a) {
		t.Fatalf("full id: %v", err)
	}
}

func TestTamperDetected(t *testing.T) { onBoth(t, testTamperDetected) }

func testTamperDetected(t *testing.T) {
	cases := map[string]func(t *testing.T, db writer) uint64{
		"edit payload": func(t *testing.T, db writer) uint64 {
			v := get(t, db, eventKey(5))
			v = []byte(strings.Replace(string(v), `"size":100`, `"size":999`, 1))
			set(t, db, eventKey(5), v)
			return 5
		},
		"edit payload and its hash": func(t *testing.T, db writer) uint64 {
			v := get(t, db, eventKey(5))
			body := []byte(strings.Replace(string(v[32:]), `"size":100`, `"size":999`, 1))
			h := cas.Sum(body)
			set(t, db, eventKey(5), append(h[:], body...))
			return 6
		},
		"delete an event": func(t *testing.T, db writer) uint64 {
			db.del(eventKey(4))
			return 4
		},
		"swap two events": func(t *testing.T, db writer) uint64 {
			a, b := get(t, db, eventKey(3)), get(t, db, eventKey(4))
			set(t, db, eventKey(3), b)
			set(t, db, eventKey(4), a)
			return 3
		},
		"edit a projection": func(t *testing.T, db writer) uint64 {
			set(t, db, tagKey("self", "r", "latest"), []byte(vid("0")))
			return 0
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			l, _ := openTest(t)
			mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
			for i := range 8 {
				mustAppend(t, l, built(t, "r", fmt.Sprint(i)))
			}
			verifyOK(t, l)
			var want uint64
			if err := l.be.write(ctx, func(w writer) error { want = tamper(t, w); return nil }); err != nil {
				t.Fatal(err)
			}
			rep, err := l.Verify(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 {
				t.Fatal("tampering went unnoticed")
			}
			if got := rep.Problems[0].Seq; got != want {
				t.Fatalf("first problem at event %d, want %d: %v", got, want, rep.Problems)
			}
		})
	}
}

func get(t *testing.T, db writer, k []byte) []byte {
	t.Helper()
	v, ok, err := db.get(k)
	if err != nil || !ok {
		t.Fatalf("get %x: %v (found %v)", k, err, ok)
	}
	return slices.Clone(v)
}

func set(t *testing.T, db writer, k, v []byte) {
	t.Helper()
	db.set(k, v)
}

func TestVerifyFindsMissingManifest(t *testing.T) { onBoth(t, testVerifyFindsMissingManifest) }

func testVerifyFindsMissingManifest(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}), built(t, "r", "x"))
	s, err := cas.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := l.Verify(ctx, s)
	if err != nil || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Detail, "manifest") {
		t.Fatalf("verify against an empty store: %v %v", rep.Problems, err)
	}
}

func TestReplayAt(t *testing.T) { onBoth(t, testReplayAt) }

func testReplayAt(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	evs := mustAppend(t, l, built(t, "r", "a"))
	mustAppend(t, l, built(t, "r", "b"))
	mustAppend(t, l, ev(t, RuntimeTagged, "self", "r", vid("b"), TagsData{Tags: []string{"prod"}}))
	snap, err := l.Replay(ctx, ReplayTo{Seq: evs[0].Seq})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := snap.Resolve("self", "r", "latest"); err != nil || v.ID != vid("a") {
		t.Fatalf("latest at seq %d: %v %v", evs[0].Seq, v, err)
	}
	byTime, err := l.Replay(ctx, ReplayTo{Time: evs[0].Time})
	if err != nil || byTime.Head.Seq != evs[0].Seq {
		t.Fatalf("replay to a time: head %d, %v", byTime.Head.Seq, err)
	}
	now, _ := l.Replay(ctx, ReplayTo{})
	if v, err := now.Resolve("self", "r", "prod"); err != nil || v.ID != vid("b") {
		t.Fatalf("prod now: %v", err)
	}
}

func TestHeldLedgerMakesOthersWaitAndSaysWhy(t *testing.T) {
	dir := t.TempDir()
	held, err := Open(ctx, dir, Options{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	told := make(chan flock.Holder, 1)
	c, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	_, err = Open(c, dir, Options{OnWait: func(h flock.Holder) { told <- h }})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second open: %v, want it to wait until the deadline", err)
	}
	select {
	case h := <-told:
		if h.PID != os.Getpid() || h.Command == "" {
			t.Fatalf("told holder %+v, want pid %d and its command", h, os.Getpid())
		}
	default:
		t.Fatal("the waiting open did not say so")
	}
	start := time.Now()
	_, err = Open(ctx, dir, Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, flock.ErrBusy) || time.Since(start) > 5*time.Second {
		t.Fatalf("open with a lock timeout: %v after %s, want flock.ErrBusy", err, time.Since(start))
	}
}

// PrepareWrite opens the ledger for an append to come and never waits for it: another
// handle (another process) finds it prepared by the first and waits for its release; the
// first appends through it.
func TestPrepareWriteHoldsUntilReleaseAndNeverWaits(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dir, Options{LockTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	release := a.PrepareWrite()
	start := time.Now()
	releaseB := b.PrepareWrite() // a has it: prepares nothing, at once
	releaseB()
	if time.Since(start) > time.Second {
		t.Fatalf("PrepareWrite waited %s for another handle", time.Since(start))
	}
	if _, err := b.Append(ctx, ev(t, ProjectCreated, "other", "", "", EmptyData{})); !errors.Is(err, flock.ErrBusy) {
		t.Fatalf("append by another handle while prepared: %v, want it to wait and give up", err)
	}
	mustAppend(t, a, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	release()
	mustAppend(t, b, ev(t, ProjectCreated, "other", "", "", EmptyData{}))
	if h, _ := a.Head(); h.Seq != 2 {
		t.Fatalf("head after both appends: %d", h.Seq)
	}
}

// A ledger that is not held is open only during a call: another handle on the same
// directory (another process, in practice) appends between two calls of the first, and
// the first sees it.
func TestWindowsLetOthersIn(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustAppend(t, a, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	mustAppend(t, b, ev(t, ProjectCreated, "other", "", "", EmptyData{}))
	ps, err := a.Projects()
	if err != nil || len(ps) != 2 {
		t.Fatalf("projects seen by the first handle: %v, %v", ps, err)
	}
	// A long read works on a checkpoint: appends go on while it runs.
	n := 0
	err = a.Log(ctx, Filter{}, func(Event) error {
		if n == 0 {
			mustAppend(t, b, ev(t, ProjectCreated, "third", "", "", EmptyData{}))
		}
		n++
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("log during an append: %d events, %v (want the 2 of its checkpoint)", n, err)
	}
	if h, _ := a.Head(); h.Seq != 3 {
		t.Fatalf("head after: %d", h.Seq)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), checkpointPrefix) {
			t.Fatalf("checkpoint %s left behind", e.Name())
		}
	}
}

func TestExportCheckedByScript(t *testing.T) { onBoth(t, testExportCheckedByScript) }

func testExportCheckedByScript(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	l, dir := openTest(t)
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	weird := ev(t, RuntimeCreated, "self", "r", "", CreatedData{Workdir: "/srv/dir \"quoted\"\n\tünïcode\x01<&>", Mode: "venv"})
	mustAppend(t, l, weird)
	for i := range 40 { // bodies over 1 KiB exercise blake3's chunk tree too
		e := built(t, "r", fmt.Sprint(i))
		if i == 7 {
			e = ev(t, RuntimeBuilt, "self", "r", vid("big"), BuiltData{Workdir: strings.Repeat("long/", 500), Mode: "venv"})
		}
		mustAppend(t, l, e)
	}
	out := filepath.Join(dir, "export.jsonl")
	f, _ := os.Create(out)
	if err := l.Export(ctx, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	script := filepath.Join("..", "scripts", "verify-ledger-export.py")
	res, err := exec.Command("python3", script, out).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(res), "ok: 42 events") {
		t.Fatalf("checker on a good export: %v\n%s", err, res)
	}
	b, _ := os.ReadFile(out)
	os.WriteFile(out, []byte(strings.Replace(string(b), `"size":100`, `"size":101`, 1)), 0o644)
	res, err = exec.Command("python3", script, out).CombinedOutput()
	if err == nil || !strings.Contains(string(res), "event 3:") {
		t.Fatalf("checker on an edited export: %v\n%s", err, res)
	}
}

// An export line is the body with "hash" in its sorted place, even when the payload holds
// a key that looks like where it goes.
func TestExportLineWithTrickyPayload(t *testing.T) { onBoth(t, testExportLineWithTrickyPayload) }

func testExportLineWithTrickyPayload(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	e := ev(t, RuntimeCreated, "self", "r", "", EmptyData{})
	e.Data = []byte(`{"mode":"venv","workdir":"w","z":{"a":1,"instance":2}}`) // a key like the one after "hash"
	out := mustAppend(t, l, e)
	line := out[0].ExportLine()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("export line is not JSON: %v: %s", err, line)
	}
	if m["hash"] != out[0].Hash.String() || m["instance"] != out[0].Instance {
		t.Fatalf("export line fields: hash %v, instance %v", m["hash"], m["instance"])
	}
	body := out[0].Body()
	dataEnd := bytes.Index(body, out[0].Data) + len(out[0].Data)
	if !bytes.HasPrefix(line, body[:dataEnd]) || !bytes.HasPrefix(line[dataEnd:], []byte(`,"hash":"`+out[0].Hash.String()+`","instance":`)) {
		t.Fatalf("hash is not right after data: %s", line)
	}
}

func TestResolveOrigin(t *testing.T) { onBoth(t, testResolveOrigin) }

// A version made elsewhere answers to the id it had there, after a restart and a replay too;
// a malformed origin is refused with nothing appended.
func testResolveOrigin(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	origin := "wqbfjzhqbcl3pzamsul3jd6ro36wv3o3izv5g5px"
	e := ev(t, RuntimeBuilt, "self", "r", vid("a"), BuiltData{Manifest: cas.Sum([]byte("a")), Size: 100, Files: 3, Mode: "venv", Python: "3.11", Origin: origin})
	mustAppend(t, l, e, built(t, "r", "b"))
	v, err := l.Resolve("self", "r", origin)
	if err != nil || v.ID != vid("a") || v.Origin != origin {
		t.Fatalf("resolve by origin: %+v, %v", v, err)
	}
	if _, err := l.Resolve("self", "other", origin); !errors.Is(err, ErrNotFound) {
		t.Fatalf("origin of another runtime: %v", err)
	}
	if v, err := l.Resolve("self", "r", vid("b")); err != nil || v.Origin != "" {
		t.Fatalf("a version without origin: %+v, %v", v, err)
	}
	verifyOK(t, l)
	h, _ := l.Head()
	for _, bad := range []string{"latest", "v1", "UPPERCASEID1", "a/../b1234", "short", vid("c")} {
		e := ev(t, RuntimeBuilt, "self", "r", vid("c"), BuiltData{Manifest: cas.Sum([]byte("c")), Mode: "venv", Origin: bad})
		if _, err := l.Append(ctx, e); !errors.Is(err, ErrInvalid) {
			t.Errorf("origin %q: %v, want invalid", bad, err)
		}
	}
	if h2, _ := l.Head(); h2.Seq != h.Seq {
		t.Fatalf("refused origins appended: head %d, was %d", h2.Seq, h.Seq)
	}
}

// An export read back checks itself: every event passes as written; an edited, dropped or
// swapped line is named.
func TestReadExport(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}), built(t, "r", "1"), built(t, "r", "2"), built(t, "r", "3"))
	var b bytes.Buffer
	if err := l.Export(ctx, &b); err != nil {
		t.Fatal(err)
	}
	n := 0
	head, err := ReadExport(bytes.NewReader(b.Bytes()), func(Event) error { n++; return nil })
	want, _ := l.Head()
	if err != nil || n != 4 || head != want {
		t.Fatalf("read %d events to %v (%v), want 4 to %v", n, head, err, want)
	}
	lines := strings.SplitAfter(b.String(), "\n")
	for name, c := range map[string]struct {
		text, says string
	}{
		"edited":  {strings.Replace(b.String(), `"size":100`, `"size":999`, 1), "event 2: its hash is not its body's"},
		"dropped": {lines[0] + lines[2] + lines[3], "event 3 follows event 1"},
		"swapped": {lines[0] + lines[2] + lines[1] + lines[3], "event 3 follows event 1"},
		"cut":     {b.String()[:b.Len()-5], "cut short"},
	} {
		if _, err := ReadExport(strings.NewReader(c.text), func(Event) error { return nil }); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %q", name, err, c.says)
		}
	}
}

func TestMerkleTree(t *testing.T) { onBoth(t, testMerkleTree) }

// The tree grows with the log: its root is the events' (recomputed by verify), inclusion
// and consistency proofs check with tlog, and a changed tree hash is reported.
func testMerkleTree(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	for i := range 20 {
		mustAppend(t, l, built(t, "r", fmt.Sprint(i)))
	}
	tr, err := l.TreeHead(ctx)
	if err != nil || tr.Size != 21 {
		t.Fatalf("tree head: %+v %v", tr, err)
	}
	verifyOK(t, l)
	for _, seq := range []uint64{1, 7, 21} {
		e, _ := l.Event(seq)
		p, err := l.ProveInclusion(ctx, seq, tr.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, int64(tr.Size), tr.Hash, int64(seq-1), tlog.RecordHash(e.ExportLine())); err != nil {
			t.Fatalf("inclusion of %d: %v", seq, err)
		}
		other, _ := l.Event(seq%21 + 1)
		if tlog.CheckRecord(p, int64(tr.Size), tr.Hash, int64(seq-1), tlog.RecordHash(other.ExportLine())) == nil {
			t.Fatalf("the proof of %d holds for event %d", seq, other.Seq)
		}
	}
	old, _ := l.TreeHashAt(ctx, 9)
	p, err := l.ProveConsistency(ctx, 9, tr.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(p, int64(tr.Size), tr.Hash, 9, old); err != nil {
		t.Fatalf("consistency 9 → 21: %v", err)
	}
	var forged tlog.Hash
	forged[0] = 1
	if tlog.CheckTree(p, int64(tr.Size), tr.Hash, 9, forged) == nil {
		t.Fatal("consistency holds for a forged old root")
	}
	// A tree hash changed in the database: verify names it.
	// (the hash of the first 16 events' subtree: it feeds the root)
	if err := l.be.write(ctx, func(w writer) error {
		set(t, w, treeKey(tlog.StoredHashIndex(4, 0)), make([]byte, 32))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := l.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0].Detail, "Merkle tree") {
		t.Fatalf("a changed tree hash: %+v", rep.Problems)
	}
}

func TestEditedHistoryFailsConsistency(t *testing.T) { onBoth(t, testEditedHistoryFailsConsistency) }

// A database edited in place between two looks of a client (an event changed and its
// tree rebuilt, or events dropped): the new head is not a consistent extension of the one
// the client holds, on either backend. (ops.TestClientsRefuseRewrittenHistory shows the
// client refusing such a head; this is the edit itself, in the engine's own rows.)
func testEditedHistoryFailsConsistency(t *testing.T) {
	edits := map[string]func(t *testing.T, w writer, head uint64){
		"an event changed, its tree rebuilt": func(t *testing.T, w writer, head uint64) {
			v := get(t, w, eventKey(5))
			body := []byte(strings.Replace(string(v[32:]), `"size":100`, `"size":999`, 1))
			h := cas.Sum(body)
			set(t, w, eventKey(5), append(h[:], body...))
			w.set([]byte{keyTreeSize}, binary.BigEndian.AppendUint64(nil, 4)) // the tree from event 5 on made again
			if _, err := catchUpTree(w, head, 0); err != nil {
				t.Fatal(err)
			}
		},
		"the last events dropped": func(t *testing.T, w writer, head uint64) {
			for seq := head - 2; seq <= head; seq++ {
				w.del(eventKey(seq))
			}
			prev, err := event(w, head-3)
			if err != nil {
				t.Fatal(err)
			}
			w.set([]byte{keyHead}, append(binary.BigEndian.AppendUint64(nil, prev.Seq), prev.Hash[:]...))
			w.set([]byte{keyTreeSize}, binary.BigEndian.AppendUint64(nil, head-3))
		},
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			l, _ := openTest(t)
			mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
			for i := range 10 {
				mustAppend(t, l, built(t, "r", fmt.Sprint(i)))
			}
			seen, err := l.TreeHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.be.write(ctx, func(w writer) error { edit(t, w, seen.Size); return nil }); err != nil {
				t.Fatal(err)
			}
			// The server goes on: more events, a head larger than the one seen.
			for i := range 5 {
				mustAppend(t, l, built(t, "r", fmt.Sprint("after", i)))
			}
			now, err := l.TreeHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if now.Size <= seen.Size {
				t.Fatalf("the edited ledger's tree has %d events, the seen one %d", now.Size, seen.Size)
			}
			proof, err := l.ProveConsistency(ctx, seen.Size, now.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(proof, int64(now.Size), now.Hash, int64(seen.Size), seen.Hash); err == nil {
				t.Fatalf("the edited history proves consistent with the head the client saw")
			}
		})
	}
}

// Open reads the head in the window it opens anyway (ops.Open uses it), and a head it cannot
// read does not keep the ledger from opening: verify is there to name it.
func TestOpenReadsTheHeadOnce(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := l.OpenHead(); !ok || h.Seq != 0 {
		t.Fatalf("a new ledger's head at open: %+v, %v", h, ok)
	}
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}), ev(t, RuntimeCreated, "self", "r", "", EmptyData{}))
	want, err := l.Head()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := l.OpenHead(); !ok || h != want || !l.treeOK.Load() {
		t.Fatalf("head at open %+v (%v), want %+v; tree complete %v", h, ok, want, l.treeOK.Load())
	}
	l.Close()
	// A damaged head: the ledger opens, OpenHead declines, Head names the damage.
	db, err := pebble.Open(filepath.Join(dir, "db"), &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte{keyHead}, []byte("short"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	l, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("a ledger with a damaged head did not open: %v", err)
	}
	defer l.Close()
	if _, ok := l.OpenHead(); ok {
		t.Fatal("OpenHead answered for a damaged head")
	}
	if _, err := l.Head(); err == nil {
		t.Fatal("Head read a damaged head without an error")
	}
}

// Open reads the projects it is asked for in its window (a build checks its project there),
// answers as Project did then, and answers nothing once this process has appended: a new
// instance's "self" is made after the open.
func TestOpenReadsProjects(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(ctx, dir, Options{Projects: []string{"self"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, read, err := l.OpenProject("self"); !read || !errors.Is(err, ErrNotFound) {
		t.Fatalf("a new ledger's project at open: read %v, err %v (want not found)", read, err)
	}
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	if _, read, _ := l.OpenProject("self"); read {
		t.Fatal("OpenProject answered with what Open read after an append")
	}
	l.Close()
	l, err = Open(ctx, dir, Options{Projects: []string{"self", "team"}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if p, read, err := l.OpenProject("self"); !read || err != nil || p.Name != "self" {
		t.Fatalf("project self at open: %+v, read %v, err %v", p, read, err)
	}
	if _, read, err := l.OpenProject("team"); !read || !errors.Is(err, ErrNotFound) {
		t.Fatalf("a missing project at open: read %v, err %v (want not found)", read, err)
	}
	if _, read, _ := l.OpenProject("other"); read {
		t.Fatal("OpenProject answered for a project Open was not asked to read")
	}
}
