package ledger

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
)

// testdata/v1ledger is a ledger written by ledger schema v1 (keys.go): every event type,
// from a fixed clock. It is frozen: this test must keep reading it, and its head hash and
// export must stay what they were. A change that breaks it is a new schema version, with
// the fixture of the old one kept beside. SWCLI_WRITE_FIXTURES=1 writes it again, for a new
// version only.

const (
	frozenV1Head   = "blake3:842446c44826e6bb89af83f8e0c8e6a5092a87ea8ba416ac18ad24d635df19c5"
	frozenV1Export = "blake3:741802d1ef39abcba4176057c83d150299787c36c2d6b438062afaa00a73ea09"
)

func frozenEvents(t testing.TB) []Event {
	return []Event{
		ev(t, ProjectCreated, "self", "", "", EmptyData{}),
		ev(t, ProjectCreated, "team", "", "", EmptyData{}),
		ev(t, RuntimeCreated, "self", "app", "", CreatedData{Workdir: "/work/app", Mode: "venv", Python: "3.11"}),
		built(t, "app", "one"),
		built(t, "app", "two"),
		ev(t, RuntimeTagged, "self", "app", vid("one"), TagsData{Tags: []string{"prod", "stable"}}),
		ev(t, RuntimeUntagged, "self", "app", vid("one"), TagsData{Tags: []string{"stable"}}),
		ev(t, RuntimeRemoved, "self", "app", vid("two"), EmptyData{}),
		ev(t, RuntimeRecovered, "self", "app", vid("two"), EmptyData{}),
		ev(t, RuntimeCopied, "team", "app", vid("one"), CopiedData{BuiltData: BuiltData{Manifest: cas.Sum([]byte("one")), Size: 100, Files: 3, Mode: "venv", Python: "3.11"}, Source: "local/project/self", SourceActor: "tester@host", Tags: []string{"prod"}}),
		built(t, "app", "three"),
		ev(t, RuntimePurged, "self", "app", vid("three"), EmptyData{}),
		ev(t, ProjectRemoved, "team", "", "", EmptyData{}),
	}
}

func frozenClock() func() time.Time {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { clock = clock.Add(time.Second); return clock }
}

func TestWriteV1LedgerFixture(t *testing.T) {
	if os.Getenv("SWCLI_WRITE_FIXTURES") == "" {
		t.Skip("writes testdata/v1ledger; only for a new schema version")
	}
	out := filepath.Join("testdata", "v1ledger")
	os.RemoveAll(out)
	l, err := Open(ctx, out, Options{Hold: true, Now: frozenClock()})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range frozenEvents(t) {
		mustAppend(t, l, e)
	}
	h, _ := l.Head()
	var exp bytes.Buffer
	l.Export(ctx, &exp)
	l.Close()
	os.Remove(filepath.Join(out, "lock"))
	os.Remove(filepath.Join(out, "db", "LOCK"))
	t.Logf("head %s export %s", h.Hash, cas.Sum(exp.Bytes()))
}

func TestFrozenV1LedgerStillReads(t *testing.T) {
	fixture := filepath.Join("testdata", "v1ledger")
	if _, err := os.Stat(filepath.Join(fixture, "db")); err != nil {
		t.Fatalf("the v1 ledger fixture is missing: %v", err)
	}
	for _, hold := range []bool{false, true} {
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(fixture)); err != nil {
			t.Fatal(err)
		}
		l, err := Open(ctx, dir, Options{Hold: hold})
		if err != nil {
			t.Fatal(err)
		}
		verifyOK(t, l)
		h, err := l.Head()
		if err != nil || h.Seq != uint64(len(frozenEvents(t))) || h.Hash.String() != frozenV1Head {
			t.Fatalf("head %d %s (%v), want %d %s", h.Seq, h.Hash, err, len(frozenEvents(t)), frozenV1Head)
		}
		var exp bytes.Buffer
		if err := l.Export(ctx, &exp); err != nil || cas.Sum(exp.Bytes()).String() != frozenV1Export {
			t.Fatalf("export hashes to %s (%v), want %s", cas.Sum(exp.Bytes()), err, frozenV1Export)
		}
		if v, err := l.Resolve("self", "app", "prod"); err != nil || v.ID != vid("one") || v.VN != 0 {
			t.Fatalf("prod: %+v %v", v, err)
		}
		if v, err := l.Resolve("self", "app", "v1"); err != nil || v.ID != vid("two") {
			t.Fatalf("v1: %+v %v", v, err)
		}
		if _, err := l.Resolve("self", "app", "latest"); err == nil {
			t.Fatal("latest named a version after the latest one was purged")
		}
		if _, err := l.Project("team"); err == nil {
			t.Fatal("removed project team is still there")
		}
		// The same events appended today give the same chain.
		fresh, err := Open(ctx, t.TempDir(), Options{Hold: true, Now: frozenClock()})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range frozenEvents(t) {
			mustAppend(t, fresh, e)
		}
		if fh, _ := fresh.Head(); fh.Hash != h.Hash {
			t.Fatalf("the same events today end in %s, the fixture in %s: a changed encoding is a new schema version", fh.Hash, h.Hash)
		}
		fresh.Close()
		l.Close()
	}
}
