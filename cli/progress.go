package cli

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// bar is a cas.Progress drawn on stderr when it is a terminal: files, bytes, rate, ETA.
type bar struct {
	mu           sync.Mutex
	pb           *progressbar.ProgressBar
	files, total int
	bytes        int64
}

// newBar returns a progress bar, or nil (no progress shown) when w is not a terminal.
func newBar(w io.Writer, what string) *bar {
	if !isTerminal(w) {
		return nil
	}
	pb := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
	return &bar{pb: pb}
}

func (b *bar) Planned(files int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += files
	b.bytes += bytes
	b.pb.ChangeMax64(b.bytes)
}

func (b *bar) Done(files int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.files += files
	b.pb.Describe(humanCount(b.files) + "/" + humanCount(b.total) + " files")
	b.pb.Add64(bytes)
}

func (b *bar) finish() {
	if b != nil {
		b.pb.Finish()
	}
}
