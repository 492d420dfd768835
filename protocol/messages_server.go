package protocol

import "encoding/binary"

// Bodies of the frames a server sends (S→C), and CLOSE, which both sides
// send.

// AuthOK is the body of AUTH_OK, the server's answer to a successful HELLO.
// It carries the connection's parameters. Body layout:
//
//	u64 conn_id | u32 heartbeat_ms | u32 max_frame | u64 server_time_ms |
//	u8 resume | u64 epoch | u64 last_id | str user_id [| u64 token_expires_ms]
//
// token_expires_ms is present only when the token has an expiry; a body
// without it (every body before this field was added) means none.
type AuthOK struct {
	// ConnID is the server-assigned connection id, for logs and support.
	ConnID uint64
	// HeartbeatMs is the heartbeat interval in milliseconds: the client sends
	// PING after sending nothing for this long.
	HeartbeatMs uint32
	// MaxFrame is the largest length field allowed from now on, in both
	// directions: the client must not send a longer frame and the server
	// does not send one.
	MaxFrame uint32
	// ServerTimeMs is the server's clock in Unix milliseconds. On the wire it
	// is a u64; values before 1970 are not meaningful.
	ServerTimeMs int64
	// Resume reports the outcome of the resume requested in HELLO.
	Resume ResumeResult

	// Epoch identifies the user's message sequence (it changes when ids
	// restart); LastID is where this connection's delivery starts: the
	// server then sends the QoS1 messages due to it with msg_id > LastID
	// (PROTOCOL.md §6.2, §11).
	Epoch  uint64
	LastID uint64
	// UserID is the authenticated user.
	UserID string
	// TokenExpiresMs is when the token expires, in Unix milliseconds, or 0 if
	// it does not: before then the client sends REFRESH with a fresh token,
	// or the server closes the connection with CloseSessionExpired. It is
	// encoded only when not 0.
	TokenExpiresMs int64
}

// Opcode returns OpAuthOK.
func (*AuthOK) Opcode() Opcode { return OpAuthOK }

// AppendFrame appends m as an AUTH_OK frame; see Message.
func (m *AuthOK) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	b, start := beginMessage(dst, OpAuthOK, seq, flags)
	b = binary.BigEndian.AppendUint64(b, m.ConnID)
	b = binary.BigEndian.AppendUint32(b, m.HeartbeatMs)
	b = binary.BigEndian.AppendUint32(b, m.MaxFrame)
	b = binary.BigEndian.AppendUint64(b, uint64(m.ServerTimeMs))
	b = append(b, byte(m.Resume))
	b = binary.BigEndian.AppendUint64(b, m.Epoch)
	b = binary.BigEndian.AppendUint64(b, m.LastID)
	b, err := appendStr(b, OpAuthOK, "user_id", m.UserID)
	if err != nil {
		return dst, err
	}
	if m.TokenExpiresMs != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(m.TokenExpiresMs))
	}
	return endMessage(dst, b, start, OpAuthOK)
}

// Decode sets m from an AUTH_OK body; see Message.
func (m *AuthOK) Decode(body []byte) error {
	r := bodyReader{b: body, op: OpAuthOK}
	v := AuthOK{
		ConnID:       r.u64("conn_id"),
		HeartbeatMs:  r.u32("heartbeat_ms"),
		MaxFrame:     r.u32("max_frame"),
		ServerTimeMs: int64(r.u64("server_time_ms")),
		Resume:       ResumeResult(r.u8("resume")),
		Epoch:        r.u64("epoch"),
		LastID:       r.u64("last_id"),
		UserID:       r.str("user_id"),
	}
	if r.err == nil && len(r.b) >= 8 {
		// The optional trailing field; fewer bytes are a later revision's.
		v.TokenExpiresMs = int64(r.u64("token_expires_ms"))
	}
	if r.err != nil {
		return r.err
	}
	*m = v
	return nil
}

// AuthFail is the body of AUTH_FAIL, the server's answer to a rejected
// HELLO; the server closes the connection right after. Body layout:
//
//	u16 code | str reason
type AuthFail struct {
	// Code says why; Code.IsTerminal tells whether to retry.
	Code CloseCode
	// Reason is human-readable detail for logs, not for program logic.
	Reason string
}

// Opcode returns OpAuthFail.
func (*AuthFail) Opcode() Opcode { return OpAuthFail }

