package httpapi

import (
	"errors"
	"net/http"

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server/control"
)

var (
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("httpapi: closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("httpapi: already started")
	// ErrInsecureAddr is returned by New when Options.Insecure is set and the address
	// is not loopback: an API without a key must not be reachable from other machines.
	ErrInsecureAddr = errors.New("httpapi: refusing to listen without a key on a non-loopback address")
	// ErrWeakKey is returned by New when Options.Key is shorter than MinKeyLen and the
	// address is not loopback.
	ErrWeakKey = errors.New("httpapi: key shorter than 16 bytes on a non-loopback address")
)

// Error is the JSON error object of every failed request, under "error" in the body
// (ErrorBody). Code and Name are the control port's FAIL code and its name
// (PROTOCOL.md §15.4); Status is the HTTP status it was sent with.
type Error struct {
	// Status is the HTTP status (not in the JSON).
	Status int `json:"-"`
	// Code is the FAIL code, from the 4000–4999 range.
	Code protocol.ErrorCode `json:"code"`
	// Name is Code's name, e.g. "NOT_FOUND".
	Name string `json:"name"`
	// Message is human-readable detail.
	Message string `json:"message"`
	// Offline is set on a push that failed NOT_FOUND: addressed users (or connections)
	// not online.
	Offline int `json:"offline,omitempty"`
	// Delivered is set on a push that failed UNAVAILABLE: connections of this node that
	// got it before its cross-node part failed.
	Delivered int `json:"delivered,omitempty"`
}

// Error returns the code's name and the message.
func (e *Error) Error() string { return e.Name + ": " + e.Message }

// ErrorBody is the body of a failed request.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// newError returns an Error with code and the HTTP status status.
func newError(status int, code protocol.ErrorCode, msg string) *Error {
	return &Error{Status: status, Code: code, Name: code.String(), Message: msg}
}

func badRequest(msg string) *Error {
	return newError(http.StatusBadRequest, protocol.ErrorBadRequest, msg)
}

// fromFailure maps an operation's failure to its Error and HTTP status.
func fromFailure(f *control.Failure) *Error {
	e := newError(statusOf(f.Code), f.Code, f.Message)
	e.Offline, e.Delivered = f.Offline, f.Delivered
	return e
}

// asError returns err (from an operation or a handler) as an *Error.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var f *control.Failure
	if errors.As(err, &f) {
		return fromFailure(f)
	}
	return newError(http.StatusInternalServerError, protocol.ErrorInternal, err.Error())
}

// statusOf is the HTTP status of a FAIL code.
func statusOf(code protocol.ErrorCode) int {
	switch code {
	case protocol.ErrorBadRequest:
		return http.StatusBadRequest
	case protocol.ErrorNotFound:
		return http.StatusNotFound
	case protocol.ErrorTooManyRooms:
		return http.StatusConflict
	case protocol.ErrorDenied:
		return http.StatusForbidden
	case protocol.ErrorBusy, protocol.ErrorUnavailable:
		return http.StatusServiceUnavailable
	case protocol.ErrorTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}
