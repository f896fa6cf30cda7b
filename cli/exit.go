package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/flock"
	"github.com/swcli/swcli/ops"
)

// Exit codes, documented in README.md ("Exit codes").
const (
	ExitOK          = 0
	ExitFailure     = 1   // anything not listed below
	ExitUsage       = 2   // bad flags, arguments, names or URIs
	ExitNotFound    = 3   // no such runtime, version, tag, project, tree or file
	ExitExists      = 4   // the target exists; -f replaces it
	ExitCorrupt     = 5   // stored data or history failed verification
	ExitInvalid     = 6   // a malformed input file (runtime.yaml …)
	ExitEnv         = 7   // the host lacks a needed tool (python, conda, pip)
	ExitAuth        = 8   // the server refused the token or the access
	ExitRemote      = 9   // the server or the network failed
	ExitBusy        = 10  // the store is held by another process
	ExitIO          = 11  // the disk is full (or read-only, or failing): nothing was half-done
	ExitInterrupted = 130 // interrupted (Ctrl-C); stores are left consistent
)

func exitCode(err error) int {
	switch {
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, cas.ErrCorrupt):
		return ExitCorrupt
	case errors.Is(err, flock.ErrBusy):
		return ExitBusy
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EIO):
		return ExitIO
	}
	switch ops.KindOf(err) {
	case ops.KindUsage:
		return ExitUsage
	case ops.KindNotFound:
		return ExitNotFound
	case ops.KindExists:
		return ExitExists
	case ops.KindCorrupt:
		return ExitCorrupt
	case ops.KindInvalid:
		return ExitInvalid
	case ops.KindEnv:
		return ExitEnv
	case ops.KindAuth, ops.KindForbidden:
		return ExitAuth
	case ops.KindRemote, ops.KindTooMany:
		return ExitRemote
	case ops.KindBusy:
		return ExitBusy
	}
	return ExitFailure
}

// reportError prints err in the house style, one line of error and at most one of hint,
// and returns its exit code.
func reportError(w io.Writer, err error, asJSON bool) int {
	var ce childExit
	if errors.As(err, &ce) {
		return int(ce) // runtime run: the command spoke for itself
	}
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	if errors.Is(err, context.Canceled) {
		msg = "interrupted; the store is consistent and the command can be run again"
	}
	code := exitCode(err)
	if asJSON {
		// -o json: one JSON line on stderr, for scripts (stdout keeps results only).
		b, _ := json.Marshal(map[string]any{"error": msg, "hint": ops.HintOf(err), "kind": kindName(err), "code": code})
		fmt.Fprintf(w, "%s\n", b)
		return code
	}
	fmt.Fprintf(w, "swcli: error: %s\n", msg)
	if hint := ops.HintOf(err); hint != "" {
		fmt.Fprintf(w, "swcli: hint: %s\n", hint)
	}
	return code
}

// interrupted makes an error that an interrupt caused one: a child (pip, conda) that the
// terminal's Ctrl-C reached first fails with "signal: interrupt" before the command's
// context says it was cancelled; either way the user interrupted, and hears so (130).
func interrupted(ctx context.Context, err error) error {
	var ce childExit
	if errors.Is(err, context.Canceled) || errors.As(err, &ce) {
		return err
	}
	var ee *exec.ExitError
	signaled := false
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && (ws.Signal() == syscall.SIGINT || ws.Signal() == syscall.SIGTERM) {
			signaled = true
		}
	}
	if ctx.Err() != nil || signaled || strings.Contains(err.Error(), "signal: interrupt") {
		return fmt.Errorf("%w (%v)", context.Canceled, err)
	}
	return err
}

// childExit is the exit code of a command that runtime run ran: swcli exits with it and
// adds nothing.
type childExit int

func (c childExit) Error() string { return fmt.Sprintf("command exited with %d", int(c)) }

// kindName names an error's kind for JSON errors.
func kindName(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, flock.ErrBusy):
		return "busy"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EIO):
		return "io"
	}
	return ops.KindOf(err).String()
}
