package cli

import (
	"context"
	"errors"
	"testing"

	"github.com/swcli/swcli/ops"
)

// A child that Ctrl-C reached first ("signal: interrupt") is an interrupt, exit 130, even
// before the command's context says so; other failures keep their kind.
func TestInterruptsReportAsInterrupted(t *testing.T) {
	live := context.Background()
	child := &ops.Error{Kind: ops.KindEnv, Err: errors.New("pip freeze: signal: interrupt")}
	if got := exitCode(interrupted(live, child)); got != ExitInterrupted {
		t.Fatalf("a child killed by SIGINT: exit %d, want %d", got, ExitInterrupted)
	}
	cancelled, cancel := context.WithCancel(live)
	cancel()
	if got := exitCode(interrupted(cancelled, &ops.Error{Kind: ops.KindEnv, Err: errors.New("pip: exit status 1")})); got != ExitInterrupted {
		t.Fatalf("a failure after the interrupt: exit %d, want %d", got, ExitInterrupted)
	}
	if got := exitCode(interrupted(live, &ops.Error{Kind: ops.KindEnv, Err: errors.New("pip: exit status 1")})); got != ExitEnv {
		t.Fatalf("a plain failure: exit %d, want %d", got, ExitEnv)
	}
}
