package cas

import (
	"context"
	"path/filepath"
	"runtime"
)

// A Prewalk is the tree cache's walk (treecache.go) of one directory input, begun before
// the ingest that checks the cache: a rebuild starts it beside the instance's opening and
// the build's first steps, ~10 ms that came before its ~45 ms walk. Invariants:
//   - It sums exactly what the check's walk sums of that input's contents (the input's
//     own record is the check's, as for any input), so a check that takes it finds the
//     sum a check that walks would.
//   - The check takes it only for the same root and destination, and only when it ended
//     without error; otherwise the check walks the input itself (and reports what failed).
//   - Ingest stops it once the check is done, or at once when there is no check to make:
//     none outlives its ingest or competes with the ingest's own walk for the cores.
//   - What it finds is the tree as it was when it walked, a few milliseconds before the
//     ingest began: as for any walk, a file changed meanwhile is seen by the next build.
type Prewalk struct {
	root, dest string
	cancel     context.CancelFunc
	done       chan struct{}
	sum        walkSum
	skipped    []string
	err        error
}

// StartPrewalk starts the tree cache's walk of the directory root, whose contents go
// under dest in the tree.
func StartPrewalk(ctx context.Context, root, dest string) *Prewalk {
	ctx, cancel := context.WithCancel(ctx)
	p := &Prewalk{root: filepath.Clean(root), dest: dest, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		in := &ingest{workers: 2 * runtime.GOMAXPROCS(0), listOnly: true}
		p.skipped, p.err = in.walkTree(ctx, p.root, dest, nil)
		p.sum = in.sum
	}()
	return p
}

// Stop ends the walk if it still runs, and waits for it. A nil Prewalk stops at once.
func (p *Prewalk) Stop() {
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
}

// take waits for the walk and returns its sum and what it skipped, if it walked root's
// contents under dest and ended without error.
func (p *Prewalk) take(root, dest string) (walkSum, []string, bool) {
	if p == nil || p.root != root || p.dest != dest {
		return walkSum{}, nil, false
	}
	<-p.done
	return p.sum, p.skipped, p.err == nil
}
