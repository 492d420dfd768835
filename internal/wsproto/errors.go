package wsproto

import (
	"fmt"

	"github.com/gobwas/ws"
)

// WebSocket close codes this package produces for protocol violations
// (RFC 6455 section 7.4.1). They are the values of CloseError.Code.
const (
	// CloseProtocolError (1002) is a frame or message that breaks RFC 6455.
	CloseProtocolError = uint16(ws.StatusProtocolError)
	// CloseUnsupportedData (1003) is a text message: tether only speaks binary.
	CloseUnsupportedData = uint16(ws.StatusUnsupportedData)
	// CloseInvalidPayload (1007) is a close reason that is not UTF-8.
	CloseInvalidPayload = uint16(ws.StatusInvalidFramePayloadData)
	// CloseMessageTooBig (1009) is a message above Decoder.MaxMessage.
	CloseMessageTooBig = uint16(ws.StatusMessageTooBig)
	// CloseNormal (1000) is an orderly close.
	CloseNormal = uint16(ws.StatusNormalClosure)
)

// CloseError is a violation of RFC 6455 by the client. The connection must be
// failed: send AppendClose(Code, Reason) and close. Code is one of the
// Close… constants above.
type CloseError struct {
	Code   uint16 // WebSocket close code to send
	Reason string // short human-readable reason, safe to send as the close reason
}

// Error implements error.
func (e *CloseError) Error() string {
	return fmt.Sprintf("wsproto: close %d: %s", e.Code, e.Reason)
}

// UpgradeError is a refused opening handshake. Status is the HTTP status of
// the response Upgrade returned (400, 403, 404, 405, 426 or 431) and Reason
// the short text of its body.
type UpgradeError struct {
	Status int    // HTTP status code sent
	Reason string // plain-text body sent (without the trailing newline)
}

// Error implements error.
func (e *UpgradeError) Error() string {
	return fmt.Sprintf("wsproto: upgrade refused %d: %s", e.Status, e.Reason)
}

// Frame-level violations, one value per rule, so the decoder allocates
// nothing when it fails a connection.
var (
	errUnmasked        = &CloseError{CloseProtocolError, "unmasked client frame"}
	errRsv             = &CloseError{CloseProtocolError, "reserved bits set"}
	errOpcode          = &CloseError{CloseProtocolError, "unknown opcode"}
	errControlFragment = &CloseError{CloseProtocolError, "fragmented control frame"}
	errControlTooLong  = &CloseError{CloseProtocolError, "control frame payload above 125 bytes"}
	errLength63        = &CloseError{CloseProtocolError, "64-bit payload length with the top bit set"}
	errContinuation    = &CloseError{CloseProtocolError, "continuation frame without a message"}
	errUnfinished      = &CloseError{CloseProtocolError, "new data frame inside an unfinished message"}
	errText            = &CloseError{CloseUnsupportedData, "text messages are not supported; send binary"}
	errCloseLength     = &CloseError{CloseProtocolError, "close payload of 1 byte"}
	errCloseCode       = &CloseError{CloseProtocolError, "invalid close code"}
	errCloseReason     = &CloseError{CloseInvalidPayload, "close reason is not UTF-8"}
	errMessageTooBig   = &CloseError{CloseMessageTooBig, "message too big"}
)
