package membudget

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func limit() int64 { return debug.SetMemoryLimit(-1) }

// waitLimit collects until the keeper has set a limit that ok accepts (its finalizer runs
// after a collection, on the finalizer goroutine).
func waitLimit(t *testing.T, ok func(int64) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(limit()) {
		if time.Now().After(deadline) {
			t.Fatalf("limit %d MiB: want %s", limit()>>20, what)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

var held [][]byte

// keep starts a keeper of budget bytes with GOGC and GOMEMLIMIT unset and nothing held,
// stopped with the test (or before, by what it returns).
func keep(t *testing.T, budget int64) (stop func()) {
	t.Helper()
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	held = nil
	stop = Keep(budget)
	t.Cleanup(stop)
	return stop
}

func TestKeepFollowsTheLiveHeap(t *testing.T) {
	const budget = 24 << 20
	stop := keep(t, budget)
	waitLimit(t, func(l int64) bool { return l == budget }, "the budget while the live heap fits")

	// 64 MiB live: a limit at the budget would leave the collector running without pause.
	for range 64 {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = 1
		}
		held = append(held, b)
	}
	waitLimit(t, func(l int64) bool { return l >= 96<<20 }, ">= 1.5 × 64 MiB with 64 MiB live")

	held = nil
	waitLimit(t, func(l int64) bool { return l == budget }, "the budget again once the heap is let go")

	stop()
	if l := limit(); l != math.MaxInt64 {
		t.Fatalf("limit after stop: %d MiB, want none", l>>20)
	}
	runtime.GC()
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	if l := limit(); l != math.MaxInt64 {
		t.Fatalf("limit set again after stop: %d MiB", l>>20)
	}
}

func TestKeepLeavesTheUsersSetting(t *testing.T) {
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv("GOGC", "")
			t.Setenv("GOMEMLIMIT", "")
			t.Setenv(env, "200")
			before := limit()
			stop := Keep(16 << 20)
			defer stop()
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
			if l := limit(); l != before {
				t.Fatalf("%s set: limit %d, want %d as it was", env, l, before)
			}
		})
	}
}

func gcPercentNow() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// waitPercent collects until the keeper has set a GOGC that ok accepts.
func waitPercent(t *testing.T, ok func(int) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(gcPercentNow()) {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d: want %s", gcPercentNow(), what)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

func TestKeepLetsASmallHeapGrowUncollected(t *testing.T) {
	stop := keep(t, 96<<20)
	// After a collection the keeper puts the next one at minGoal (the live heap is small).
	waitPercent(t, func(p int) bool { return p > 100 }, "over 100 with a small live heap")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.NumGC
	var keep []byte
	for range 256 { // 16 MiB of garbage, 64 KiB at a time
		keep = make([]byte, 64<<10)
		keep[0] = 1
	}
	runtime.ReadMemStats(&ms)
	if n := ms.NumGC - before; n != 0 {
		t.Fatalf("16 MiB of garbage over a small live heap: %d collections, want none below %d MiB", n, minGoal>>20)
	}
	stop()
	if p := gcPercentNow(); p != 100 {
		t.Fatalf("GOGC after stop: %d, want 100 as it was", p)
	}
}

// A live heap of bytes (buffers, which a collection does not scan) is given a small
// headroom; one of pointers GOGC=100's: the collector's work per byte allocated stays
// at most one byte scanned either way.
func TestKeepGivesHeadroomByWhatACollectionScans(t *testing.T) {
	keep(t, 16<<20)
	for range 64 { // 64 MiB of bytes
		b := make([]byte, 1<<20)
		b[0] = 1
		held = append(held, b)
	}
	waitPercent(t, func(p int) bool { return p <= 20 }, "about 8 MiB over 64 MiB of bytes (12)")

	held = nil
	one := new(int)
	for range 64 { // 64 MiB of pointers
		ps := make([]*int, (1<<20)/8)
		for i := range ps {
			ps[i] = one
		}
		pointers = append(pointers, ps)
	}
	waitPercent(t, func(p int) bool { return p >= 90 }, "about 100 over a heap of pointers")
	pointers = nil
}

var pointers [][]*int
