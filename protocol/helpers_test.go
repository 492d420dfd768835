package protocol

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// rawFrame builds frame bytes field by field, without the package's
// encoders, so tests can state any header, including invalid ones.
func rawFrame(length uint32, version uint8, op Opcode, flags Flags, reserved uint8, seq uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, length)
	b = append(b, version, byte(op), byte(flags), reserved)
	b = binary.BigEndian.AppendUint32(b, seq)
	return append(b, body...)
}

// frameOf builds a valid frame around body.
func frameOf(op Opcode, seq uint32, body []byte) []byte {
	return rawFrame(uint32(HeaderSize+len(body)), Version, op, 0, 0, seq, body)
}

// encode encodes m or fails the test.
func encode(t testing.TB, m Message, seq uint32, flags Flags) []byte {
	t.Helper()
	b, err := m.AppendFrame(nil, seq, flags)
	if err != nil {
		t.Fatalf("%s.AppendFrame: %v", m.Opcode(), err)
	}
	return b
}

// sample is one frame of every kind, used by round-trip tests, decoder
// streams and fuzz seeds.
type sample struct {
	name  string
	op    Opcode
	msg   Message // nil for PING, PONG, OK
	seq   uint32
	flags Flags
}

func (s sample) bytes(t testing.TB) []byte {
	t.Helper()
	if s.msg == nil {
		return AppendEmpty(nil, s.op, s.seq)
	}
	return encode(t, s.msg, s.seq, s.flags)
}

func samples() []sample {
	return []sample{
		{"hello", OpHello, &Hello{Token: "tok", DeviceID: "dev-1", Platform: "ios", ClientVersion: "1.2.3", ResumeEpoch: 7, ResumeLastID: 42}, 1, 0},
		{"hello/empty strings", OpHello, &Hello{}, 1, 0},
		{"auth_ok", OpAuthOK, &AuthOK{ConnID: 1 << 40, HeartbeatMs: 25000, MaxFrame: 65536, ServerTimeMs: 1700000000000, Resume: ResumeRecovered, Epoch: 3, LastID: 99, UserID: "u-1"}, 1, 0},
		{"auth_fail", OpAuthFail, &AuthFail{Code: CloseInvalidToken, Reason: "bad token"}, 1, 0},
		{"ping", OpPing, nil, 9, 0},
		{"pong", OpPong, nil, 9, 0},
		{"send", OpSend, &Send{Route: "chat.send", Payload: []byte(`{"t":"hi"}`)}, 2, 0},
		{"send/no reply", OpSend, &Send{Route: "metrics", Payload: []byte{0, 1, 2}}, 3, FlagNoReply},
		{"send_reply", OpSendReply, &SendReply{Payload: []byte("ok")}, 2, 0},
		{"push/qos1", OpPush, &Push{MsgID: 100, Channel: "", Payload: []byte("direct")}, 0, FlagAckRequested},
		{"push/room", OpPush, &Push{MsgID: 0, Channel: "room-1", Payload: []byte("bcast")}, 0, 0},
		{"ack", OpAck, &Ack{MsgID: 100}, 4, 0},
		{"subscribe", OpSubscribe, &Subscribe{Room: "room-1"}, 5, 0},
		{"unsubscribe", OpUnsubscribe, &Unsubscribe{Room: "room-1"}, 6, 0},
		{"ok", OpOK, nil, 5, 0},
		{"goaway", OpGoAway, &GoAway{Code: CloseGoingAway, RetryAfterMs: 1500, Reason: "drain"}, 0, 0},
		{"close", OpClose, &Close{Code: CloseKicked, Reason: "kicked by admin"}, 0, 0},
		{"error", OpError, &Error{Code: ErrorNoRoute, Message: "no route"}, 2, 0},
		{"auth_ok/expiry", OpAuthOK, &AuthOK{ConnID: 2, HeartbeatMs: 25000, MaxFrame: 65536, ServerTimeMs: 1700000000000, Epoch: 1, UserID: "u-1", TokenExpiresMs: 1700000060000}, 1, 0},
		{"refresh", OpRefresh, &Refresh{Token: "tk2"}, 8, 0},
		{"refresh_ok", OpRefreshOK, &RefreshOK{TokenExpiresMs: 1700003600000}, 8, 0},
	}
}

// sampleStream concatenates every sample frame.
func sampleStream(t testing.TB) []byte {
	var b []byte
	for _, s := range samples() {
		b = append(b, s.bytes(t)...)
	}
	return b
}

// parseAll parses b with a Parse loop, the reference every other reader is
// compared with. It returns cloned frames, the error, and the bytes left.
func parseAll(b []byte, maxFrame int) (frames []Frame, rest []byte, err error) {
	for {
		f, n, err := Parse(b, maxFrame)
		if err != nil || n == 0 {
			return frames, b, err
		}
		frames = append(frames, f.Clone())
		b = b[n:]
	}
}

// framesEqual compares frames, treating nil and empty bodies as equal.
func framesEqual(a, b []Frame) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Header != b[i].Header || !bytes.Equal(a[i].Body, b[i].Body) {
			return false
		}
	}
	return true
}

// errText returns err's text, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
