package wire

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tether-gw/tether/internal/testkit/protodoc"
	"github.com/tether-gw/tether/protocol"
)

type docFrame struct {
	op      protocol.Opcode
	seq     uint32
	hdr     any
	payload string
}

// controlFrames are the worked frames of PROTOCOL.md §15, keyed by the name in each
// block's <!-- control-frame: NAME --> marker, in the document's order.
var controlFrames = []struct {
	name string
	f    docFrame
}{
	{"auth", docFrame{OpAuth, 1, &Auth{Secret: "s3cret", Name: "chat"}, ""}},
	{"auth_result", docFrame{OpResult, 1, &AuthResult{Session: 1, MaxFrame: 1 << 20, ClientMaxFrame: 64 << 10, UplinkTimeoutMs: 10000}, ""}},
	{"push_users", docFrame{OpPush, 2, &Push{Users: []string{"alice"}}, "hi"}},
	{"push_result", docFrame{OpResult, 2, &PushResult{Delivered: 2, Offline: 0}, ""}},
	{"push_room_fail", docFrame{OpFail, 3, &Fail{Code: protocol.ErrorNotFound, Message: "no such room"}, ""}},
	{"subscribe", docFrame{OpSubscribe, 4, &Subscription{Prefixes: []string{"chat."}, Events: true}, ""}},
	{"uplink", docFrame{OpUplink, 0, &Uplink{ID: 7, Conn: 42, User: "alice", Route: "chat.send"}, "hi"}},
	{"reply", docFrame{OpReply, 0, &Reply{ID: 7}, "ok"}},
	{"event_offline", docFrame{OpEvent, 0, &Event{Type: EventOffline, Conn: 42, User: "alice", Code: protocol.CloseKicked, Reason: "KICKED"}, ""}},
	{"event_ack", docFrame{OpEvent, 0, &Event{Type: EventAck, Conn: 42, User: "alice", Device: "d1", MsgID: 17}, ""}},
	{"stats", docFrame{OpStats, 5, nil, ""}},
}

func (d docFrame) encode(t testing.TB) []byte {
	b, err := AppendFrame(nil, d.op, d.seq, d.hdr, []byte(d.payload))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestControlDocFrames(t *testing.T) {
	doc := protodoc.Text(t)
	want := map[string][]byte{}
	for _, cf := range controlFrames {
		want[cf.name] = cf.f.encode(t)
	}
	protodoc.CheckFrames(t, doc, "control-frame", want)
	// Every opcode appears in the opcode table.
	for op := OpAuth; op <= OpEvent; op++ {
		row := fmt.Sprintf("| `0x%02X` | %s |", uint8(op), OpName(op))
		if !strings.Contains(doc, row) {
			t.Errorf("PROTOCOL.md lacks control opcode row starting %q", row)
		}
	}
}

// TestPrintControlFrames prints the annotated dumps for PROTOCOL.md when
// TETHER_PRINT_FRAMES is set.
func TestPrintControlFrames(t *testing.T) {
	if os.Getenv("TETHER_PRINT_FRAMES") == "" {
		t.Skip("set TETHER_PRINT_FRAMES=1 to print the worked frames")
	}
	for _, cf := range controlFrames {
		fmt.Printf("<!-- control-frame: %s -->\n```text\n%s```\nOne line: `%s`\n\n", cf.name, annotate(cf.f.encode(t)), protodoc.Spaced(cf.f.encode(t)))
	}
}

// annotate renders a control frame one field per line, as PROTOCOL.md §14 does.
func annotate(b []byte) string {
	var sb strings.Builder
	line := func(bytes []byte, field, meaning string) {
		sb.WriteString(strings.TrimRight(fmt.Sprintf("%-24s %-15s %s", protodoc.Spaced(bytes), field, meaning), " "))
		sb.WriteByte('\n')
	}
	length := binary.BigEndian.Uint32(b)
	op := protocol.Opcode(b[5])
	line(b[0:4], "length", fmt.Sprintf("%d = 8 + %d-byte body", length, length-8))
	line(b[4:5], "version", "1")
	line(b[5:6], "opcode", fmt.Sprintf("0x%02X %s", uint8(op), OpName(op)))
	line(b[6:7], "flags", "none")
	line(b[7:8], "reserved", "0")
	line(b[8:12], "seq", fmt.Sprint(binary.BigEndian.Uint32(b[8:12])))
	body := b[12:]
	n := int(binary.BigEndian.Uint16(body))
	line(body[0:2], "json_len", fmt.Sprint(n))
	js := body[2 : 2+n]
	for i := 0; i < len(js); i += 8 {
		end := min(i+8, len(js))
		field, meaning := "", ""
		if i == 0 {
			field, meaning = "json", string(js)
		}
		line(js[i:end], field, meaning)
	}
	if p := body[2+n:]; len(p) > 0 {
		line(p, "payload", fmt.Sprintf("%d bytes %q", len(p), p))
	}
	return sb.String()
}
