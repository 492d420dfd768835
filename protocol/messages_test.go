package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRoundTripEveryOpcode(t *testing.T) {
	seen := map[Opcode]bool{}
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			b := s.bytes(t)
			f, n, err := Parse(b, 0)
			if err != nil || n != len(b) {
				t.Fatalf("Parse: n %d of %d, err %v", n, len(b), err)
			}
			want := Header{Version: Version, Op: s.op, Flags: s.flags, Seq: s.seq}
			if f.Header != want {
				t.Fatalf("header %+v; want %+v", f.Header, want)
			}
			got := NewMessage(f.Op)
			if s.msg == nil {
				if got != nil || len(f.Body) != 0 {
					t.Fatalf("empty opcode: NewMessage %T, body %x", got, f.Body)
				}
				return
			}
			if got == nil || got.Opcode() != s.op {
				t.Fatalf("NewMessage(%s) = %T", f.Op, got)
			}
			if err := got.Decode(f.Body); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, s.msg) {
				t.Fatalf("decoded %+v; want %+v", got, s.msg)
			}
		})
		seen[s.op] = true
	}
	for op := ClientOpMin; op <= ClientOpMax; op++ {
		if op.IsKnown() && !seen[op] {
			t.Errorf("opcode %s has no round-trip sample", op)
		}
	}
}

func TestDecodeMalformedBodies(t *testing.T) {
	// Every message with at least one fixed field fails at every truncation
	// of its body short of the known fields, naming the opcode, and leaves
	// the message unchanged.
	for _, s := range samples() {
		if s.msg == nil {
			continue
		}
		body := s.bytes(t)[Overhead:]
		known := knownFieldsLen(s.msg)
		for i := 0; i < known; i++ {
			m := NewMessage(s.op)
			sentinel := fmt.Sprintf("%+v", m)
			err := m.Decode(body[:i])
			if !errors.Is(err, ErrMalformedBody) {
				t.Fatalf("%s: Decode(%d of %d bytes) err %v; want ErrMalformedBody", s.name, i, known, err)
			}
			if prefix := "protocol: malformed body: " + s.op.String() + ": "; !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("%s: error %q lacks prefix %q", s.name, err, prefix)
			}
			if fmt.Sprintf("%+v", m) != sentinel {
				t.Fatalf("%s: failed Decode changed the message to %+v", s.name, m)
			}
		}
	}
}

// knownFieldsLen is the body length up to the end of the last non-rest field.
func knownFieldsLen(m Message) int {
	switch m := m.(type) {
	case *Send:
		return 2 + len(m.Route)
	case *SendReply:
		return 0
	case *Push:
		return 8 + 2 + len(m.Channel)
	case *AuthOK:
		// token_expires_ms is optional: a body ending after user_id is complete.
		b, _ := (&AuthOK{UserID: m.UserID}).AppendFrame(nil, 0, 0)
		return len(b) - Overhead
	}
	b, _ := m.AppendFrame(nil, 0, 0)
	return len(b) - Overhead
}

func TestDecodeMalformedExamples(t *testing.T) {
	f := func(m Message, body []byte, wantText string) {
		t.Helper()
		err := m.Decode(body)
		if err == nil || err.Error() != wantText {
			t.Fatalf("%s.Decode(%x) = %v; want %q", m.Opcode(), body, err, wantText)
		}
	}
	// A str whose declared length runs past the body.
	f(&Hello{}, []byte{0, 3, 'a', 'b'}, "protocol: malformed body: HELLO: token: need 3 bytes, have 2")
	// A str length cut in half.
	f(&Hello{}, []byte{0, 0, 0}, "protocol: malformed body: HELLO: device_id: need 2 bytes, have 1")
	// A missing trailing u64.
	f(&Hello{}, []byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, "protocol: malformed body: HELLO: resume_last_id: need 8 bytes, have 0")
	f(&Ack{}, []byte{1, 2, 3}, "protocol: malformed body: ACK: msg_id: need 8 bytes, have 3")
	f(&AuthOK{}, nil, "protocol: malformed body: AUTH_OK: conn_id: need 8 bytes, have 0")
	f(&GoAway{}, []byte{0x0b, 0xb8}, "protocol: malformed body: GOAWAY: retry_after_ms: need 4 bytes, have 0")
	f(&Error{}, []byte{0x0f, 0xa1, 0}, "protocol: malformed body: ERROR: message: need 2 bytes, have 1")
}

