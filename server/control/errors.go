package control

import (
	"errors"

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

// failure is an operation's failure, sent to the service as FAIL.
type failure struct {
	code      protocol.ErrorCode
	msg       string
	offline   int
	delivered int
}

func (f *failure) Error() string { return f.code.String() + ": " + f.msg }

func fail(code protocol.ErrorCode, msg string) *failure { return &failure{code: code, msg: msg} }

func badRequest(msg string) *failure { return fail(protocol.ErrorBadRequest, msg) }
