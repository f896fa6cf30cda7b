package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
)

// LedgerCmd is `swcli ledger`: the audit trail.
type LedgerCmd struct {
	Backend `embed:""`
	Log     LedgerLogCmd    `cmd:"" help:"Show events, oldest first (JSON lines with -o json)."`
	Verify  LedgerVerifyCmd `cmd:"" help:"Check the hash chain, the projections and the manifests."`
	Replay  LedgerReplayCmd `cmd:"" help:"Rebuild the state from the events, now or as it was at a point."`
	Export  LedgerExportCmd `cmd:"" help:"Write every event as JSON lines: canonical, hash-chained, checkable without swcli."`
	// Transparency: the Merkle tree's signed head, and proofs against it.
	Checkpoint LedgerCheckpointCmd `cmd:"" help:"Print the ledger's signed checkpoint (C2SP tlog-checkpoint: origin, size, root hash, signature)."`
	Key        LedgerKeyCmd        `cmd:"" help:"Print the key that verifies the checkpoints; --rotate replaces it (recorded in the ledger)."`
	Prove      LedgerProveCmd      `cmd:"" help:"Prove that an event is in the log (SEQ), or that the log of --from events is a prefix of today's, as JSON with the checkpoint."`
	Cosign     LedgerCosignCmd     `cmd:"" help:"As a witness: check that a server's checkpoint extends the last one seen, sign it with this instance's key and send it back."`
}

// LedgerCosignCmd is 'ledger cosign ALIAS': this instance (its --root's key) witnesses a
// server it is logged in to.
type LedgerCosignCmd struct {
	Server string `arg:"" help:"The server (an alias you logged in to, or cloud://ALIAS)."`
}

// Run cosigns.
func (c *LedgerCosignCmd) Run(e *env) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	ref, err := ops.ParseInstance(c.Server)
	if err != nil {
		return err
	}
	alias, err := cfg.AliasOf(ref)
	if err != nil {
		return err
	}
	ic := cfg.Instances[alias]
	if ic == nil || ic.URL == "" {
		return ops.Errorf(ops.KindUsage, "log in to it first: swcli instance login URL --alias NAME", "%s is not a server", c.Server)
	}
	r := client.NewRemote(alias, ic.URL, ic.Token)
	key, cp, err := ops.FollowLedger(e.ctx, r, ic.LedgerKey, ic.Checkpoint)
	if err != nil {
		return err
	}
	if key == "" {
		return ops.Errorf(ops.KindNotFound, "", "%s publishes no checkpoints", c.Server)
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	msg, err := ops.Cosign(e.ctx, in, cp, key)
	if err != nil {
		return err
	}
	name, err := r.PostCosignature(e.ctx, msg)
	if err != nil {
		return err
	}
	ic.LedgerKey, ic.Checkpoint = key, cp.Note
	if err := cfg.Save(); err != nil {
		return err
	}
	mine, err := ops.LedgerKey(e.ctx, in)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"server": alias, "size": cp.Size, "root": cp.Hash.String(), "witness": name, "witness_key": mine})
	}
	e.printf("cosigned %s of cloud://%s as %s\nwitness key (for clients' --witness): %s\n", cp, alias, name, mine)
	return nil
}

// LedgerCheckpointCmd is 'ledger checkpoint'.
type LedgerCheckpointCmd struct{ AdminTarget }