// AppendFrame appends m as an AUTH_FAIL frame; see Message.
func (m *AuthFail) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	return appendCodeReason(dst, OpAuthFail, seq, flags, uint16(m.Code), "reason", m.Reason)
}

// Decode sets m from an AUTH_FAIL body; see Message.
func (m *AuthFail) Decode(body []byte) error {
	code, reason, err := decodeCodeReason(body, OpAuthFail, "reason")
	if err != nil {
		return err
	}
	*m = AuthFail{Code: CloseCode(code), Reason: reason}
	return nil
}

// SendReply is the body of SEND_REPLY, the service's answer to a SEND with
// the same seq. Body layout:
//
//	rest payload
type SendReply struct {
	// Payload is the opaque reply; after Decode it aliases the body.
	Payload []byte
}

// Opcode returns OpSendReply.
func (*SendReply) Opcode() Opcode { return OpSendReply }

// AppendFrame appends m as a SEND_REPLY frame; see Message.
func (m *SendReply) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	b, start := beginMessage(dst, OpSendReply, seq, flags)
	b = append(b, m.Payload...)
	return endMessage(dst, b, start, OpSendReply)
}

// Decode sets m from a SEND_REPLY body; Payload aliases body, and is nil
// when body is empty. It never fails.
func (m *SendReply) Decode(body []byte) error {
	r := bodyReader{b: body, op: OpSendReply}
	m.Payload = r.rest()
	return nil
}

// Push is the body of PUSH, a server-initiated message. With
// FlagAckRequested it is QoS1 and the client must ACK MsgID. Body layout:
//
//	u64 msg_id | str channel | rest payload
//
// A PUSH frame for a broadcast is encoded once and the same bytes are
// written to every recipient; it is sent with seq 0.
type Push struct {
	// MsgID is the message's id in the user's sequence, or 0 for a message
	// that is not sequenced (not resumable, never acknowledged).
	MsgID uint64
	// Channel is "" for a message addressed to the user or connection, or
	// the name of the room it was published to.
	Channel string
	// Payload is the opaque message; after Decode it aliases the body.
	Payload []byte
}

// Opcode returns OpPush.
func (*Push) Opcode() Opcode { return OpPush }

// AppendFrame appends m as a PUSH frame; see Message.
func (m *Push) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	b, start := beginMessage(dst, OpPush, seq, flags)
	b = binary.BigEndian.AppendUint64(b, m.MsgID)
	b, err := appendStr(b, OpPush, "channel", m.Channel)
	if err != nil {
		return dst, err
	}
	b = append(b, m.Payload...)
	return endMessage(dst, b, start, OpPush)
}

// Decode sets m from a PUSH body; Payload aliases body. See Message.
func (m *Push) Decode(body []byte) error {
	r := bodyReader{b: body, op: OpPush}
	v := Push{MsgID: r.u64("msg_id"), Channel: r.str("channel"), Payload: r.rest()}
	if r.err != nil {
		return r.err
	}
	*m = v
	return nil
}

// GoAway is the body of GOAWAY: the server asks the client to reconnect,
// to any node, after RetryAfterMs, and closes the connection. Body layout:
//
//	u16 code | u32 retry_after_ms | str reason
type GoAway struct {
	// Code says why, normally CloseGoingAway.
	Code CloseCode
	// RetryAfterMs is how long the client waits before reconnecting. The
	// server has already added jitter; the client uses it as is.
	RetryAfterMs uint32
	// Reason is human-readable detail for logs.
	Reason string
}

// Opcode returns OpGoAway.
func (*GoAway) Opcode() Opcode { return OpGoAway }

// AppendFrame appends m as a GOAWAY frame; see Message.
func (m *GoAway) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	b, start := beginMessage(dst, OpGoAway, seq, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(m.Code))
	b = binary.BigEndian.AppendUint32(b, m.RetryAfterMs)
	b, err := appendStr(b, OpGoAway, "reason", m.Reason)
	if err != nil {
		return dst, err
	}
	return endMessage(dst, b, start, OpGoAway)
}

// Decode sets m from a GOAWAY body; see Message.
func (m *GoAway) Decode(body []byte) error {
	r := bodyReader{b: body, op: OpGoAway}
	v := GoAway{
		Code:         CloseCode(r.u16("code")),
		RetryAfterMs: r.u32("retry_after_ms"),
		Reason:       r.str("reason"),
	}
	if r.err != nil {
		return r.err
	}
	*m = v
	return nil
}