func TestDecodeRejectsInvalidUTF8(t *testing.T) {
	// Every text field of every message is checked: a body whose string is
	// not UTF-8 fails with an error wrapping both ErrMalformedBody (so the
	// receiver's reaction is that of any malformed body) and ErrInvalidUTF8,
	// naming the field, and leaves the message unchanged.
	bad := []string{
		"\xff",         // never valid in UTF-8
		"ok\xc3",       // a 2-byte sequence cut short
		"\xc3\x28",     // a lead byte followed by a non-continuation byte
		"\xed\xa0\x80", // an encoded UTF-16 surrogate
		"\xc0\xaf",     // an overlong encoding of '/'
	}
	f := func(name string, m Message, field string, set func(string)) {
		t.Helper()
		for _, s := range bad {
			set(s)
			if _, err := m.AppendFrame(nil, 1, 0); !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("%s %q: encode err %v; want ErrInvalidUTF8", name, s, err)
			}
			// Encode a placeholder of the same length, then put the bad bytes in
			// its place, as a broken peer would send them.
			ph := strings.Repeat("~", len(s))
			set(ph)
			frame, err := m.AppendFrame(nil, 1, 0)
			if err != nil {
				t.Fatalf("%s: encode: %v", name, err)
			}
			frame = bytes.Replace(frame, []byte(ph), []byte(s), 1)
			got := NewMessage(m.Opcode())
			before := fmt.Sprintf("%+v", got)
			err = got.Decode(frame[Overhead:])
			if !errors.Is(err, ErrMalformedBody) || !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("%s %q: Decode err %v; want ErrMalformedBody and ErrInvalidUTF8", name, s, err)
			}
			want := "protocol: malformed body: " + m.Opcode().String() + ": " + field + ": protocol: invalid UTF-8"
			if err.Error() != want {
				t.Fatalf("%s %q: error %q; want %q", name, s, err, want)
			}
			if fmt.Sprintf("%+v", got) != before {
				t.Fatalf("%s: failed Decode changed the message to %+v", name, got)
			}
		}
	}
	h := &Hello{Token: "t", DeviceID: "d", Platform: "p", ClientVersion: "v"}
	f("hello token", h, "token", func(s string) { *h = Hello{Token: s} })
	f("hello device", h, "device_id", func(s string) { *h = Hello{DeviceID: s} })
	f("hello platform", h, "platform", func(s string) { *h = Hello{Platform: s} })
	f("hello version", h, "client_version", func(s string) { *h = Hello{ClientVersion: s} })
	send := &Send{}
	f("send route", send, "route", func(s string) { send.Route = s })
	sub := &Subscribe{}
	f("subscribe room", sub, "room", func(s string) { sub.Room = s })
	unsub := &Unsubscribe{}
	f("unsubscribe room", unsub, "room", func(s string) { unsub.Room = s })
	ok := &AuthOK{}
	f("auth_ok user", ok, "user_id", func(s string) { ok.UserID = s })
	fail := &AuthFail{}
	f("auth_fail reason", fail, "reason", func(s string) { fail.Reason = s })
	push := &Push{}
	f("push channel", push, "channel", func(s string) { push.Channel = s })
	ga := &GoAway{}
	f("goaway reason", ga, "reason", func(s string) { ga.Reason = s })
	cl := &Close{}
	f("close reason", cl, "reason", func(s string) { cl.Reason = s })
	e := &Error{}
	f("error message", e, "message", func(s string) { e.Message = s })

	// Valid multi-byte text and opaque payloads are not affected.
	for _, m := range []Message{
		&Send{Route: "chat.發送", Payload: []byte{0xff, 0xfe}},
		&Push{Channel: "салон", Payload: []byte{0xc3}},
		&SendReply{Payload: []byte{0xff}},
	} {
		frame := encode(t, m, 1, 0)
		if err := NewMessage(m.Opcode()).Decode(frame[Overhead:]); err != nil {
			t.Fatalf("%s: valid UTF-8 or binary payload rejected: %v", m.Opcode(), err)
		}
	}
}

func TestDecodeIgnoresTrailingBytes(t *testing.T) {
	// A later protocol revision may append fields; today's decoder ignores
	// them. Messages ending in a rest payload absorb them instead.
	for _, s := range samples() {
		if s.msg == nil {
			continue
		}
		body := append(s.bytes(t)[Overhead:], 0xEE, 0xFF)
		m := NewMessage(s.op)
		if err := m.Decode(body); err != nil {
			t.Fatalf("%s: Decode with trailing bytes: %v", s.name, err)
		}
		switch m := m.(type) {
		case *Send:
			if !bytes.HasSuffix(m.Payload, []byte{0xEE, 0xFF}) {
				t.Fatalf("%s: payload %x lost trailing bytes", s.name, m.Payload)
			}
		case *SendReply, *Push:
		default:
			if !reflect.DeepEqual(m, s.msg) {
				t.Fatalf("%s: decoded %+v; want %+v", s.name, m, s.msg)
			}
		}
	}
}

