// Package bench measures swcli against its peers (restic, tar | zstd, rsync) on the same
// corpus in one run. `just bench` runs cmd/storebench; `go test -bench` here runs the
// micro-benchmarks.
package bench

import (
	"cmp"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/swcli/swcli/internal/corpus"
	"github.com/swcli/swcli/internal/fsutil"
)

// Result is one measured command.
type Result struct {
	Wall    time.Duration
	PeakRSS int64 // bytes, the largest resident set of the process or its children
	// Min and Max are the fastest and slowest of Median's runs (Wall for a single run).
	Min, Max time.Duration
}

// Spread is the half-range of Median's runs relative to their median: how far one run
// of this step may stray on this machine.
func (r Result) Spread() float64 {
	if r.Wall <= 0 || r.Max <= r.Min {
		return 0
	}
	return (r.Max - r.Min).Seconds() / 2 / r.Wall.Seconds()
}

// Run runs name with args (env added to the environment), returning wall time and peak
// RSS. Output goes to log. Page cache stays warm; dirty pages are written first.
func Run(log io.Writer, env []string, name string, args ...string) (Result, error) {
	// Start each measurement with no dirty pages left by the one before, so that
	// write-back of another tool's output is not charged to this one.
	syscall.Sync()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	err := cmd.Run()
	r := Result{Wall: time.Since(start)}
	r.Min, r.Max = r.Wall, r.Wall
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.PeakRSS = ru.Maxrss * 1024
	}
	if err != nil {
		return r, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return r, nil
}

