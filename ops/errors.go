// Package ops holds swcli's use cases: store a tree, build, copy, extract, restore, list …
// Each takes a request, returns a result and reports progress through an interface it owns;
// nothing here prints or exits. The front ends are cli and ops/server (the HTTP server,
// with ops/console); the client of a server is ops/client.
package ops

import "github.com/swcli/swcli/ops/errs"

// The error kinds live in ops/errs, beneath every package that returns them; these names
// let ops and its callers keep saying ops.Errorf, ops.KindUsage …
type (
	Kind  = errs.Kind
	Error = errs.Error
)

const (
	KindFailure   = errs.KindFailure
	KindUsage     = errs.KindUsage
	KindNotFound  = errs.KindNotFound
	KindExists    = errs.KindExists
	KindCorrupt   = errs.KindCorrupt
	KindInvalid   = errs.KindInvalid
	KindEnv       = errs.KindEnv
	KindAuth      = errs.KindAuth
	KindForbidden = errs.KindForbidden
	KindRemote    = errs.KindRemote
	KindBusy      = errs.KindBusy
	KindTooLarge  = errs.KindTooLarge
	KindTooMany   = errs.KindTooMany
)

// Errorf returns an *Error of kind k.
func Errorf(k Kind, hint, format string, args ...any) error {
	return errs.Errorf(k, hint, format, args...)
}

// KindOf returns the kind of err (KindFailure when it has none).
func KindOf(err error) Kind { return errs.KindOf(err) }

// HintOf returns the first hint in err's chain.
func HintOf(err error) string { return errs.HintOf(err) }
