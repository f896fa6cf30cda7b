package ops

import (
	"context"
	"io"

	"github.com/swcli/swcli/ledger"
)

// The ledger as the commands read it: cli reaches the ledger through these, never through
// Instance.Ledger (internal/lint checks).

// Project is the ledger's project name (a name, as ProjectName gives).
func (in *Instance) Project(name string) (*ledger.Project, error) {
	p, err := in.Ledger.Project(name)
	return p, LedgerErr(err)
}

// Projects lists the instance's projects.
func (in *Instance) Projects() ([]*ledger.Project, error) {
	ps, err := in.Ledger.Projects()
	return ps, LedgerErr(err)
}

// LedgerLog calls fn for every event f selects, in order.
func LedgerLog(ctx context.Context, in *Instance, f ledger.Filter, fn func(ledger.Event) error) error {
	return in.Ledger.Log(ctx, f, fn)
}

// ExportLedger writes every event as an export line.
func ExportLedger(ctx context.Context, in *Instance, w io.Writer) error {
	return in.Ledger.Export(ctx, w)
}

// ReplayLedger rebuilds the projections from the events, in memory, as of to.
func ReplayLedger(ctx context.Context, in *Instance, to ledger.ReplayTo) (*ledger.Snapshot, error) {
	return in.Ledger.Replay(ctx, to)
}
