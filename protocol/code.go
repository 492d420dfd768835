package protocol

import "strconv"

// Codes come in two kinds, each a type of its own so that one cannot be passed where
// the other is meant. Both are the uint16 sent on the wire, and the value range tells a
// client what to do, even for a code it does not know:
//
//	1000        CloseCode: normal closure
//	3000–3499   CloseCode: reconnect with backoff          (CloseCode.IsReconnect)
//	3500–3999   CloseCode: terminal, do not reconnect      (CloseCode.IsTerminal)
//	4000–4999   ErrorCode: one request failed, the connection stays open
//
// CloseCode travels in AUTH_FAIL, GOAWAY and CLOSE; ErrorCode in ERROR (and in the
// control port's FAIL).

// CloseCode says why a connection ends (or is told to move, in GOAWAY): 1000 or
// 3000–3999. Its constants are named Close….
type CloseCode uint16

// ErrorCode says why one request failed while the connection stays open: 4000–4999.
// Its constants are named Error….
type ErrorCode uint16

// CloseNormal is a deliberate, orderly close (normally the answer to a
// client's own CLOSE).
const CloseNormal CloseCode = 1000

// Reconnect codes (3000–3499): the connection ends but the client should
// reconnect, to any node, with exponential backoff.
const (
	CloseGoingAway        CloseCode = 3000 // server shutdown or drain
	CloseHeartbeatTimeout CloseCode = 3001 // no frame within 1.5 × heartbeat
	CloseSlowConsumer     CloseCode = 3002 // client did not read fast enough
	CloseServerBusy       CloseCode = 3003 // server overloaded
	CloseInternal         CloseCode = 3004 // server-side failure
	CloseRateLimited      CloseCode = 3005 // connect rate or per-IP limit hit
	CloseServerFull       CloseCode = 3006 // maximum connections reached
	CloseAuthTimeout      CloseCode = 3007 // no HELLO within the auth deadline
	CloseSessionExpired   CloseCode = 3008 // the token expired on a live connection without a REFRESH
)

// Terminal codes (3500–3999): the client must not reconnect until the user
// or application acts (for example obtains a new token).
const (
	CloseInvalidToken       CloseCode = 3500 // token rejected
	CloseTokenExpired       CloseCode = 3501 // token expired; get a new one
	CloseKicked             CloseCode = 3502 // removed by an operator or the application
	CloseReplaced           CloseCode = 3503 // a newer login replaced this one (multi-device policy)
	CloseProtocolError      CloseCode = 3504 // peer violated the protocol
	CloseFrameTooLarge      CloseCode = 3505 // frame above the receiver's limit
	CloseUnsupportedVersion CloseCode = 3506 // version byte not supported; header carries the server's version
	CloseForbidden          CloseCode = 3507 // user or device banned
)

// Error codes (4000–4999), carried by ERROR frames: the request failed, the
// connection stays open.
const (
	ErrorBadRequest    ErrorCode = 4000 // request malformed or invalid
	ErrorNoRoute       ErrorCode = 4001 // no service for the SEND route
	ErrorBusy          ErrorCode = 4002 // pool or service saturated; retry later
	ErrorTimeout       ErrorCode = 4003 // the service did not answer in time
	ErrorDenied        ErrorCode = 4004 // the handler refused the request
	ErrorTooManyRooms  ErrorCode = 4005 // subscription limit reached
	ErrorUnknownOpcode ErrorCode = 4006 // opcode in the client range not understood
	ErrorInternal      ErrorCode = 4007 // server-side failure handling the request
	ErrorNotFound      ErrorCode = 4008 // the addressed resource does not exist
	ErrorUnavailable   ErrorCode = 4009 // a cluster operation reached this node only
	ErrorTokenRejected ErrorCode = 4010 // a REFRESH's token was refused; the old expiry stands
)

// Code ranges.
const (
	codeTerminalMin CloseCode = 3500
	codeTerminalMax CloseCode = 3999
	codeErrorMin    ErrorCode = 4000
	codeErrorMax    ErrorCode = 4999
)

