package protocol

import "strconv"

// Message is implemented by the body type of every opcode that carries a
// body. PING, PONG and OK have empty bodies and no message type; encode
// them with AppendEmpty.
//
// Each message decodes text fields into strings (copies) and []byte
// payload fields as slices of the body (no copy, valid as long as the
// body). Decode ignores bytes after the known fields, so a newer peer can
// append fields; it returns an error wrapping ErrMalformedBody when the
// body is too short, and leaves the message unchanged in that case.
//
// AppendFrame appends the whole frame (prefix, header with Version, seq and
// flags, body) to dst and returns the extended slice; it allocates nothing
// when dst has capacity. On error it returns dst unchanged and an error
// wrapping ErrFieldTooLong or ErrFrameTooLarge.
type Message interface {
	// Opcode returns the opcode whose body the message describes.
	Opcode() Opcode
	// AppendFrame appends the message as a complete frame.
	AppendFrame(dst []byte, seq uint32, flags Flags) ([]byte, error)
	// Decode sets the message from a frame body.
	Decode(body []byte) error
}

var (
	_ Message = (*Hello)(nil)
	_ Message = (*AuthOK)(nil)
	_ Message = (*AuthFail)(nil)
	_ Message = (*Send)(nil)
	_ Message = (*SendReply)(nil)
	_ Message = (*Push)(nil)
	_ Message = (*Ack)(nil)
	_ Message = (*Subscribe)(nil)
	_ Message = (*Unsubscribe)(nil)
	_ Message = (*GoAway)(nil)
	_ Message = (*Close)(nil)
	_ Message = (*Error)(nil)
	_ Message = (*Refresh)(nil)
	_ Message = (*RefreshOK)(nil)
)

// NewMessage returns a new zero message for op, or nil if op has no body
// type (PING, PONG, OK and undefined opcodes). It allocates the message; hot
// paths switch on the opcode and decode into a reused value instead.
func NewMessage(op Opcode) Message {
	switch op {
	case OpHello:
		return new(Hello)
	case OpAuthOK:
		return new(AuthOK)
	case OpAuthFail:
		return new(AuthFail)
	case OpSend:
		return new(Send)
	case OpSendReply:
		return new(SendReply)
	case OpPush:
		return new(Push)
	case OpAck:
		return new(Ack)
	case OpSubscribe:
		return new(Subscribe)
	case OpUnsubscribe:
		return new(Unsubscribe)
	case OpGoAway:
		return new(GoAway)
	case OpClose:
		return new(Close)
	case OpError:
		return new(Error)
	case OpRefresh:
		return new(Refresh)
	case OpRefreshOK:
		return new(RefreshOK)
	}
	return nil
}

// ResumeResult is the outcome of a session resume attempt, reported in
// AUTH_OK.
type ResumeResult uint8

// Resume outcomes.
const (
	// ResumeNone means the HELLO requested no resume (epoch and last id 0).
	ResumeNone ResumeResult = 0
	// ResumeRecovered means every message after the requested id will be
	// pushed again; the client keeps its state and drops duplicates by msg_id.
	ResumeRecovered ResumeResult = 1
	// ResumeNotRecovered means the gap could not be filled (epoch changed or
	// history trimmed); the client must resynchronise through its
	// application (for example refetch recent messages over HTTP).
	ResumeNotRecovered ResumeResult = 2
)

// String returns "NONE", "RECOVERED", "NOT_RECOVERED", or "RESUME(n)" for
// an undefined value.
func (r ResumeResult) String() string {
	switch r {
	case ResumeNone:
		return "NONE"
	case ResumeRecovered:
		return "RECOVERED"
	case ResumeNotRecovered:
		return "NOT_RECOVERED"
	}
	return "RESUME(" + strconv.Itoa(int(r)) + ")"
}

// beginMessage starts a frame for op in dst.
func beginMessage(dst []byte, op Opcode, seq uint32, flags Flags) ([]byte, int) {
	return BeginFrame(dst, Header{Version: Version, Op: op, Flags: flags, Seq: seq})
}

// endMessage finishes a frame begun in dst by beginMessage and extended to
// b, refusing one above MaxFrameLimit. On error it returns dst unchanged.
func endMessage(dst, b []byte, start int, op Opcode) ([]byte, error) {
	if length := len(b) - start - LengthSize; length > MaxFrameLimit {
		return dst, errEncodeTooLarge(op, length)
	}
	return EndFrame(b, start), nil
}
