package protocol

import "strconv"

// Code is a close, failure or error code carried by AUTH_FAIL, GOAWAY,
// CLOSE and ERROR frames. Its value is the uint16 sent on the wire. The
// value range tells a client what to do, even for codes it does not know:
//
//	1000        normal closure
//	3000–3499   reconnect with backoff          (IsReconnect)
//	3500–3999   terminal: do not reconnect      (IsTerminal)
//	4000–4999   request errors in ERROR frames  (IsError)
type Code uint16

// CodeNormal is a deliberate, orderly close (normally the answer to a
// client's own CLOSE).
const CodeNormal Code = 1000

// Reconnect codes (3000–3499): the connection ends but the client should
// reconnect, to any node, with exponential backoff.
const (
	CodeGoingAway        Code = 3000 // server shutdown or drain
	CodeHeartbeatTimeout Code = 3001 // no frame within 1.5 × heartbeat
	CodeSlowConsumer     Code = 3002 // client did not read fast enough
	CodeServerBusy       Code = 3003 // server overloaded
	CodeInternalError    Code = 3004 // server-side failure
	CodeRateLimited      Code = 3005 // connect rate or per-IP limit hit
	CodeServerFull       Code = 3006 // maximum connections reached
	CodeAuthTimeout      Code = 3007 // no HELLO within the auth deadline
)

// Terminal codes (3500–3999): the client must not reconnect until the user
// or application acts (for example obtains a new token).
const (
	CodeInvalidToken       Code = 3500 // token rejected
	CodeTokenExpired       Code = 3501 // token expired; get a new one
	CodeKicked             Code = 3502 // removed by an operator or the application
	CodeReplaced           Code = 3503 // a newer login replaced this one (multi-device policy)
	CodeProtocolError      Code = 3504 // peer violated the protocol
	CodeFrameTooLarge      Code = 3505 // frame above the receiver's limit
	CodeUnsupportedVersion Code = 3506 // version byte not supported; header carries the server's version
	CodeForbidden          Code = 3507 // user or device banned
)

// Error codes (4000–4999), carried by ERROR frames: the request failed, the
// connection stays open.
const (
	CodeBadRequest    Code = 4000 // request malformed or invalid
	CodeNoRoute       Code = 4001 // no service for the SEND route
	CodeBusy          Code = 4002 // pool or service saturated; retry later
	CodeTimeout       Code = 4003 // the service did not answer in time
	CodeDenied        Code = 4004 // the handler refused the request
	CodeTooManyRooms  Code = 4005 // subscription limit reached
	CodeUnknownOpcode Code = 4006 // opcode in the client range not understood
	CodeInternal      Code = 4007 // server-side failure handling the request
	CodeNotFound      Code = 4008 // the addressed resource does not exist
)

// Code ranges.
const (
	codeTerminalMin Code = 3500
	codeTerminalMax Code = 3999
	codeErrorMin    Code = 4000
	codeErrorMax    Code = 4999
)

var codeNames = map[Code]string{
	CodeNormal:             "NORMAL",
	CodeGoingAway:          "GOING_AWAY",
	CodeHeartbeatTimeout:   "HEARTBEAT_TIMEOUT",
	CodeSlowConsumer:       "SLOW_CONSUMER",
	CodeServerBusy:         "SERVER_BUSY",
	CodeInternalError:      "INTERNAL_ERROR",
	CodeRateLimited:        "RATE_LIMITED",
	CodeServerFull:         "SERVER_FULL",
	CodeAuthTimeout:        "AUTH_TIMEOUT",
	CodeInvalidToken:       "INVALID_TOKEN",
	CodeTokenExpired:       "TOKEN_EXPIRED",
	CodeKicked:             "KICKED",
	CodeReplaced:           "REPLACED",
	CodeProtocolError:      "PROTOCOL_ERROR",
	CodeFrameTooLarge:      "FRAME_TOO_LARGE",
	CodeUnsupportedVersion: "UNSUPPORTED_VERSION",
	CodeForbidden:          "FORBIDDEN",
	CodeBadRequest:         "BAD_REQUEST",
	CodeNoRoute:            "NO_ROUTE",
	CodeBusy:               "BUSY",
	CodeTimeout:            "TIMEOUT",
	CodeDenied:             "DENIED",
	CodeTooManyRooms:       "TOO_MANY_ROOMS",
	CodeUnknownOpcode:      "UNKNOWN_OPCODE",
	CodeInternal:           "INTERNAL",
	CodeNotFound:           "NOT_FOUND",
}

// String returns the code's name as used in PROTOCOL.md (e.g. "KICKED"), or
// "CODE(n)" for a code this revision does not define. It allocates only for
// undefined codes.
func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return "CODE(" + strconv.Itoa(int(c)) + ")"
}

// IsKnown reports whether this revision of the protocol defines c.
func (c Code) IsKnown() bool {
	_, ok := codeNames[c]
	return ok
}

// IsTerminal reports whether a connection ended with c (by AUTH_FAIL,
// GOAWAY or CLOSE) must not be re-established automatically: c lies in
// 3500–3999. The client waits for the user or application to act, for
// example to supply a new token.
func (c Code) IsTerminal() bool {
	return c >= codeTerminalMin && c <= codeTerminalMax
}

// IsReconnect reports whether a client whose connection ended with c
// should reconnect with backoff. It is the complement of IsTerminal, so
// the rule also covers codes a client does not know: everything outside
// 3500–3999, which includes the reconnect range 3000–3499 and CodeNormal
// received from the server, means reconnect.
func (c Code) IsReconnect() bool {
	return !c.IsTerminal()
}

// IsError reports whether c lies in the 4000–4999 range used by ERROR
// frames, which fail one request and leave the connection open.
func (c Code) IsError() bool {
	return c >= codeErrorMin && c <= codeErrorMax
}
