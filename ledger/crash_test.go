package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const crashChildEnv = "SWCLI_LEDGER_CRASH_CHILD"

// crashEvent is the i-th event the child appends: deterministic, so that the parent knows
// what a prefix must hold.
func crashEvent(t testing.TB, i int) Event {
	if i%5 == 4 {
		return ev(t, RuntimeTagged, "self", "r", vid(fmt.Sprint(i-1)), TagsData{Tags: []string{"t"}})
	}
	return built(t, "r", fmt.Sprint(i))
}

func TestLedgerCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestLedgerCrash")
	}
	l, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := l.Head()
	if h.Seq == 0 {
		mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
		h.Seq = 1
	}
	for i := int(h.Seq) - 1; ; i++ {
		mustAppend(t, l, crashEvent(t, i))
	}
}

// TestLedgerCrash kills a child that appends events at random moments; each time the
// ledger must open, verify, and hold exactly a prefix of what the child meant to append.
func TestLedgerCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; CI runs it")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLedgerCrashChild$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()

		l, err := Open(ctx, dir, Options{Hold: true})
		if err != nil {
			t.Fatalf("round %d: open after kill: %v", round, err)
		}
		verifyOK(t, l)
		h, _ := l.Head()
		for seq := uint64(2); seq <= h.Seq; seq++ {
			got, err := l.Event(seq)
			if err != nil {
				t.Fatal(err)
			}
			want := crashEvent(t, int(seq)-2)
			if got.Type != want.Type || got.Version != want.Version || string(got.Data) != string(want.Data) {
				t.Fatalf("round %d: event %d is %s %s, want %s %s", round, seq, got.Type, got.Version, want.Type, want.Version)
			}
		}
		t.Logf("round %d: %d events, verified", round, h.Seq)
		l.Close()
	}
}

// TestUnreadableCheckpointFallsBack: a checkpoint that cannot be opened (a stale one of a
// killed process whose pid this process reuses, or one damaged some other way) does not
// make log, export or verify fail: they read in a window instead.
func TestUnreadableCheckpointFallsBack(t *testing.T) {
	dir := t.TempDir()
	var said []string
	l, err := Open(context.Background(), dir, Options{OnError: func(s string) { said = append(said, s) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e, _ := New(ProjectCreated, "p", "", "", EmptyData{})
	if _, err := l.Append(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	afterCheckpoint = func(db string) {
		ms, _ := filepath.Glob(filepath.Join(db, "MANIFEST-*"))
		for _, m := range ms {
			os.WriteFile(m, []byte("torn"), 0o644)
		}
	}
	defer func() { afterCheckpoint = nil }()
	n := 0
	if err := l.Log(context.Background(), Filter{}, func(Event) error { n++; return nil }); err != nil {
		t.Fatalf("log with an unreadable checkpoint: %v", err)
	}
	if n != 1 || len(said) != 1 {
		t.Fatalf("log saw %d events (want 1), said %v", n, said)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, checkpointPrefix+"*")); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}
