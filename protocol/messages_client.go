package protocol

import "encoding/binary"

// Bodies of the frames a client sends (C→S).

// Hello is the body of HELLO, the first frame a client sends. Body layout:
//
//	str token | str device_id | str platform | str client_version | u64 resume_epoch | u64 resume_last_id
type Hello struct {
	// Token is the credential the server's authenticator checks.
	Token string
	// DeviceID identifies the device for the multi-device login policy.
	DeviceID string
	// Platform names the client platform (e.g. "ios", "android", "web").
	Platform string
	// ClientVersion is the client application's version, for logs and policy.
	ClientVersion string
	// ResumeEpoch and ResumeLastID are the epoch and last msg_id the client
	// has seen, taken from the last AUTH_OK or PUSH; both 0 request no resume.
	ResumeEpoch  uint64
	ResumeLastID uint64
}

// Opcode returns OpHello.
func (*Hello) Opcode() Opcode { return OpHello }

// AppendFrame appends m as a HELLO frame; see Message.
func (m *Hello) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	b, start := beginMessage(dst, OpHello, seq, flags)
	var err error
	if b, err = appendStr(b, OpHello, "token", m.Token); err != nil {
		return dst, err
	}
	if b, err = appendStr(b, OpHello, "device_id", m.DeviceID); err != nil {
		return dst, err
	}
	if b, err = appendStr(b, OpHello, "platform", m.Platform); err != nil {
		return dst, err
	}
	if b, err = appendStr(b, OpHello, "client_version", m.ClientVersion); err != nil {
		return dst, err
	}
	b = binary.BigEndian.AppendUint64(b, m.ResumeEpoch)
	b = binary.BigEndian.AppendUint64(b, m.ResumeLastID)
	return endMessage(dst, b, start, OpHello)
}

// Decode sets m from a HELLO body; see Message.
func (m *Hello) Decode(body []byte) error {
	r := bodyReader{b: body, op: OpHello}
	v := Hello{
		Token:         r.str("token"),
		DeviceID:      r.str("device_id"),
		Platform:      r.str("platform"),
		ClientVersion: r.str("client_version"),
		ResumeEpoch:   r.u64("resume_epoch"),
		ResumeLastID:  r.u64("resume_last_id"),
	}
	if r.err != nil {
		return r.err
	}
	*m = v
	return nil
}

// Send is the body of SEND, a request routed to a backend service. Unless
// the frame has FlagNoReply, the server answers with exactly one SEND_REPLY
// or ERROR carrying the same seq. Body layout:
//
//	str route | rest payload
type Send struct {
	// Route names the backend service (and method) the payload is for.
	Route string
	// Payload is the opaque request; after Decode it aliases the body.
	Payload []byte
}

// Opcode returns OpSend.
func (*Send) Opcode() Opcode { return OpSend }

// AppendFrame appends m as a SEND frame; see Message.
func (m *Send) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	b, start := beginMessage(dst, OpSend, seq, flags)
	b, err := appendStr(b, OpSend, "route", m.Route)
	if err != nil {
		return dst, err
	}
	b = append(b, m.Payload...)
	return endMessage(dst, b, start, OpSend)
}

// Decode sets m from a SEND body; Payload aliases body. See Message.
func (m *Send) Decode(body []byte) error {
	r := bodyReader{b: body, op: OpSend}
	v := Send{Route: r.str("route"), Payload: r.rest()}
	if r.err != nil {
		return r.err
	}
	*m = v
	return nil
}

// Ack is the body of ACK, the client's QoS1 acknowledgement. It is
// cumulative: it acknowledges every FlagAckRequested PUSH on this connection
// whose msg_id is at most MsgID. Body layout:
//
//	u64 msg_id
type Ack struct {
	// MsgID is the highest msg_id acknowledged.
	MsgID uint64
}

// Opcode returns OpAck.
func (*Ack) Opcode() Opcode { return OpAck }