var closeNames = map[CloseCode]string{
	CloseNormal:             "NORMAL",
	CloseGoingAway:          "GOING_AWAY",
	CloseHeartbeatTimeout:   "HEARTBEAT_TIMEOUT",
	CloseSlowConsumer:       "SLOW_CONSUMER",
	CloseServerBusy:         "SERVER_BUSY",
	CloseInternal:           "INTERNAL_ERROR",
	CloseRateLimited:        "RATE_LIMITED",
	CloseServerFull:         "SERVER_FULL",
	CloseAuthTimeout:        "AUTH_TIMEOUT",
	CloseSessionExpired:     "SESSION_EXPIRED",
	CloseInvalidToken:       "INVALID_TOKEN",
	CloseTokenExpired:       "TOKEN_EXPIRED",
	CloseKicked:             "KICKED",
	CloseReplaced:           "REPLACED",
	CloseProtocolError:      "PROTOCOL_ERROR",
	CloseFrameTooLarge:      "FRAME_TOO_LARGE",
	CloseUnsupportedVersion: "UNSUPPORTED_VERSION",
	CloseForbidden:          "FORBIDDEN",
}

var errorNames = map[ErrorCode]string{
	ErrorBadRequest:    "BAD_REQUEST",
	ErrorNoRoute:       "NO_ROUTE",
	ErrorBusy:          "BUSY",
	ErrorTimeout:       "TIMEOUT",
	ErrorDenied:        "DENIED",
	ErrorTooManyRooms:  "TOO_MANY_ROOMS",
	ErrorUnknownOpcode: "UNKNOWN_OPCODE",
	ErrorInternal:      "INTERNAL",
	ErrorNotFound:      "NOT_FOUND",
	ErrorUnavailable:   "UNAVAILABLE",
	ErrorTokenRejected: "TOKEN_REJECTED",
}

// String returns the code's name as used in PROTOCOL.md (e.g. "KICKED"), or
// "CODE(n)" for a code this revision does not define. It allocates only for
// undefined codes.
func (c CloseCode) String() string {
	if s, ok := closeNames[c]; ok {
		return s
	}
	return undefinedName(uint16(c))
}

// String returns the code's name as used in PROTOCOL.md (e.g. "NOT_FOUND"), or
// "CODE(n)" for a code this revision does not define. It allocates only for
// undefined codes.
func (c ErrorCode) String() string {
	if s, ok := errorNames[c]; ok {
		return s
	}
	return undefinedName(uint16(c))
}

func undefinedName(v uint16) string { return "CODE(" + strconv.Itoa(int(v)) + ")" }

// IsKnown reports whether this revision of the protocol defines c as a close code.
func (c CloseCode) IsKnown() bool {
	_, ok := closeNames[c]
	return ok
}

// IsKnown reports whether this revision of the protocol defines c as an error code.
func (c ErrorCode) IsKnown() bool {
	_, ok := errorNames[c]
	return ok
}

// IsTerminal reports whether a connection ended with c (by AUTH_FAIL,
// GOAWAY or CLOSE) must not be re-established automatically: c lies in
// 3500–3999. The client waits for the user or application to act, for
// example to supply a new token.
func (c CloseCode) IsTerminal() bool {
	return c >= codeTerminalMin && c <= codeTerminalMax
}

// IsReconnect reports whether a client whose connection ended with c
// should reconnect with backoff. It is the complement of IsTerminal, so
// the rule also covers codes a client does not know: everything outside
// 3500–3999, which includes the reconnect range 3000–3499 and CloseNormal
// received from the server, means reconnect.
func (c CloseCode) IsReconnect() bool {
	return !c.IsTerminal()
}

// InRange reports whether c lies in the 4000–4999 range of ERROR frames.
func (c ErrorCode) InRange() bool {
	return c >= codeErrorMin && c <= codeErrorMax
}