// Close is the body of CLOSE, which either side sends just before closing
// the connection. A kick is a CLOSE with CloseKicked. Body layout:
//
//	u16 code | str reason
type Close struct {
	// Code says why; Code.IsTerminal tells the client whether to reconnect.
	Code CloseCode
	// Reason is human-readable detail for logs.
	Reason string
}

// Opcode returns OpClose.
func (*Close) Opcode() Opcode { return OpClose }

// AppendFrame appends m as a CLOSE frame; see Message.
func (m *Close) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	return appendCodeReason(dst, OpClose, seq, flags, uint16(m.Code), "reason", m.Reason)
}

// Decode sets m from a CLOSE body; see Message.
func (m *Close) Decode(body []byte) error {
	code, reason, err := decodeCodeReason(body, OpClose, "reason")
	if err != nil {
		return err
	}
	*m = Close{Code: CloseCode(code), Reason: reason}
	return nil
}

// AppendClose appends a CLOSE frame (seq 0) with code and reason made valid by
// CleanText, so it cannot fail: the builder every sender of CLOSE uses.
func AppendClose(dst []byte, code CloseCode, reason string) []byte {
	b, err := (&Close{Code: code, Reason: CleanText(reason)}).AppendFrame(dst, 0, 0)
	if err != nil {
		panic("BUG: protocol: CLOSE with a clean reason did not encode: " + err.Error())
	}
	return b
}

// Error is the body of ERROR: a request failed and the connection stays
// open. The frame's seq echoes the failed request's (0 if none). Body
// layout:
//
//	u16 code | str message
type Error struct {
	// Code says why, from the 4000–4999 range.
	Code ErrorCode
	// Message is human-readable detail for logs.
	Message string
}

// Opcode returns OpError.
func (*Error) Opcode() Opcode { return OpError }

// AppendFrame appends m as an ERROR frame; see Message.
func (m *Error) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	return appendCodeReason(dst, OpError, seq, flags, uint16(m.Code), "message", m.Message)
}

// Decode sets m from an ERROR body; see Message.
func (m *Error) Decode(body []byte) error {
	code, msg, err := decodeCodeReason(body, OpError, "message")
	if err != nil {
		return err
	}
	*m = Error{Code: ErrorCode(code), Message: msg}
	return nil
}

// appendCodeReason appends the frame of the u16 code + str layout shared by
// AUTH_FAIL, CLOSE and ERROR.
func appendCodeReason(dst []byte, op Opcode, seq uint32, flags Flags, code uint16, field, text string) ([]byte, error) {
	b, start := beginMessage(dst, op, seq, flags)
	b = binary.BigEndian.AppendUint16(b, code)
	b, err := appendStr(b, op, field, text)
	if err != nil {
		return dst, err
	}
	return endMessage(dst, b, start, op)
}

func decodeCodeReason(body []byte, op Opcode, field string) (uint16, string, error) {
	r := bodyReader{b: body, op: op}
	code := r.u16("code")
	text := r.str(field)
	return code, text, r.err
}

// RefreshOK is the body of REFRESH_OK, the server's answer to an accepted
// REFRESH; seq echoes the REFRESH's. Body layout:
//
//	u64 token_expires_ms
type RefreshOK struct {
	// TokenExpiresMs is when the new token expires, in Unix milliseconds, or
	// 0 if it does not (the server then never closes the connection for
	// expiry).
	TokenExpiresMs int64
}

// Opcode returns OpRefreshOK.
func (*RefreshOK) Opcode() Opcode { return OpRefreshOK }

// AppendFrame appends m as a REFRESH_OK frame; see Message.
func (m *RefreshOK) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	b, start := beginMessage(dst, OpRefreshOK, seq, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(m.TokenExpiresMs))
	return endMessage(dst, b, start, OpRefreshOK)
}

// Decode sets m from a REFRESH_OK body; see Message.
func (m *RefreshOK) Decode(body []byte) error {
	r := bodyReader{b: body, op: OpRefreshOK}
	v := RefreshOK{TokenExpiresMs: int64(r.u64("token_expires_ms"))}
	if r.err != nil {
		return r.err
	}
	*m = v
	return nil
}