// Run prints the signed checkpoint.
func (c *LedgerCheckpointCmd) Run(e *env) error {
	if c.Instance != "" || ops.Serving(e.g.root()) {
		r, err := e.checkpointRemote(c.AdminTarget)
		if err != nil {
			return err
		}
		b, err := r.Checkpoint(e.ctx)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	b, err := ops.SignedCheckpoint(e.ctx, in)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(b)
	return err
}

// checkpointRemote is the server a checkpoint is asked of: --instance, or the one on the root.
func (e *env) checkpointRemote(t AdminTarget) (*client.Remote, error) {
	a, err := e.admin(t)
	if err != nil {
		return nil, err
	}
	ar, ok := a.(ops.AdminRemote)
	if !ok {
		return nil, ops.Errorf(ops.KindUsage, "", "no server to ask")
	}
	return ar.Remote, nil
}

// LedgerKeyCmd is 'ledger key'.
type LedgerKeyCmd struct {
	Rotate bool `help:"Replace the key with a new one; the ledger records both (clients must pin the new one explicitly)."`
}

// Run prints (or rotates) the checkpoint key.
func (c *LedgerKeyCmd) Run(e *env) error {
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	if c.Rotate {
		old, key, err := ops.RotateLedgerKey(e.ctx, in)
		if err != nil {
			return err
		}
		if e.jsonOut() {
			return e.printJSON(map[string]any{"key": key, "previous": old})
		}
		e.printf("%s\n(replaces %s; clients pin it with 'swcli instance checkpoints ALIAS --trust KEY')\n", key, old)
		return nil
	}
	key, err := ops.LedgerKey(e.ctx, in)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"key": key})
	}
	e.printf("%s\n", key)
	return nil
}

// LedgerProveCmd is 'ledger prove'.
type LedgerProveCmd struct {
	Seq  uint64 `arg:"" optional:"" help:"The event to prove in the log (its sequence number, as 'ledger log' shows)."`
	From uint64 `help:"Prove instead that the log of this many events is a prefix of today's."`
}

