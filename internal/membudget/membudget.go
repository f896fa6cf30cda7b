// Package membudget keeps a command's memory from growing with its input more than its
// live data must.
//
// Two things let it grow by more. Go's collector lets the heap reach twice what was live
// after the last collection (GOGC=100), so a command whose live data grows with its input
// (a build's index of new chunks, its manifest) needs twice that growth, half of it
// garbage waiting. And glibc's malloc, which serves pebble's memtables and block cache
// (pebble's internal/manual, with cgo on) and libzstd's contexts, raises its mmap
// threshold to the size of the first large block freed: the blocks of every later opening
// of a database then come from its arenas, whose free space is kept and fragments.
//
// Keep sets a soft limit on Go's memory (debug.SetMemoryLimit), so that the collector
// runs before the heap passes the budget rather than at twice the live heap. A limit below
// the live heap would have it collect without pause, so after each collection the limit is
// set again to the larger of the budget and 1.5 × the live heap: past the budget, the
// heap's headroom is half its live size, as GOGC=50 gives. And it fixes malloc's mmap
// threshold, so that large C blocks are mapped on their own and unmapped when freed.
//
// At the other end it gives the heap a floor: Go collects first at 4 MiB and then at
// twice the live heap, so a command collected four or five times in its first 100 ms
// while its heap was a few MB (an extract of ml-v1, by GODEBUG=gctrace=1). Keep sets
// GOGC so that the next collection comes at minGoal at the least: a command whose heap
// stays under it never collects.
//
// Between the two, the headroom follows what a collection costs. GOGC=100 lets a command
// allocate as much as its live heap between collections, which keeps the collector's work
// to one byte scanned for each byte allocated however much of the heap holds pointers.
// Most of an extract's heap is buffers without pointers (decompressed groups and frames),
// which a collection does not scan: ml-v1 ×10's extract, 41–55 MB live, let its heap
// grow to the budget for its whole run, its peak RSS 1.55 × ml-v1's, whose run ended
// first. Keep puts the next collection at the live heap plus the larger of minHeadroom
// and what the last collection scanned (at most twice the live heap, as before): the
// same bound on the collector's work, and a heap that stays near its live size when what
// is live is bytes (×10's extract: goals 7–11 MB above live, by GODEBUG=gctrace=1).
package membudget

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// mmapThreshold is the size from which C's allocations are mapped on their own: glibc's
// initial value, kept.
const mmapThreshold = 128 << 10

// minGoal is the heap below which a command is not collected (see above); firstPercent
// is the GOGC that sets it before the first collection (Go's first goal is 4 MiB ×
// GOGC/100). minHeadroom is the least a command allocates between collections past it.
const (
	minGoal      = 32 << 20
	firstPercent = minGoal / (4 << 20) * 100
	minHeadroom  = 8 << 20
)

// gcPercent is the GOGC that puts the next collection at live plus the larger of
// minHeadroom and scan (what the last collection scanned), at most twice live, and at
// minGoal at the least.
func gcPercent(live, scan uint64) int {
	goal := max(minGoal, live+min(live, max(minHeadroom, scan)))
	return int(goal*100/max(live, minGoal/100)) - 100
}

// Keep holds the process's Go memory to budget bytes until the function it returns is
// called. The limit is left alone when GOGC or GOMEMLIMIT is set: the user's word stands.
func Keep(budget int64) (stop func()) {
	fixMmapThreshold()
	if budget <= 0 || os.Getenv("GOMEMLIMIT") != "" || os.Getenv("GOGC") != "" {
		return func() {}
	}
	k := &keeper{budget: budget, samples: []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/total:bytes"}}}
	percent := debug.SetGCPercent(firstPercent)
	k.adjust()
	k.arm()
	var once sync.Once
	return func() {
		once.Do(func() {
			k.mu.Lock()
			k.stopped = true
			k.mu.Unlock()
			debug.SetMemoryLimit(math.MaxInt64)
			debug.SetGCPercent(percent)
		})
	}
}

type keeper struct {
	budget  int64
	samples []metrics.Sample // the live heap, what the last collection scanned

	mu      sync.Mutex
	stopped bool
}

// sentinel is garbage as soon as it is made; its finalizer runs after the collection that
// finds it, which is how the keeper hears of each collection. The pointer keeps it out of
// the tiny allocator, whose objects may never be finalized.
type sentinel struct {
	_ *int
	_ [8]byte
}

func (k *keeper) arm() {
	runtime.SetFinalizer(new(sentinel), func(*sentinel) {
		if k.adjust() {
			k.arm()
		}
	})
}

// adjust sets the limit from the live heap the last collection left, reporting whether
// the keeper still runs.
func (k *keeper) adjust() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return false
	}
	metrics.Read(k.samples)
	limit := k.budget
	if k.samples[0].Value.Kind() == metrics.KindUint64 {
		v := k.samples[0].Value.Uint64()
		if v <= math.MaxInt64/2 {
			limit = max(limit, int64(v)+int64(v)/2)
		}
		var scan uint64
		if k.samples[1].Value.Kind() == metrics.KindUint64 {
			scan = k.samples[1].Value.Uint64()
		}
		if v > 0 { // 0 before the first collection: GOGC stays at firstPercent
			debug.SetGCPercent(gcPercent(v, scan))
		}
	}
	debug.SetMemoryLimit(limit)
	return true
}
