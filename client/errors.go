package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// Sentinel errors. Test for them with errors.Is: they are usually wrapped with
// detail.
var (
	// ErrClosed is returned by methods of a Client that is closed, by Close or
	// by a terminal code; in the latter case the *CloseError is wrapped too.
	ErrClosed = errors.New("client: closed")

	// ErrDisconnected is returned when the connection a request was sent on
	// ended before its answer arrived (the outcome is unknown), when a write
	// failed, and, wrapped with the context's error, when no connection came
	// up before a request's deadline.
	ErrDisconnected = errors.New("client: disconnected")

	// ErrTimeout is returned when a request got no answer within
	// Options.RequestTimeout. A deadline of the caller's own context is
	// reported as that context's error instead.
	ErrTimeout = errors.New("client: request timed out")

	// ErrHandshakeTimeout is returned when neither AUTH_OK nor AUTH_FAIL
	// arrived within Options.HandshakeTimeout.
	ErrHandshakeTimeout = errors.New("client: handshake timed out")

	// ErrHeartbeatTimeout is the cause reported when the server sent nothing
	// for 2 × the heartbeat interval and the client dropped the connection to
	// reconnect.
	ErrHeartbeatTimeout = errors.New("client: server silent for 2 × heartbeat")
)

// CloseError is a connection ended with a code: by the server's AUTH_FAIL,
// CLOSE or GOAWAY, or by the client's own CLOSE after it received a frame it
// could not accept (Local). Dial returns it for AUTH_FAIL; OnStateChange and
// ErrClosed carry it.
type CloseError struct {
	// Op is the frame that carried the code: protocol.OpAuthFail,
	// protocol.OpClose or protocol.OpGoAway.
	Op protocol.Opcode
	// Local is true when the client sent the CLOSE itself because the server
	// broke the protocol; Code is then PROTOCOL_ERROR, FRAME_TOO_LARGE or
	// UNSUPPORTED_VERSION, all terminal, and Reason says what was wrong.
	Local bool
	// Code says why; Terminal tells whether the client may reconnect.
	Code protocol.CloseCode
	// Reason is the server's human-readable detail, for logs.
	Reason string
	// RetryAfter is the wait a GOAWAY asked for; 0 for the other frames.
	RetryAfter time.Duration
}

// Error implements error, e.g. "client: CLOSE KICKED (3502): bye".
func (e *CloseError) Error() string {
	by := ""
	if e.Local {
		by = "sent "
	}
	return fmt.Sprintf("client: %s%s %s (%d): %s", by, e.Op, e.Code, uint16(e.Code), e.Reason)
}

// Terminal reports whether the code forbids reconnecting (3500–3999): the
// application must act first, for example obtain a new token.
func (e *CloseError) Terminal() bool { return e.Code.IsTerminal() }

// ServerError is an ERROR frame answering a request: the request failed and
// the connection stays open.
type ServerError struct {
	// Code is from the 4000–4999 range, e.g. protocol.ErrorNoRoute.
	Code protocol.ErrorCode
	// Message is the server's human-readable detail, for logs.
	Message string
}

// Error implements error, e.g. "client: server error NO_ROUTE (4001): no route".
func (e *ServerError) Error() string {
	return fmt.Sprintf("client: server error %s (%d): %s", e.Code, uint16(e.Code), e.Message)
}