func TestDecodePayloadAliasesBody(t *testing.T) {
	body := encode(t, &Push{MsgID: 1, Channel: "c", Payload: []byte("abc")}, 0, 0)[Overhead:]
	var p Push
	if err := p.Decode(body); err != nil {
		t.Fatal(err)
	}
	body[len(body)-1] = 'Z'
	if string(p.Payload) != "abZ" {
		t.Fatalf("payload %q does not alias the body", p.Payload)
	}
	if cap(p.Payload) != len(p.Payload) {
		t.Fatalf("payload capacity %d not clipped to %d", cap(p.Payload), len(p.Payload))
	}
	body[10] = 'Q' // channel byte: the string was copied
	if p.Channel != "c" {
		t.Fatalf("channel %q aliases the body", p.Channel)
	}
}

func TestEncodeFieldTooLong(t *testing.T) {
	long := strings.Repeat("x", MaxStringLen+1)
	max := strings.Repeat("x", MaxStringLen)
	dst := []byte("keep")
	for _, m := range []Message{
		&Hello{Token: long}, &Hello{DeviceID: long}, &Hello{Platform: long}, &Hello{ClientVersion: long},
		&AuthOK{UserID: long}, &AuthFail{Reason: long}, &Send{Route: long}, &Push{Channel: long},
		&Subscribe{Room: long}, &Unsubscribe{Room: long}, &GoAway{Reason: long}, &Close{Reason: long},
		&Error{Message: long},
	} {
		out, err := m.AppendFrame(dst, 0, 0)
		if !errors.Is(err, ErrFieldTooLong) || string(out) != "keep" {
			t.Fatalf("%s: err %v, out %d bytes; want ErrFieldTooLong and dst unchanged", m.Opcode(), err, len(out))
		}
		if !strings.Contains(err.Error(), m.Opcode().String()+": ") {
			t.Fatalf("%s: error %q does not name the opcode", m.Opcode(), err)
		}
	}
	// Exactly MaxStringLen bytes is allowed and round-trips.
	b := encode(t, &Subscribe{Room: max}, 1, 0)
	var s Subscribe
	if err := s.Decode(b[Overhead:]); err != nil || s.Room != max {
		t.Fatalf("max-length room: err %v len %d", err, len(s.Room))
	}
}

