package protocol

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tether-gw/tether/internal/testkit/protodoc"
)

// workedFrames are the frames of the "Worked frames" section of PROTOCOL.md,
// keyed by the name in each block's <!-- frame: NAME --> marker. The
// Example functions print the same frames.
func workedFrames(t *testing.T) map[string][]byte {
	enc := func(m Message, seq uint32, flags Flags) []byte { return encode(t, m, seq, flags) }
	return map[string][]byte{
		"hello": enc(&Hello{Token: "tk1", DeviceID: "d1", Platform: "ios", ClientVersion: "1.0"}, 1, 0),
		"auth_ok": enc(&AuthOK{ConnID: 42, HeartbeatMs: DefaultHeartbeatMs, MaxFrame: DefaultMaxFrame,
			ServerTimeMs: 1700000000000, Resume: ResumeNone, Epoch: 1, LastID: 7, UserID: "u1"}, 1, 0),
		"auth_fail":     enc(&AuthFail{Code: CloseTokenExpired, Reason: "expired"}, 1, 0),
		"ping":          AppendEmpty(nil, OpPing, 2),
		"pong":          AppendEmpty(nil, OpPong, 2),
		"send":          enc(&Send{Route: "echo", Payload: []byte("hi")}, 3, 0),
		"send_reply":    enc(&SendReply{Payload: []byte("hi")}, 3, 0),
		"push":          enc(&Push{MsgID: 8, Payload: []byte("yo")}, 0, FlagAckRequested),
		"ack":           enc(&Ack{MsgID: 8}, 4, 0),
		"subscribe":     enc(&Subscribe{Room: "r1"}, 5, 0),
		"ok":            AppendEmpty(nil, OpOK, 5),
		"unsubscribe":   enc(&Unsubscribe{Room: "r1"}, 6, 0),
		"error":         enc(&Error{Code: ErrorNoRoute, Message: "no route"}, 7, 0),
		"goaway":        enc(&GoAway{Code: CloseGoingAway, RetryAfterMs: 5000, Reason: "drain"}, 0, 0),
		"close_kicked":  enc(&Close{Code: CloseKicked, Reason: "kicked"}, 0, 0),
		"close_version": enc(&Close{Code: CloseUnsupportedVersion}, 0, 0),
		"auth_ok_expiry": enc(&AuthOK{ConnID: 42, HeartbeatMs: DefaultHeartbeatMs, MaxFrame: DefaultMaxFrame,
			ServerTimeMs: 1700000000000, Resume: ResumeNone, Epoch: 1, LastID: 7, UserID: "u1", TokenExpiresMs: 1700000600000}, 1, 0),
		"refresh":       enc(&Refresh{Token: "tk2"}, 8, 0),
		"refresh_ok":    enc(&RefreshOK{TokenExpiresMs: 1700003600000}, 8, 0),
		"error_refresh": enc(&Error{Code: ErrorTokenRejected, Message: "expired"}, 8, 0),
		"close_expired": enc(&Close{Code: CloseSessionExpired, Reason: "token expired"}, 0, 0),
	}
}

func TestProtocolDocFrames(t *testing.T) {
	want := workedFrames(t)
	for _, name := range protodoc.CheckFrames(t, protodoc.Text(t), "frame", want) {
		// Each worked frame is itself valid.
		frame := want[name]
		if _, n, err := Parse(frame, 0); err != nil || n != len(frame) {
			t.Errorf("worked frame %q does not parse: n %d err %v", name, n, err)
		}
	}
}

func TestProtocolDocCodes(t *testing.T) {
	// Every opcode and code name appears in the document with its value, so
	// the tables cannot silently drift from the constants.
	text := protodoc.Text(t)
	for op := ClientOpMin; op <= ClientOpMax; op++ {
		if !op.IsKnown() {
			continue
		}
		row := fmt.Sprintf("| `0x%02X` | %s |", uint8(op), op)
		if !strings.Contains(text, row) {
			t.Errorf("PROTOCOL.md lacks opcode table row starting %q", row)
		}
	}
	row := func(c uint16, name string) {
		r := fmt.Sprintf("| %d | %s |", c, name)
		if !strings.Contains(text, r) {
			t.Errorf("PROTOCOL.md lacks code table row starting %q", r)
		}
	}
	for c, name := range closeNames {
		row(uint16(c), name)
	}
	for c, name := range errorNames {
		row(uint16(c), name)
	}
}
