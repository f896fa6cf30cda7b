package bench

import (
	"context"
	"encoding/base32"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
)

var bctx = context.Background()

func vid(seed string) string {
	h := cas.Sum([]byte(seed))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h[:20]))
}

func buildEv(b testing.TB, runtime, seed string) ledger.Event {
	e, err := ledger.New(ledger.RuntimeBuilt, "self", runtime, vid(seed), ledger.BuiltData{
		Manifest: cas.Sum([]byte(seed)), Size: 472_000_000, Files: 14046, Mode: "venv", Python: "3.11",
		Host: "laptop", ToolVersion: "0.1.0", Workdir: "/home/user/project/" + runtime})
	if err != nil {
		b.Fatal(err)
	}
	e.Actor, e.Instance = "user@laptop", "local"
	return e
}

func openLedger(b testing.TB, dir string, noSync bool) *ledger.Ledger {
	l, err := ledger.Open(bctx, dir, ledger.Options{NoSync: noSync, Hold: true})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func initProject(b testing.TB, l *ledger.Ledger) {
	e, _ := ledger.New(ledger.ProjectCreated, "self", "", "", ledger.EmptyData{})
	if _, err := l.Append(bctx, e); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppendSynced appends one event per synced batch: the rate of builds, tags and
// removes one process can record.
func BenchmarkAppendSynced(b *testing.B) {
	l := openLedger(b, b.TempDir(), false)
	defer l.Close()
	initProject(b, l)
	b.ResetTimer()
	for i := range b.N {
		if _, err := l.Append(bctx, buildEv(b, "r", fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer() // what follows (the deferred close) is not what is measured
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendBatched appends 1000 events per synced batch (copy of a whole project).
func BenchmarkAppendBatched(b *testing.B) {
	l := openLedger(b, b.TempDir(), false)
	defer l.Close()
	initProject(b, l)
	b.ResetTimer()
	n := 0
	for range b.N {
		evs := make([]ledger.Event, 1000)
		for j := range evs {
			evs[j] = buildEv(b, fmt.Sprint("r", j%50), fmt.Sprint(n))
			n++
		}
		if _, err := l.Append(bctx, evs...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer() // what follows (the deferred close) is not what is measured
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

var (
	bigOnce sync.Once
	bigDir  string
)

// bigLedger is a ledger of 1M events: builds of 1,000 runtimes with tags, removes and
// recovers between them, made once per run.
func bigLedger(b *testing.B) string {
	bigOnce.Do(func() {
		if d := os.Getenv("SWCLI_BENCH_LEDGER"); d != "" { // a ledger this benchmark made before
			bigDir = d
			return
		}
		dir, err := os.MkdirTemp("", "swcli-ledger-1m-")
		if err != nil {
			b.Fatal(err)
		}
		l := openLedger(b, dir, true)
		defer l.Close()
		initProject(b, l)
		n := 1
		for n < 1_000_000 {
			evs := make([]ledger.Event, 0, 1000)
			for len(evs) < 1000 {
				rt := fmt.Sprint("rt", (n/10)%1000) // ten events in a row on one runtime
				seed := fmt.Sprint(n)
				switch n % 10 {
				case 7:
					e, _ := ledger.New(ledger.RuntimeTagged, "self", rt, vid(fmt.Sprint(n-3)), ledger.TagsData{Tags: []string{"prod"}})
					evs = append(evs, e)
				case 8:
					e, _ := ledger.New(ledger.RuntimeRemoved, "self", rt, vid(fmt.Sprint(n-2)), ledger.EmptyData{})
					evs = append(evs, e)
				case 9:
					e, _ := ledger.New(ledger.RuntimeRecovered, "self", rt, vid(fmt.Sprint(n-3)), ledger.EmptyData{})
					evs = append(evs, e)
				default:
					evs = append(evs, buildEv(b, rt, seed))
				}
				n++
			}
			if _, err := l.Append(bctx, evs...); err != nil {
				b.Fatal(err)
			}
		}
		bigDir = dir
	})
	return bigDir
}

// BenchmarkReplay1M rebuilds every projection from 1M events. Target ≤ 1.5 s (issue 24).
func BenchmarkReplay1M(b *testing.B) {
	dir := bigLedger(b)
	l := openLedger(b, dir, true)
	defer l.Close()
	b.ResetTimer()
	for range b.N {
		snap, err := l.Replay(bctx, ledger.ReplayTo{})
		if err != nil {
			b.Fatal(err)
		}
		if snap.Head.Seq < 1_000_000 {
			b.Fatalf("replayed %d events", snap.Head.Seq)
		}
	}
	b.StopTimer() // what follows (the deferred close) is not what is measured
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/replay")
}

// tenK is a ledger where one runtime has 10k versions.
func tenK(b *testing.B) *ledger.Ledger {
	l := openLedger(b, b.TempDir(), true)
	initProject(b, l)
	for i := 0; i < 10_000; i += 1000 {
		evs := make([]ledger.Event, 1000)
		for j := range evs {
			evs[j] = buildEv(b, "mnist", fmt.Sprint(i+j))
		}
		if _, err := l.Append(bctx, evs...); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkList10k lists a runtime with 10k versions. Target ≤ 20 ms.
func BenchmarkList10k(b *testing.B) {
	l := tenK(b)
	defer l.Close()
	b.ResetTimer()
	for range b.N {
		vs, total, err := l.Versions("self", "mnist", ledger.ListOptions{})
		if err != nil || total != 10_000 || len(vs) != 10_000 {
			b.Fatalf("%d versions, %v", total, err)
		}
	}
	b.StopTimer() // what follows (the deferred close) is not what is measured
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/list")
}

// BenchmarkResolvePrefix resolves a 6-character prefix among 10k versions. Target ≤ 1 ms.
func BenchmarkResolvePrefix(b *testing.B) {
	l := tenK(b)
	defer l.Close()
	prefixes := make([]string, 100)
	for i := range prefixes {
		prefixes[i] = vid(fmt.Sprint(i * 97))[:6]
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := l.Resolve("self", "mnist", prefixes[i%len(prefixes)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer() // what follows (the deferred close) is not what is measured
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/resolve")
}

// BenchmarkProofs1M makes an inclusion proof of a random event and a consistency proof from
// a random older size in a ledger of 1M events (the tree built once, as an append would),
// and reports their sizes: what a client or an auditor fetches per check.
func BenchmarkProofs1M(b *testing.B) {
	dir := bigLedger(b)
	l := openLedger(b, dir, true)
	defer l.Close()
	start := time.Now()
	t, err := l.TreeHead(bctx) // a ledger made before the tree catches up here, once
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("tree of %d events ready in %s", t.Size, time.Since(start).Round(time.Millisecond))
	b.ResetTimer()
	var incl, cons int
	for i := range b.N {
		seq := uint64(i*7919)%t.Size + 1
		p, err := l.ProveInclusion(bctx, seq, t.Size)
		if err != nil {
			b.Fatal(err)
		}
		c, err := l.ProveConsistency(bctx, seq, t.Size)
		if err != nil {
			b.Fatal(err)
		}
		incl, cons = len(p)*32, len(c)*32
	}
	b.StopTimer() // what follows (the deferred close) is not what is measured
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/both")
	b.ReportMetric(float64(incl), "inclusion-bytes")
	b.ReportMetric(float64(cons), "consistency-bytes")
}
