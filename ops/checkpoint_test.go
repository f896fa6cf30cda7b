package ops_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/client"
	"github.com/swcli/swcli/ops/server"
)

// A client pins the server's key at first contact and, at every contact after, takes a
// checkpoint only if it extends the last one it saw: a history cut short, rewritten at the
// same size, or forked and grown is refused with both checkpoints named; an honest one
// that grew passes. The signature is checked with the pinned key: another key is refused.
func TestClientsRefuseRewrittenHistory(t *testing.T) {
	c := newCloud(t)
	in := openServerInstance(t, c.root)
	srv := httptest.NewServer(server.NewServer(in).Handler())
	defer srv.Close()
	r := client.NewRemote("team", srv.URL, c.tokens["alice"])
	key, cp1, err := ops.FollowLedger(ctx, r, "", "")
	if err != nil || key == "" || cp1.Size == 0 {
		t.Fatalf("first contact: %q %+v %v", key, cp1, err)
	}
	// The history grows: the next contact checks the consistency proof and passes.
	grow := func(in *ops.Instance, names ...string) {
		for _, n := range names {
			e, _ := ledger.New(ledger.ProjectCreated, n, "", "", ledger.EmptyData{})
			if _, err := in.Ledger.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	grow(in, "p1", "p2")
	_, cp2, err := ops.FollowLedger(ctx, r, key, cp1.Note)
	if err != nil || cp2.Size != cp1.Size+2 {
		t.Fatalf("an honest growth: %+v %v", cp2, err)
	}
	// Another history signed with the same key: the server's database replaced (by a copy
	// of its key and users, and other events), as a rewrite, a rollback or a fork would be.
	forkRoot := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(c.root, ops.LedgerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(forkRoot, ops.LedgerKeyFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(forkRoot, "auth.json"), must(os.ReadFile(filepath.Join(c.root, "auth.json"))), 0o600)
	fork := openServerInstance(t, forkRoot)
	forkSrv := httptest.NewServer(server.NewServer(fork).Handler())
	defer forkSrv.Close()
	fr := client.NewRemote("team", forkSrv.URL, c.tokens["alice"])
	check := func(what, says string) {
		t.Helper()
		_, _, err := ops.FollowLedger(ctx, fr, key, cp2.Note)
		if err == nil || ops.KindOf(err) != ops.KindCorrupt || !strings.Contains(err.Error(), says) ||
			!strings.Contains(err.Error(), cp2.String()) {
			t.Fatalf("%s: %v, want refused (%q, naming the checkpoint seen)", what, err, says)
		}
	}
	// (its first events: the key, then others than the server's)
	check("a history cut short", "shorter")
	grow(fork, "x1")
	for n := mustSize(t, fork); n < cp2.Size; n = mustSize(t, fork) {
		grow(fork, "x"+strings.Repeat("y", int(n)))
	}
	check("rewritten at the same size", "another root")
	grow(fork, "x2", "x3")
	check("forked and grown", "consistency proof fails")
	// Another key: the signature does not verify with the pinned one.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "auth.json"), must(os.ReadFile(filepath.Join(c.root, "auth.json"))), 0o600)
	oi := openServerInstance(t, other)
	os2 := httptest.NewServer(server.NewServer(oi).Handler())
	defer os2.Close()
	if _, _, err := ops.FollowLedger(ctx, client.NewRemote("team", os2.URL, c.tokens["alice"]), key, ""); ops.KindOf(err) != ops.KindCorrupt || !strings.Contains(err.Error(), "pinned key") {
		t.Fatalf("another key: %v", err)
	}
}

func mustSize(t *testing.T, in *ops.Instance) uint64 {
	tr, err := in.Ledger.TreeHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Size
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// Rotation: the new key signs, the ledger records both, and a client pinned to the old key
// refuses until the new one is pinned explicitly.
func TestLedgerKeyRotation(t *testing.T) {
	c := newCloud(t)
	in := openServerInstance(t, c.root)
	srv := httptest.NewServer(server.NewServer(in).Handler())
	defer srv.Close()
	r := client.NewRemote("team", srv.URL, c.tokens["alice"])
	key, cp, err := ops.FollowLedger(ctx, r, "", "")
	if err != nil {
		t.Fatal(err)
	}
	old, nk, err := ops.RotateLedgerKey(ctx, in)
	if err != nil || old != key || nk == key {
		t.Fatalf("rotate: %q %q %v", old, nk, err)
	}
	if _, _, err := ops.FollowLedger(ctx, r, key, cp.Note); ops.KindOf(err) != ops.KindCorrupt {
		t.Fatalf("the old pin after a rotation: %v", err)
	}
	if _, cp2, err := ops.FollowLedger(ctx, r, nk, cp.Note); err != nil || cp2.Size <= cp.Size {
		t.Fatalf("the new pin: %+v %v", cp2, err)
	}
	n := 0
	in.Ledger.Log(ctx, ledger.Filter{Types: []ledger.Type{ledger.LedgerKeyed}}, func(e ledger.Event) error {
		var d ledger.KeyData
		e.Decode(&d)
		if n == 1 && (d.Key != nk || d.Previous != key) {
			t.Fatalf("rotation recorded as %+v", d)
		}
		n++
		return nil
	})
	if n != 2 {
		t.Fatalf("%d ledger.key events, want 2", n)
	}
	if fi, err := os.Stat(filepath.Join(c.root, ops.LedgerKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
}

// Witnesses: one cosigns what the server shows; a client that requires it takes the
// server's history, and a fork served to it (the witness's cosignature copied along) is
// refused: the witness vouched for another history.
func TestWitnessesCatchAFork(t *testing.T) {
	c := newCloud(t)
	in := openServerInstance(t, c.root)
	srv := httptest.NewServer(server.NewServer(in).Handler())
	defer srv.Close()
	witness := openInstance(t, t.TempDir())
	wkey, err := ops.LedgerKey(ctx, witness)
	if err != nil {
		t.Fatal(err)
	}
	w := client.NewRemote("team", srv.URL, c.tokens["bob"]) // any user may witness
	key, cp, err := ops.FollowLedger(ctx, w, "", "")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := ops.Cosign(ctx, witness, cp, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.PostCosignature(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if _, err := w.PostCosignature(ctx, []byte(cp.Note)); ops.KindOf(err) != ops.KindInvalid {
		t.Fatalf("a note with no witness signature: %v", err)
	}
	e, _ := ledger.New(ledger.ProjectCreated, "later", "", "", ledger.EmptyData{})
	if _, err := in.Ledger.Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	alice := client.NewRemote("team", srv.URL, c.tokens["alice"])
	_, now, err := ops.FollowLedger(ctx, alice, key, "")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ops.CheckWitnesses(ctx, alice, key, now, []string{wkey}, 1); err != nil || n != 1 {
		t.Fatalf("a history the witness vouched for, grown since: %d %v", n, err)
	}
	// The fork: the server's key and users, its cosignatures file, another history.
	forkRoot := t.TempDir()
	for _, f := range []string{ops.LedgerKeyFile, "auth.json", ops.CosignaturesFile} {
		os.WriteFile(filepath.Join(forkRoot, f), must(os.ReadFile(filepath.Join(c.root, f))), 0o600)
	}
	fork := openServerInstance(t, forkRoot)
	for _, n := range []string{"f1", "f2", "f3", "f4"} {
		e, _ := ledger.New(ledger.ProjectCreated, n, "", "", ledger.EmptyData{})
		if _, err := fork.Ledger.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	forkSrv := httptest.NewServer(server.NewServer(fork).Handler())
	defer forkSrv.Close()
	victim := client.NewRemote("team", forkSrv.URL, c.tokens["alice"])
	_, fcp, err := ops.FollowLedger(ctx, victim, key, "") // a new client: nothing seen before
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.CheckWitnesses(ctx, victim, key, fcp, []string{wkey}, 1); ops.KindOf(err) != ops.KindCorrupt || !strings.Contains(err.Error(), "0 of the 1 witnesses") {
		t.Fatalf("a fork the witness never saw: %v", err)
	}
}
