package protocol

import "fmt"

// Opcode identifies a frame's purpose and body layout. The opcode space is
// split in ranges: 0x01–0x3F for the client port (defined below),
// 0x40–0x7F reserved for the control port, 0x80–0xFF reserved for
// extensions. 0x00 is never valid.
type Opcode uint8

// Client-port opcodes. The direction (C→S client to server, S→C server to
// client) and body of each are given in docs/PROTOCOL.md and on the
// matching message type.
const (
	OpHello       Opcode = 0x01 // C→S: Hello; first frame of a connection.
	OpAuthOK      Opcode = 0x02 // S→C: AuthOK; authentication succeeded.
	OpAuthFail    Opcode = 0x03 // S→C: AuthFail; the server closes next.
	OpPing        Opcode = 0x04 // both: empty body; answered by PONG with the same seq.
	OpPong        Opcode = 0x05 // both: empty body.
	OpSend        Opcode = 0x06 // C→S: Send; answered by SEND_REPLY or ERROR unless FlagNoReply.
	OpSendReply   Opcode = 0x07 // S→C: SendReply.
	OpPush        Opcode = 0x08 // S→C: Push; FlagAckRequested makes it QoS1.
	OpAck         Opcode = 0x09 // C→S: Ack; cumulative QoS1 acknowledgement.
	OpSubscribe   Opcode = 0x0A // C→S: Subscribe; answered by OK or ERROR.
	OpUnsubscribe Opcode = 0x0B // C→S: Unsubscribe; answered by OK or ERROR.
	OpOK          Opcode = 0x0C // S→C: empty body; generic success reply.
	OpGoAway      Opcode = 0x0D // S→C: GoAway; reconnect elsewhere after a delay.
	OpClose       Opcode = 0x0E // both: Close; the sender closes right after.
	OpError       Opcode = 0x0F // S→C: Error; non-fatal failure of a request.
	OpRefresh     Opcode = 0x10 // C→S: Refresh; a fresh token, answered by REFRESH_OK or ERROR.
	OpRefreshOK   Opcode = 0x11 // S→C: RefreshOK; the connection lives on to the new expiry.
)

// Opcode ranges.
const (
	// ClientOpMin and ClientOpMax bound the client-port opcodes. Opcodes in
	// this range not defined above are answered with ERROR UnknownOpcode.
	ClientOpMin Opcode = 0x01
	ClientOpMax Opcode = 0x3F

	// ControlOpMin and ControlOpMax bound the opcodes reserved for the
	// control port; their bodies are defined by a later revision.
	ControlOpMin Opcode = 0x40
	ControlOpMax Opcode = 0x7F

	// ExtensionOpMin is the first opcode reserved for extensions; the range
	// runs to 0xFF.
	ExtensionOpMin Opcode = 0x80
)

var opcodeNames = [...]string{
	OpHello:       "HELLO",
	OpAuthOK:      "AUTH_OK",
	OpAuthFail:    "AUTH_FAIL",
	OpPing:        "PING",
	OpPong:        "PONG",
	OpSend:        "SEND",
	OpSendReply:   "SEND_REPLY",
	OpPush:        "PUSH",
	OpAck:         "ACK",
	OpSubscribe:   "SUBSCRIBE",
	OpUnsubscribe: "UNSUBSCRIBE",
	OpOK:          "OK",
	OpGoAway:      "GOAWAY",
	OpClose:       "CLOSE",
	OpError:       "ERROR",
	OpRefresh:     "REFRESH",
	OpRefreshOK:   "REFRESH_OK",
}

// String returns the opcode's wire name as used in PROTOCOL.md (e.g.
// "AUTH_OK"), or "OPCODE(0xNN)" for an opcode this revision does not define.
// It allocates only for undefined opcodes.
func (o Opcode) String() string {
	if o.IsKnown() {
		return opcodeNames[o]
	}
	return fmt.Sprintf("OPCODE(0x%02x)", uint8(o))
}

// IsKnown reports whether o is one of the client-port opcodes defined by
// this revision of the protocol.
func (o Opcode) IsKnown() bool {
	return int(o) < len(opcodeNames) && opcodeNames[o] != ""
}

// IsClient reports whether o lies in the client-port range 0x01–0x3F,
// whether or not this revision defines it.
func (o Opcode) IsClient() bool {
	return o >= ClientOpMin && o <= ClientOpMax
}

// IsControl reports whether o lies in the range 0x40–0x7F reserved for the
// control port.
func (o Opcode) IsControl() bool {
	return o >= ControlOpMin && o <= ControlOpMax
}

// IsExtension reports whether o lies in the range 0x80–0xFF reserved for
// extensions.
func (o Opcode) IsExtension() bool {
	return o >= ExtensionOpMin
}
