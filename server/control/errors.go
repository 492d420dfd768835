package control

import (
	"errors"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

var (
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("control: port closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("control: port already started")
	// ErrInsecureAddr is returned by Start when Options.Insecure is set and the
	// address is not loopback: a control port without a secret must not be reachable
	// from other machines.
	ErrInsecureAddr = errors.New("control: refusing to listen without a secret on a non-loopback address")
	// ErrWeakSecret is returned by New when Options.Secret is shorter than
	// MinSecretLen and the address is not loopback.
	ErrWeakSecret = errors.New("control: secret shorter than 16 bytes on a non-loopback address")
)

// Failure is an operation's failure: the FAIL the control port sends (PROTOCOL.md
// §15.4), and the error the Ops methods return, for any other front end (the HTTP API)
// to render with the same code.
type Failure struct {
	// Code is the FAIL code, from the 4000–4999 range.
	Code protocol.ErrorCode
	// Message is human-readable detail.
	Message string
	// Offline is set on a PUSH that failed with NOT_FOUND: how many of the addressed
	// users (or connections) were not online.
	Offline int
	// Delivered is set on a PUSH that failed with UNAVAILABLE: how many connections of
	// this node got it before its cross-node part failed.
	Delivered int
}

// Error returns the code's name and the message.
func (f *Failure) Error() string { return f.Code.String() + ": " + f.Message }

// Fail is the FAIL header carrying f.
func (f *Failure) Fail() *wire.Fail {
	return &wire.Fail{Code: f.Code, Message: f.Message, Offline: f.Offline, Delivered: f.Delivered}
}

func fail(code protocol.ErrorCode, msg string) *Failure { return &Failure{Code: code, Message: msg} }

func badRequest(msg string) *Failure { return fail(protocol.ErrorBadRequest, msg) }

// asFailure returns err as a *Failure; an error of another type (none of the Ops
// returns one) becomes INTERNAL.
func asFailure(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return fail(protocol.ErrorInternal, err.Error())
}
