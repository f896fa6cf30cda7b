package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Progress is drawn on stderr as a bar when stdout and stderr are terminals (or as JSON
// lines with --progress=json), and never otherwise: a command whose output goes to a file
// or a pipe prints only its summary.
//
// The bar's fraction is done/total of the unit that has a total known before the work
// starts: bytes for build (a stat walk first), extract and copy after its missing-check
// (chunks, whose number is known then; bytes are shown as they go), steps for restore.
// It never goes down, and ends at 100 %.
type bar struct {
	mu      sync.Mutex
	w       io.Writer
	what    string
	json    bool
	unit    string // "files", "chunks" or "steps": the count shown beside the bytes
	byBytes bool   // the fraction is bytes/total bytes (else count/total count)

	count, total   int
	bytes, bytesOf int64
	label          string // restore: the step running
	start, drawn   time.Time
	last           float64 // the highest fraction drawn
	finished       bool
}

// progressMode is auto (a bar on a terminal), json or none.
func (e *env) progressMode() string {
	switch {
	case e.quiet || e.g.NoProgress || e.g.Progress == "none":
		return "none"
	case e.g.Progress == "json":
		return "json"
	case e.g.Progress == "bar":
		return "bar"
	}
	if isTerminal(e.stdout) && isTerminal(e.stderr) {
		return "bar"
	}
	return "none"
}

// newBar returns the progress of an operation, or nil when none is shown.
func (e *env) newBar(what, unit string, byBytes bool) *bar {
	mode := e.progressMode()
	if mode == "none" {
		return nil
	}
	return &bar{w: e.stderr, what: what, json: mode == "json", unit: unit, byBytes: byBytes, start: time.Now()}
}

// Total sets the known total before the work starts.
func (b *bar) Total(count int, bytes int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total, b.bytesOf = count, bytes
	b.draw(true)
}

// Planned is cas.Progress's: totals found along the way only raise a total that was not
// known (they never lower the fraction drawn).
func (b *bar) Planned(count int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total = max(b.total, b.count+count)
	if b.byBytes {
		b.bytesOf = max(b.bytesOf, b.bytes+bytes)
	}
}

func (b *bar) Done(count int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count += count
	b.bytes += bytes
	b.total = max(b.total, b.count)
	b.bytesOf = max(b.bytesOf, b.bytes)
	b.draw(false)
}

// Step says which step runs now (restore).
func (b *bar) Step(label string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.label = label
	b.draw(true)
}

func (b *bar) fraction() float64 {
	f := 0.0 // nothing known yet: 0 % (finish draws 100 %)
	switch {
	case b.byBytes && b.bytesOf > 0:
		f = float64(b.bytes) / float64(b.bytesOf)
	case !b.byBytes && b.total > 0:
		f = float64(b.count) / float64(b.total)
	}
	f = min(f, 1)
	if f < b.last {
		f = b.last // a total raised late never makes the bar go back
	}
	b.last = f
	return f
}

func (b *bar) draw(force bool) {
	now := time.Now()
	if !force && now.Sub(b.drawn) < 100*time.Millisecond {
		return
	}
	b.drawn = now
	f := b.fraction()
	el := now.Sub(b.start).Seconds()
	left := -1.0
	if f > 0.01 && f < 1 && el > 0.2 {
		left = el * (1 - f) / f
	}
	rate := 0.0
	if el > 0 {
		rate = float64(b.bytes) / el
	}
	if b.json {
		m := map[string]any{"message_type": "status", "action": b.what, "percent_done": f, b.unit + "_done": b.count,
			"total_" + b.unit: b.total, "bytes_done": b.bytes, "seconds_elapsed": el}
		if b.byBytes {
			m["total_bytes"] = b.bytesOf
		}
		if left >= 0 {
			m["seconds_remaining"] = left
		}
		if b.label != "" {
			m["step"] = b.label
		}
		line, _ := json.Marshal(m)
		fmt.Fprintf(b.w, "%s\n", line)
		return
	}
	const width = 24
	fill := int(f * width)
	var s strings.Builder
	fmt.Fprintf(&s, "\r%-10s %3.0f%% [%s%s] ", b.what, 100*f, strings.Repeat("=", fill), strings.Repeat(" ", width-fill))
	if b.byBytes {
		fmt.Fprintf(&s, "%s/%s", humanBytes(b.bytes), humanBytes(b.bytesOf))
	} else if b.bytes > 0 {
		fmt.Fprintf(&s, "%s", humanBytes(b.bytes))
	}
	if b.bytes > 0 {
		fmt.Fprintf(&s, ", %s/s", humanBytes(int64(rate)))
	}
	if left >= 0 {
		fmt.Fprintf(&s, ", %s left", (time.Duration(left) * time.Second).Round(time.Second))
	}
	fmt.Fprintf(&s, " (%s/%s %s)", humanCount(b.count), humanCount(b.total), b.unit)
	if b.label != "" {
		fmt.Fprintf(&s, " %s", truncate(b.label, 64))
	}
	s.WriteString("\x1b[K")
	io.WriteString(b.w, s.String())
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// finish draws the last state (100 % when the work is done) and ends the line.
func (b *bar) finish(ok bool) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	if ok {
		b.count, b.bytes = max(b.count, b.total), max(b.bytes, b.bytesOf)
		b.last = 1
	}
	b.draw(true)
	if !b.json {
		io.WriteString(b.w, "\n")
	}
}

// Quiet is --quiet of the commands that show progress (tag's -q/--quiet is Starwhale's
// and means something else, so it cannot be a global flag).
type Quiet struct {
	Quiet bool `help:"No progress bar, no warnings: errors and the summary only."`
}

// apply takes --quiet into the command's environment.
func (q Quiet) apply(e *env) {
	if q.Quiet {
		e.quiet = true
		e.log = e.log.Level(zerolog.ErrorLevel)
	}
}
