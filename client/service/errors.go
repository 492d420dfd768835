package service

import (
	"errors"
	"fmt"

	"github.com/tether-gw/tether/protocol"
)

// Sentinel errors; test with errors.Is, they are usually wrapped with detail.
var (
	// ErrClosed is returned by methods of a Service after Close, or after the gateway
	// ended it with a terminal code (the *CloseError is wrapped too).
	ErrClosed = errors.New("service: closed")
	// ErrDisconnected is returned when the connection ended before a request's answer
	// arrived (its outcome is unknown), when a write failed, and by Uplink.Reply after
	// the connection the uplink came on was lost.
	ErrDisconnected = errors.New("service: disconnected")
	// ErrTimeout is returned when a request got no answer within
	// Options.RequestTimeout. A deadline of the caller's own context is reported as
	// that context's error instead.
	ErrTimeout = errors.New("service: request timed out")
	// ErrTooLarge is returned, before anything is sent, for a request larger than the
	// gateway's control max frame.
	ErrTooLarge = errors.New("service: request exceeds the gateway's max frame")
	// ErrAlreadyReplied is returned by a second Uplink.Reply or Uplink.Fail.
	ErrAlreadyReplied = errors.New("service: uplink already answered")
)

// Error is the gateway's FAIL answer to a request: the request failed and the
// connection stays open.
type Error struct {
	// Code is from the 4000–4999 range, e.g. protocol.ErrorNotFound for a push to
	// nobody online or an unknown room.
	Code protocol.ErrorCode
	// Message is the gateway's human-readable detail.
	Message string
	// Offline is set on a push that failed with NOT_FOUND: how many addressed users
	// (or connections) were offline.
	Offline int
	// Delivered is set on a push that failed with UNAVAILABLE (a cluster node that
	// cannot reach the others): how many connections of that node got it.
	Delivered int
}

// Error implements error, e.g. "service: NOT_FOUND (4008): no such room".
func (e *Error) Error() string {
	return fmt.Sprintf("service: %s (%d): %s", e.Code, uint16(e.Code), e.Message)
}

// IsNotFound reports whether err is a FAIL with NOT_FOUND: the addressed users,
// connections or room do not exist (are offline).
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == protocol.ErrorNotFound
}

// CloseError reports that the gateway closed the control connection with a code: a
// wrong secret (3500 INVALID_TOKEN), a protocol error (3504), a frame too large
// (3505), a service too slow to read (3002), or shutdown (3000).
type CloseError struct {
	Code   protocol.CloseCode
	Reason string
}

// Error implements error, e.g. "service: gateway closed the connection: INVALID_TOKEN (3500): invalid secret".
func (e *CloseError) Error() string {
	return fmt.Sprintf("service: gateway closed the connection: %s (%d): %s", e.Code, uint16(e.Code), e.Reason)
}

// Terminal reports whether reconnecting is pointless until something changes (a new
// secret): the code lies in 3500–3999.
func (e *CloseError) Terminal() bool { return e.Code.IsTerminal() }
