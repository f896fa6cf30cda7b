// Package errs is swcli's error with a kind and a hint: every layer returns it, the CLI
// maps each kind to an exit code and prints the hint, the server answers with the kind's
// name and the client maps it back.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the user: the CLI maps each kind to a documented exit code.
type Kind int

const (
	KindFailure   Kind = iota // anything else
	KindUsage                 // bad arguments: names, URIs, flags
	KindNotFound              // no such runtime, version, tag, project or file
	KindExists                // the target exists; -f replaces it
	KindCorrupt               // stored data or history failed verification
	KindInvalid               // a malformed input file (runtime.yaml, manifest)
	KindEnv                   // the host lacks what is needed (python, conda, pip)
	KindAuth                  // the server refused the credentials (HTTP 401)
	KindForbidden             // the credentials are good but do not allow this (HTTP 403)
	KindRemote                // the server or the network failed
	KindBusy                  // the store is in use
	KindTooLarge              // a request over a server limit
	KindTooMany               // the server is at its limit of such requests (HTTP 429)
)

// Error is an error with a kind and a hint telling the user what to do next.
type Error struct {
	Kind Kind
	Err  error
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k.
func Errorf(k Kind, hint, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...), Hint: hint}
}

// KindOf returns the kind of err (KindFailure when it has none).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindFailure
}

// HintOf returns the first hint in err's chain.
func HintOf(err error) string {
	var e *Error
	for errors.As(err, &e) {
		if e.Hint != "" {
			return e.Hint
		}
		err = e.Err
	}
	return ""
}

// String names the kind as the server's answers and JSON errors do ("not_found").
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "failure"
}

var kindNames = map[Kind]string{KindFailure: "failure", KindUsage: "usage", KindNotFound: "not_found",
	KindExists: "exists", KindCorrupt: "corrupt", KindInvalid: "invalid", KindEnv: "env",
	KindAuth: "auth", KindForbidden: "forbidden", KindRemote: "remote", KindBusy: "busy", KindTooLarge: "too_large",
	KindTooMany: "too_many"}