func TestEncodeFrameTooLarge(t *testing.T) {
	dst := []byte("keep")
	payload := make([]byte, MaxFrameLimit) // plus the header exceeds the limit
	for _, m := range []Message{&Send{Payload: payload}, &SendReply{Payload: payload}, &Push{Payload: payload}} {
		out, err := m.AppendFrame(dst, 0, 0)
		if !errors.Is(err, ErrFrameTooLarge) || string(out) != "keep" {
			t.Fatalf("%s: err %v; want ErrFrameTooLarge and dst unchanged", m.Opcode(), err)
		}
	}
	// The largest encodable SEND_REPLY is exactly MaxFrameLimit.
	b, err := (&SendReply{Payload: payload[:MaxFrameLimit-HeaderSize]}).AppendFrame(nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, n, err := Parse(b, MaxFrameLimit); err != nil || n != len(b) {
		t.Fatalf("Parse of a MaxFrameLimit frame: n %d err %v", n, err)
	}
}

func TestOpcodeRanges(t *testing.T) {
	f := func(op Opcode, name string, known, client, control, ext bool) {
		t.Helper()
		if op.String() != name || op.IsKnown() != known || op.IsClient() != client || op.IsControl() != control || op.IsExtension() != ext {
			t.Fatalf("%#x: String %q known %v client %v control %v ext %v", uint8(op), op, op.IsKnown(), op.IsClient(), op.IsControl(), op.IsExtension())
		}
	}
	f(0x00, "OPCODE(0x00)", false, false, false, false)
	f(OpHello, "HELLO", true, true, false, false)
	f(OpAuthOK, "AUTH_OK", true, true, false, false)
	f(OpError, "ERROR", true, true, false, false)
	f(OpRefresh, "REFRESH", true, true, false, false)
	f(OpRefreshOK, "REFRESH_OK", true, true, false, false)
	f(0x12, "OPCODE(0x12)", false, true, false, false) // first unassigned client opcode
	f(0x3F, "OPCODE(0x3f)", false, true, false, false)
	f(0x40, "OPCODE(0x40)", false, false, true, false)
	f(0x7F, "OPCODE(0x7f)", false, false, true, false)
	f(0x80, "OPCODE(0x80)", false, false, false, true)
	f(0xFF, "OPCODE(0xff)", false, false, false, true)
}

func TestCodeClasses(t *testing.T) {
	f := func(c CloseCode, name string, terminal bool) {
		t.Helper()
		if c.String() != name || c.IsTerminal() != terminal || c.IsReconnect() == terminal {
			t.Fatalf("%d: String %q terminal %v reconnect %v", uint16(c), c, c.IsTerminal(), c.IsReconnect())
		}
	}
	f(CloseNormal, "NORMAL", false)
	f(CloseGoingAway, "GOING_AWAY", false)
	f(CloseAuthTimeout, "AUTH_TIMEOUT", false)
	f(3499, "CODE(3499)", false) // unknown, below 3500: reconnect
	f(2000, "CODE(2000)", false) // unknown, below 3000: reconnect
	f(CloseInvalidToken, "INVALID_TOKEN", true)
	f(CloseKicked, "KICKED", true)
	f(CloseForbidden, "FORBIDDEN", true)
	f(3999, "CODE(3999)", true)  // unknown terminal
	f(4000, "CODE(4000)", false) // an error code in a CLOSE: reconnect (§7)
	f(5000, "CODE(5000)", false)
	e := func(c ErrorCode, name string, in bool) {
		t.Helper()
		if c.String() != name || c.InRange() != in {
			t.Fatalf("%d: String %q in range %v", uint16(c), c, c.InRange())
		}
	}
	e(ErrorBadRequest, "BAD_REQUEST", true)
	e(ErrorNotFound, "NOT_FOUND", true)
	e(4999, "CODE(4999)", true)
	e(5000, "CODE(5000)", false)
	e(3502, "CODE(3502)", false) // a close code is no error code
	// Every named code sits in its kind's ranges.
	for c := range closeNames {
		if !c.IsKnown() || (c != CloseNormal && (c < 3000 || c > 3999)) {
			t.Fatalf("close code %d out of its range", c)
		}
	}
	for c := range errorNames {
		if !c.IsKnown() || !c.InRange() {
			t.Fatalf("error code %d out of its range", c)
		}
	}
}

func TestFlagsAndResumeStrings(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{Flags(0).String(), "0"},
		{FlagAckRequested.String(), "ACK_REQUESTED"},
		{(FlagAckRequested | FlagNoReply | 0x80).String(), "ACK_REQUESTED|NO_REPLY|0x80"},
		{ResumeNone.String(), "NONE"},
		{ResumeRecovered.String(), "RECOVERED"},
		{ResumeNotRecovered.String(), "NOT_RECOVERED"},
		{ResumeResult(9).String(), "RESUME(9)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q; want %q", tc.got, tc.want)
		}
	}
}

func TestCloseCodeFor(t *testing.T) {
	_, _, tooLarge := Parse([]byte{0xff, 0, 0, 0}, 0)
	_, _, version := Parse(rawFrame(8, 2, OpPing, 0, 0, 0, nil), 0)
	_, _, short := Parse([]byte{0, 0, 0, 1}, 0)
	malformed := (&Ack{}).Decode(nil)
	for _, tc := range []struct {
		err  error
		want CloseCode
	}{
		{nil, CloseNormal},
		{tooLarge, CloseFrameTooLarge},
		{fmt.Errorf("read: %w", tooLarge), CloseFrameTooLarge},
		{version, CloseUnsupportedVersion},
		{short, CloseProtocolError},
		{malformed, CloseProtocolError},
		{errors.New("handler failed"), CloseProtocolError},
	} {
		if got := CloseCodeFor(tc.err); got != tc.want {
			t.Errorf("CloseCodeFor(%v) = %s; want %s", tc.err, got, tc.want)
		}
	}
}

func TestCleanText(t *testing.T) {
	long := strings.Repeat("é", MaxStringLen) // 2 bytes each: cut on a boundary
	for _, tc := range []struct{ name, in string }{
		{"valid", "signed in elsewhere"},
		{"invalid", "bad \xff byte"},
		{"too long", long},
		{"too long, ASCII", strings.Repeat("a", MaxStringLen+10)},
	} {
		got := CleanText(tc.in)
		if !utf8.ValidString(got) || len(got) > MaxStringLen {
			t.Errorf("%s: CleanText gave %d bytes, valid %v", tc.name, len(got), utf8.ValidString(got))
		}
		if _, err := (&Close{Reason: got}).AppendFrame(nil, 0, 0); err != nil {
			t.Errorf("%s: the cleaned text does not encode: %v", tc.name, err)
		}
	}
	if s := "unchanged"; CleanText(s) != s {
		t.Error("valid text was changed")
	}
}