// Run prints the proof with today's signed checkpoint and the verifier key: all a
// verifier needs (scripts/verify-ledger-proof.py).
func (c *LedgerProveCmd) Run(e *env) error {
	if (c.Seq == 0) == (c.From == 0) {
		return ops.Errorf(ops.KindUsage, "swcli ledger prove SEQ, or swcli ledger prove --from N", "give an event or --from, one of them")
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	p, err := ops.ProveLedger(e.ctx, in, c.Seq, c.From)
	if err != nil {
		return err
	}
	return e.printJSON(p)
}

// LedgerLogCmd is `ledger log`.
type LedgerLogCmd struct {
	Project string   `short:"p" help:"Only this project."`
	Runtime string   `short:"r" help:"Only this runtime."`
	Type    []string `short:"t" help:"Only these event types (runtime.built, runtime.tagged, …)."`
	Since   string   `help:"Only events at or after this time (RFC 3339 or YYYY-MM-DD)."`
	Until   string   `help:"Only events before this time."`
	AdminTarget
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
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	show := func(ev ledger.Event) error {
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
			target += "/" + ev.Version[:min(12, len(ev.Version))]
		}
		fmt.Fprintf(w, "%6d  %s  %-17s  %-30s  %s  %s\n", ev.Seq, ev.Time.Local().Format("2006-01-02 15:04:05"), ev.Type, target, printable(ev.Actor), printable(string(ev.Data)))
		return nil
	}
	if a, err := e.ledgerAdmin(c.AdminTarget); err != nil || a != nil {
		if err != nil {
			return err
		}
		// A served root, or a server: its export, checked here as it streams, filtered here.
		_, err := readRemoteExport(e, a, nil, func(ev ledger.Event) error {
			if f.Match(&ev) && ev.Seq >= f.FromSeq {
				return show(ev)
			}
			return nil
		})
		return err
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	return ops.LedgerLog(e.ctx, in, f, show)
}

// ledgerAdmin is the admin through which the ledger is read when it is not opened here: a
// server named by --instance, or the server running on the root; nil otherwise.
func (e *env) ledgerAdmin(t AdminTarget) (ops.Admin, error) {
	if t.Instance == "" && !(ops.Serving(e.g.root()) && e.backend.Ledger == "") {
		return nil, nil
	}
	return e.admin(t)
}

// readRemoteExport streams a's export, checking the chain as it comes (ledger.ReadExport),
// copying the lines to copyTo (if any) and calling fn with each event.
func readRemoteExport(e *env, a ops.Admin, copyTo io.Writer, fn func(ledger.Event) error) (ledger.Head, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := a.LedgerExport(e.ctx, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	var src io.Reader = pr
	if copyTo != nil {
		src = io.TeeReader(pr, copyTo)
	}
	head, err := ledger.ReadExport(src, fn)
	pr.CloseWithError(errors.New("stopped reading"))
	xerr := <-done
	if xerr != nil && ops.KindOf(xerr) != ops.KindFailure {
		return head, xerr
	}
	if err != nil {
		if ops.KindOf(err) != ops.KindFailure {
			return head, err
		}
		return head, &ops.Error{Kind: ops.KindCorrupt, Err: fmt.Errorf("the ledger export of %s does not check: %v", a.Where(), err),
			Hint: "its history was changed, or the stream was cut; run 'swcli ledger verify' on the server's root"}
	}
	return head, xerr
}

// LedgerVerifyCmd is `ledger verify`.
type LedgerVerifyCmd struct{ AdminTarget }

// Run verifies: here, or (a served root, a server) by the server, with its export's chain
// checked again here.
func (c *LedgerVerifyCmd) Run(e *env) error {
	var rep *ops.LedgerReport
	where := ""
	a, err := e.ledgerAdmin(c.AdminTarget)
	if err != nil {
		return err
	}
	if a != nil {
		if rep, err = a.LedgerVerify(e.ctx); err != nil {
			return err
		}
		head, err := readRemoteExport(e, a, nil, func(ledger.Event) error { return nil })
		if err != nil {
			return err
		}
		if head.Seq < rep.Head {
			return &ops.Error{Kind: ops.KindCorrupt, Err: fmt.Errorf("%s verified %d events but exports %d", a.Where(), rep.Head, head.Seq),
				Hint: "its history was changed between the two; run 'swcli ledger verify' on the server's root"}
		}
		where = fmt.Sprintf(", verified by %s; its export's chain checked here (%s)", a.Where(), plural(int(head.Seq), "event"))
	} else {
		in, err := e.open()
		if err != nil {
			return err
		}
		defer in.Close()
		if rep, err = ops.VerifyLedger(e.ctx, in); err != nil {
			return err
		}
	}
	if e.jsonOut() {
		if err := e.printJSON(map[string]any{"events": rep.Events, "head": rep.Head, "head_hash": rep.HeadHash, "ok": len(rep.Problems) == 0, "problems": rep.Problems}); err != nil {
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
		e.printf("ledger ok: %s, chain intact, projections match a replay, every manifest present (head %d %s)%s\n",
			plural(int(rep.Events), "event"), rep.Head, rep.HeadHash.Short(12), where)
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
	snap, err := ops.ReplayLedger(e.ctx, in, to)
	if err != nil {
		return err
	}
	vs, _, err := snap.Versions(project, "", ledger.ListOptions{})
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"seq": snap.Head.Seq, "time": snap.Time, "project": project, "versions": api.DTOs(vs)})
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
	AdminTarget
}

// Run exports.
func (c *LedgerExportCmd) Run(e *env) error {
	a, err := e.ledgerAdmin(c.AdminTarget)
	if err != nil {
		return err
	}
	var export func(w io.Writer) error
	if a != nil {
		export = func(w io.Writer) error {
			_, err := readRemoteExport(e, a, w, func(ledger.Event) error { return nil })
			return err
		}
	} else {
		in, err := e.open()
		if err != nil {
			return err
		}
		defer in.Close()
		export = func(w io.Writer) error { return ops.ExportLedger(e.ctx, in, w) }
	}
	w := bufio.NewWriterSize(e.stdout, 1<<20)
	var f *os.File
	if c.File != "" {
		if f, err = os.Create(c.File); err != nil {
			return ops.Errorf(ops.KindUsage, "", "export: %v", err)
		}
		defer f.Close()
		w = bufio.NewWriterSize(f, 1<<20)
	}
	if err := export(w); err != nil {
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