// DirBytes is the apparent size of every file under dir (du -sb).
func DirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// MB formats bytes as decimal megabytes.
func MB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// MiB formats bytes as binary mebibytes.
func MiB(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// Secs formats a duration in seconds.
func Secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// Table prints rows with aligned columns.
func Table(w io.Writer, rows [][]string) {
	widths := map[int]int{}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// Reps is how often Median runs a step. This machine's disk makes single runs of
// file-heavy steps vary by 2-5x, so steps that start from nothing are run Reps times, for
// swcli and its peers alike, and their median reported; their spread is the machine's
// noise (Gate).
const Reps = 5

// Median runs prep (untimed, e.g. emptying the destination) then step, Reps times, and
// returns the median wall time with the largest peak RSS seen.
func Median(prep func() error, step func() (Result, error)) (Result, error) {
	return MedianN(Reps, prep, step)
}

// MedianN is Median with n runs, for steps too long to run Reps times.
func MedianN(n int, prep func() error, step func() (Result, error)) (Result, error) {
	var rs []Result
	for range n {
		if err := prep(); err != nil {
			return Result{}, err
		}
		r, err := step()
		if err != nil {
			return r, err
		}
		rs = append(rs, r)
	}
	return medianOf(rs), nil
}

// Fresh names new directories under one parent, for steps that create many files (extract,
// materialise, tar -x): each run writes into a directory never used before, and nothing is
// deleted until the session ends. On this machine type's root file system (ext4 without a
// journal, mounted with discard) a tool that creates 11k files soon after 11k were deleted
// ran 2–4.5 x slower by hand (five rounds), by a margin that swings from run to run
// (ext4's inode allocator passes over recently freed inodes, fs/ext4/ialloc.c); outputs
// deleted before each run put every measurement of these steps in that state. If the disk lacks room for every output,
// Next deletes the last output of the same name instead, and Reusing says so.
type Fresh struct {
	dir   string
	n     int
	reuse bool
}

// NewFresh makes a Fresh under dir for runs outputs of each bytes, with 2 GB to spare.
func NewFresh(dir string, runs int, each int64) (*Fresh, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	free, err := fsutil.Free(dir)
	if err != nil {
		return nil, err
	}
	spare := free - 2e9
	return &Fresh{dir: dir, reuse: spare < 0 || spare/int64(max(runs, 1)) < each}, nil
}

// Next returns a path under the parent, named after name, that does not exist.
func (f *Fresh) Next(name string) (string, error) {
	if f.reuse {
		p := filepath.Join(f.dir, name)
		return p, os.RemoveAll(p)
	}
	f.n++
	return filepath.Join(f.dir, fmt.Sprintf("%s-%d", name, f.n)), nil
}

// Reusing reports whether outputs are deleted before each run for want of room.
func (f *Fresh) Reusing() bool { return f.reuse }

// Step is a timed run and what must happen before it.
type Step struct {
	Prep func() error
	Run  func() (Result, error)
}

// Pair is two steps measured alternately: each one's median, and the ratio of a's time to
// b's round by round.
type Pair struct {
	A, B   Result
	Ratio  float64 // the median of the rounds' ratios
	Spread float64 // half the range of the rounds' ratios, relative to their median
}

// MedianPair runs a and b n times each, alternately, each first in every other round, so
// that a state of the machine that sways both (write-back, another process) falls on both
// alike.
func MedianPair(n int, a, b Step) (Pair, error) {
	steps := [2]Step{a, b}
	var rs [2][]Result
	var ratios []float64
	for i := range n {
		var got [2]Result
		for k := range 2 {
			j := (i + k) % 2 // a first in even rounds (counting from 0), b in odd ones
			if err := steps[j].Prep(); err != nil {
				return Pair{}, err
			}
			r, err := steps[j].Run()
			if err != nil {
				return Pair{}, err
			}
			got[j] = r
			rs[j] = append(rs[j], r)
		}
		ratios = append(ratios, got[0].Wall.Seconds()/got[1].Wall.Seconds())
	}
	slices.Sort(ratios)
	p := Pair{A: medianOf(rs[0]), B: medianOf(rs[1]), Ratio: ratios[len(ratios)/2]}
	p.Spread = (ratios[len(ratios)-1] - ratios[0]) / 2 / p.Ratio
	return p, nil
}

// medianOf is the run of median wall time, with the range of the runs and their largest
// peak RSS.
func medianOf(rs []Result) Result {
	slices.SortFunc(rs, func(a, b Result) int { return cmp.Compare(a.Wall, b.Wall) })
	m := rs[len(rs)/2]
	for _, r := range rs {
		m.PeakRSS = max(m.PeakRSS, r.PeakRSS)
	}
	m.Min, m.Max = rs[0].Wall, rs[len(rs)-1].Wall
	return m
}

// Gate holds the targets of one run: each a figure against its bound, with the noise
// within which a miss is not taken for a regression. Print them, then exit non-zero if
// Failed.
type Gate struct {
	W      io.Writer
	Width  int
	failed []string
}

// Noise is the machine's noise in one run: the largest spread of the steps measured
// Reps times.
func Noise(rs ...Result) float64 {
	n := 0.0
	for _, r := range rs {
		n = max(n, r.Spread())
	}
	return n
}

// Ratio checks got/base <= target, allowing noise (relative) on the ratio.
func (g *Gate) Ratio(name string, got, base, target, noise float64) {
	ratio := got / base
	g.check(name, ratio, target, noise, fmt.Sprintf("%.3f x (target %.2f x, noise ±%.0f%%)", ratio, target, 100*noise))
}

// Times checks a's time over b's <= target, allowing the noise of both steps (the sum of
// their spreads).
func (g *Gate) Times(name string, a, b Result, target float64) {
	g.Ratio(name, a.Wall.Seconds(), b.Wall.Seconds(), target, a.Spread()+b.Spread())
}

// AtMost checks got <= target (bytes, counts), allowing noise (relative).
func (g *Gate) AtMost(name string, got, target, noise float64, detail string) {
	g.check(name, got/target, 1, noise, detail)
}

func (g *Gate) check(name string, v, target, noise float64, detail string) {
	mark := "met"
	switch {
	case v <= target:
	case v <= target*(1+noise):
		mark = "~noise" // missed by less than this run's noise: not a regression
	default:
		mark = "MISSED"
		g.failed = append(g.failed, name)
	}
	fmt.Fprintf(g.W, "  %-6s %-*s %s\n", mark, g.Width, name, detail)
}

// Failed lists the targets missed by more than the noise.
func (g *Gate) Failed() []string { return g.failed }

// Check prints one target: met or MISSED, its name and the figures behind it.
func Check(w io.Writer, width int, name string, ok bool, detail string) {
	mark := "met"
	if !ok {
		mark = "MISSED"
	}
	fmt.Fprintf(w, "  %-6s %-*s %s\n", mark, width, name, detail)
}

// BuildSwcli builds swcli into dir (from the repository root, where the benchmarks run) and
// returns its path.
func BuildSwcli(dir string) (string, error) {
	swcli := filepath.Join(dir, "swcli")
	if out, err := exec.Command("go", "build", "-o", swcli, "./cmd/swcli").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build swcli: %v\n%s", err, out)
	}
	return swcli, nil
}

// Session is what every benchmark command starts from: the corpus, a temporary work
// directory and swcli built into it.
type Session struct {
	Corpus string // holds small, ml-v1 and ml-v2
	Work   string // removed by Close unless kept
	Swcli  string
	keep   bool
}

// Start finds (or makes) the corpus, makes a work directory named for the benchmark and
// builds swcli there unless swcli names a binary. With keep, Close leaves the directory.
func Start(name, swcli string, keep bool) (*Session, error) {
	dir, err := corpus.Dir()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "swcli-"+name+"-")
	if err != nil {
		return nil, err
	}
	s := &Session{Corpus: dir, Work: work, Swcli: swcli, keep: keep}
	if s.Swcli == "" {
		if s.Swcli, err = BuildSwcli(work); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close removes the work directory (or, if kept, says where it is).
func (s *Session) Close() {
	if s.keep {
		fmt.Fprintln(os.Stderr, "work:", s.Work)
		return
	}
	os.RemoveAll(s.Work)
}

// Path names a tree of the corpus (small, ml-v1, ml-v2).
func (s *Session) Path(tree string) string { return filepath.Join(s.Corpus, tree) }

// Log is where commands' output goes: stderr when verbose, else nowhere.
func Log(verbose bool) io.Writer {
	if verbose {
		return os.Stderr
	}
	return io.Discard
}