// AppendFrame appends m as an ACK frame; see Message.
func (m *Ack) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	b, start := beginMessage(dst, OpAck, seq, flags)
	b = binary.BigEndian.AppendUint64(b, m.MsgID)
	return endMessage(dst, b, start, OpAck)
}

// Decode sets m from an ACK body; see Message.
func (m *Ack) Decode(body []byte) error {
	r := bodyReader{b: body, op: OpAck}
	v := Ack{MsgID: r.u64("msg_id")}
	if r.err != nil {
		return r.err
	}
	*m = v
	return nil
}

// Subscribe is the body of SUBSCRIBE, which joins a room. The server
// answers with OK or ERROR carrying the same seq. Body layout:
//
//	str room
type Subscribe struct {
	// Room is the name of the room to join.
	Room string
}

// Opcode returns OpSubscribe.
func (*Subscribe) Opcode() Opcode { return OpSubscribe }

// AppendFrame appends m as a SUBSCRIBE frame; see Message.
func (m *Subscribe) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	return appendRoomFrame(dst, OpSubscribe, seq, flags, m.Room)
}

// Decode sets m from a SUBSCRIBE body; see Message.
func (m *Subscribe) Decode(body []byte) error {
	room, err := decodeRoom(body, OpSubscribe)
	if err != nil {
		return err
	}
	m.Room = room
	return nil
}

// Unsubscribe is the body of UNSUBSCRIBE, which leaves a room. The server
// answers with OK or ERROR carrying the same seq. Body layout:
//
//	str room
type Unsubscribe struct {
	// Room is the name of the room to leave.
	Room string
}

// Opcode returns OpUnsubscribe.
func (*Unsubscribe) Opcode() Opcode { return OpUnsubscribe }

// AppendFrame appends m as an UNSUBSCRIBE frame; see Message.
func (m *Unsubscribe) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	return appendRoomFrame(dst, OpUnsubscribe, seq, flags, m.Room)
}

// Decode sets m from an UNSUBSCRIBE body; see Message.
func (m *Unsubscribe) Decode(body []byte) error {
	room, err := decodeRoom(body, OpUnsubscribe)
	if err != nil {
		return err
	}
	m.Room = room
	return nil
}

func appendRoomFrame(dst []byte, op Opcode, seq uint32, flags Flags, room string) ([]byte, error) {
	b, start := beginMessage(dst, op, seq, flags)
	b, err := appendStr(b, op, "room", room)
	if err != nil {
		return dst, err
	}
	return endMessage(dst, b, start, op)
}

func decodeRoom(body []byte, op Opcode) (string, error) {
	r := bodyReader{b: body, op: op}
	room := r.str("room")
	return room, r.err
}

// MaxRefreshToken is the longest token a REFRESH may carry, in bytes: the
// most a HELLO can carry within the pre-authentication limit, so that a
// token good for a refresh is one that could also log in.
const MaxRefreshToken = PreAuthMaxFrame - 32

// Refresh is the body of REFRESH, which replaces the token of a live,
// authenticated connection before it expires. The server answers with
// REFRESH_OK or ERROR carrying the same seq. Body layout:
//
//	str token
type Refresh struct {
	// Token is the fresh credential, checked like a HELLO's; 1 to
	// MaxRefreshToken bytes.
	Token string
}

// Opcode returns OpRefresh.
func (*Refresh) Opcode() Opcode { return OpRefresh }

// AppendFrame appends m as a REFRESH frame; see Message.
func (m *Refresh) AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error) {
	b, start := beginMessage(dst, OpRefresh, seq, flags)
	b, err := appendStr(b, OpRefresh, "token", m.Token)
	if err != nil {
		return dst, err
	}
	return endMessage(dst, b, start, OpRefresh)
}

// Decode sets m from a REFRESH body; see Message.
func (m *Refresh) Decode(body []byte) error {
	r := bodyReader{b: body, op: OpRefresh}
	v := Refresh{Token: r.str("token")}
	if r.err != nil {
		return r.err
	}
	*m = v
	return nil
}
