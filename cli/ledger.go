package cli

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
)

// LedgerCmd is `swcli ledger`: the audit trail.
type LedgerCmd struct {
	Backend `embed:""`
	Log     LedgerLogCmd    `cmd:"" help:"Show events, oldest first (JSON lines with -o json)."`
	Verify  LedgerVerifyCmd `cmd:"" help:"Check the hash chain, the projections and the manifests."`
	Replay  LedgerReplayCmd `cmd:"" help:"Rebuild the state from the events, now or as it was at a point."`
	Export  LedgerExportCmd `cmd:"" help:"Write every event as JSON lines: canonical, hash-chained, checkable without swcli."`
}

// LedgerLogCmd is `ledger log`.
type LedgerLogCmd struct {
	Project string   `short:"p" help:"Only this project."`
	Runtime string   `short:"r" help:"Only this runtime."`
	Type    []string `short:"t" help:"Only these event types (runtime.built, runtime.tagged, …)."`
	Since   string   `help:"Only events at or after this time (RFC 3339 or YYYY-MM-DD)."`
	Until   string   `help:"Only events before this time."`
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, ops.Errorf(ops.KindUsage, "use RFC 3339 (2026-01-02T15:04:05Z) or YYYY-MM-DD", "invalid time %q", s)
}

// Run prints events.
func (c *LedgerLogCmd) Run(e *env) error {
	f := ledger.Filter{Project: c.Project, Runtime: c.Runtime}
	for _, t := range c.Type {
		known := false
		for _, k := range ledger.Types {
			known = known || string(k) == t
		}
		if !known {
			return ops.Errorf(ops.KindUsage, "types: runtime.created, .built, .tagged, .untagged, .removed, .purged, .recovered, .copied, project.created, .removed", "unknown event type %q", t)
		}
		f.Types = append(f.Types, ledger.Type(t))
	}
	var err error
	if c.Since != "" {
		if f.Since, err = parseTime(c.Since); err != nil {
			return err
		}
	}
	if c.Until != "" {
		if f.Until, err = parseTime(c.Until); err != nil {
			return err
		}
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	return in.Ledger.Log(e.ctx, f, func(ev ledger.Event) error {
		if e.jsonOut() {
			w.Write(ev.ExportLine())
			w.WriteByte('\n')
			return nil
		}
		target := ev.Project
		if ev.Runtime != "" {
			target += "/" + ev.Runtime
		}
		if ev.Version != "" {
			target += "/" + ev.Version[:12]
		}
		fmt.Fprintf(w, "%6d  %s  %-17s  %-30s  %s  %s\n", ev.Seq, ev.Time.Local().Format("2006-01-02 15:04:05"), ev.Type, target, ev.Actor, ev.Data)
		return nil
	})
}

// LedgerVerifyCmd is `ledger verify`.
type LedgerVerifyCmd struct{}

// Run verifies.
func (c *LedgerVerifyCmd) Run(e *env) error {
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	rep, err := in.Ledger.Verify(e.ctx, in.Chunks)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		probs := []map[string]any{}
		for _, p := range rep.Problems {
			probs = append(probs, map[string]any{"seq": p.Seq, "detail": p.Detail})
		}
		if err := e.printJSON(map[string]any{"events": rep.Events, "head": rep.Head.Seq, "head_hash": rep.Head.Hash, "ok": len(rep.Problems) == 0, "problems": probs}); err != nil {
			return err
		}
	}
	if len(rep.Problems) > 0 {
		if !e.jsonOut() {
			for _, p := range rep.Problems[1:] {
				fmt.Fprintf(e.stderr, "swcli: also: %s\n", p)
			}
		}
		return &ops.Error{Kind: ops.KindCorrupt, Err: fmt.Errorf("ledger verification failed: %s", rep.Problems[0]),
			Hint: "the ledger was changed outside swcli; compare with an export taken before"}
	}
	if !e.jsonOut() {
		e.printf("ledger ok: %s events, chain intact, projections match a replay, every manifest present (head %d %s)\n",
			humanCount(int(rep.Events)), rep.Head.Seq, rep.Head.Hash.Short(12))
	}
	return nil
}

// LedgerReplayCmd is `ledger replay`.
type LedgerReplayCmd struct {
	At      string `help:"A sequence number or a time: show the state as it was then."`
	Project string `short:"p" help:"Project to show (default: the selected project)."`
}

// Run replays.
func (c *LedgerReplayCmd) Run(e *env) error {
	var to ledger.ReplayTo
	if c.At != "" {
		if n, err := strconv.ParseUint(c.At, 10, 64); err == nil {
			to.Seq = n
		} else if to.Time, err = parseTime(c.At); err != nil {
			return ops.Errorf(ops.KindUsage, "--at takes a sequence number or a time", "invalid --at %q", c.At)
		}
	}
	in, project, err := e.openProject(c.Project)
	if err != nil {
		return err
	}
	defer in.Close()
	start := time.Now()
	snap, err := in.Ledger.Replay(e.ctx, to)
	if err != nil {
		return err
	}
	vs, _, err := snap.Versions(project, "", ledger.ListOptions{})
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"seq": snap.Head.Seq, "time": snap.Time, "project": project, "versions": ops.DTOs(vs)})
	}
	e.printf("state after event %d (%s), replayed in %s:\n", snap.Head.Seq, humanTime(snap.Time), time.Since(start).Round(time.Millisecond))
	if len(vs) == 0 {
		e.printf("no live versions in project %s\n", project)
		return nil
	}
	e.versionTable(vs, false, true, false)
	return nil
}

// LedgerExportCmd is `ledger export`.
type LedgerExportCmd struct {
	File string `arg:"" optional:"" help:"Write here instead of stdout." type:"path"`
}

// Run exports.
func (c *LedgerExportCmd) Run(e *env) error {
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	w := bufio.NewWriterSize(e.stdout, 1<<20)
	var f *os.File
	if c.File != "" {
		if f, err = os.Create(c.File); err != nil {
			return ops.Errorf(ops.KindUsage, "", "export: %v", err)
		}
		defer f.Close()
		w = bufio.NewWriterSize(f, 1<<20)
	}
	if err := in.Ledger.Export(e.ctx, w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if f != nil {
		return f.Sync()
	}
	return nil
}

// GCCmd is `swcli gc`.
type GCCmd struct{}

// Run collects garbage, with the instance to itself: it waits for every other command on
// the root to end, and they wait for it.
func (c *GCCmd) Run(e *env) error {
	if ops.Serving(e.g.root()) {
		// A served root: its server collects, online (safe beside copies).
		return (&ServerGCCmd{}).Run(e)
	}
	in, err := e.openWith(ops.OpenOptions{Exclusive: true})
	if err != nil {
		return err
	}
	defer in.Close()
	rep, err := ops.GC(e.ctx, in)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"live_chunks": rep.Live, "deleted_chunks": rep.Deleted, "deleted_bytes": rep.DeletedBytes})
	}
	e.printf("deleted %s unused chunks (%s); %s chunks in use\n", humanCount(int(rep.Deleted)), humanBytes(rep.DeletedBytes), humanCount(int(rep.Live)))
	return nil
}
