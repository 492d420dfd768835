package wsproto

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// clientFrame encodes a masked client frame with gobwas/ws (an independent
// encoder) so the decoder is checked against someone else's framing.
func clientFrame(fin bool, rsv byte, op ws.OpCode, payload []byte) []byte {
	var b bytes.Buffer
	h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Masked: true, Mask: testMask, Length: int64(len(payload))}
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err)
	}
	p := append([]byte(nil), payload...)
	ws.Cipher(p, testMask, 0)
	b.Write(p)
	return b.Bytes()
}

func bin(payload string) []byte { return clientFrame(true, 0, ws.OpBinary, []byte(payload)) }

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// decodeLog feeds stream in the given chunks (copies: Feed unmasks in
// place) and returns the data bytes delivered, a log of control frames and
// the error.
func decodeLog(d *Decoder, stream []byte, cuts ...int) (data string, ctl string, err error) {
	var db, cb strings.Builder
	onData := func(p []byte) error { db.Write(p); return nil }
	onControl := func(op OpCode, p []byte) error {
		fmt.Fprintf(&cb, "%d:%q;", op, p)
		return nil
	}
	prev := 0
	for _, c := range append(cuts, len(stream)) {
		if err = d.Feed(append([]byte(nil), stream[prev:c]...), onData, onControl); err != nil {
			break
		}
		prev = c
	}
	return db.String(), cb.String(), err
}

// TestDecoderSplits: every valid stream decodes the same fed whole, cut at
// every single offset, cut at every pair of offsets, and byte by byte.
func TestDecoderSplits(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 4200) // 67200 bytes: 64-bit length
	mid := strings.Repeat("x", 300)                  // 16-bit length
	streams := []struct {
		name   string
		stream []byte
		data   string
		ctl    string
	}{
		{"one message", bin("hello"), "hello", ""},
		{"empty message", bin(""), "", ""},
		{"16-bit length", bin(mid), mid, ""},
		{"three fragments", cat(
			clientFrame(false, 0, ws.OpBinary, []byte("ab")),
			clientFrame(false, 0, ws.OpContinuation, []byte("")),
			clientFrame(true, 0, ws.OpContinuation, []byte("cde"))), "abcde", ""},
		{"ping inside a fragmented message", cat(
			clientFrame(false, 0, ws.OpBinary, []byte("ab")),
			clientFrame(true, 0, ws.OpPing, []byte("p1")),
			clientFrame(true, 0, ws.OpPong, nil),
			clientFrame(true, 0, ws.OpContinuation, []byte("cd"))), "abcd", `9:"p1";10:"";`},
		{"messages then close", cat(bin("m1"), bin("m2"),
			clientFrame(true, 0, ws.OpClose, append([]byte{0x03, 0xe8}, "bye"...))), "m1m2", `8:"\x03\xe8bye";`},
		{"empty close", clientFrame(true, 0, ws.OpClose, nil), "", `8:"";`},
		{"125-byte ping", clientFrame(true, 0, ws.OpPing, bytes.Repeat([]byte{'p'}, 125)), "", `9:"` + strings.Repeat("p", 125) + `";`},
	}
	for _, tc := range streams {
		t.Run(tc.name, func(t *testing.T) {
			check := func(how string, cuts ...int) {
				t.Helper()
				d := new(Decoder)
				data, ctl, err := decodeLog(d, tc.stream, cuts...)
				if err != nil || data != tc.data || ctl != tc.ctl {
					t.Fatalf("%s %v: err=%v data=%d bytes ctl=%s, want %d bytes ctl=%s", how, cuts, err, len(data), ctl, len(tc.data), tc.ctl)
				}
				if d.ctrl != nil || d.inFrame || d.hlen != 0 {
					t.Fatalf("%s %v: decoder holds state after a whole stream: %+v", how, cuts, d)
				}
			}
			check("whole")
			if len(tc.stream) > 2000 {
				check("cuts", 1, 2, 3, 9, 13, 14, 15, 1000, 40000, len(tc.stream)-1)
				return
			}
			for i := 0; i <= len(tc.stream); i++ {
				check("one cut", i)
				for j := i; j <= len(tc.stream) && len(tc.stream) < 200; j++ {
					check("two cuts", i, j)
				}
			}
			var every []int
			for i := 1; i < len(tc.stream); i++ {
				every = append(every, i)
			}
			check("byte by byte", every...)
		})
	}
	// The 64-bit length one, separately: every cut is too slow for 67 KB.
	d := new(Decoder)
	stream := bin(long)
	if stream[1]&0x7f != 127 {
		t.Fatal("not a 64-bit length frame")
	}
	for _, cuts := range [][]int{nil, {1}, {2}, {5}, {9}, {13}, {14}, {100, 101, 30000}} {
		data, ctl, err := decodeLog(d, stream, cuts...)
		if err != nil || data != long || ctl != "" {
			t.Fatalf("64-bit length cuts %v: err=%v %d bytes", cuts, err, len(data))
		}
	}
}

// TestDecoderViolations: each RFC 6455 violation fails with its close code,
// fed whole and byte by byte, and nothing after it is delivered.
func TestDecoderViolations(t *testing.T) {
	unmasked := []byte{0x82, 0x02, 'h', 'i'}
	len63 := []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	closeWith := func(payload ...byte) []byte { return clientFrame(true, 0, ws.OpClose, payload) }
	cases := []struct {
		name       string
		stream     []byte
		compressed bool
		code       uint16
		data       string // delivered before the failure
	}{
		{"unmasked frame", cat(bin("ok"), unmasked), false, 1002, "ok"},
		{"fragmented ping", clientFrame(false, 0, ws.OpPing, nil), false, 1002, ""},
		{"fragmented close", clientFrame(false, 0, ws.OpClose, nil), false, 1002, ""},
		{"126-byte ping", clientFrame(true, 0, ws.OpPing, make([]byte, 126)), false, 1002, ""},
		{"RSV1 without compression", clientFrame(true, 4, ws.OpBinary, []byte("z")), false, 1002, ""},
		{"RSV2", clientFrame(true, 2, ws.OpBinary, []byte("z")), true, 1002, ""},
		{"RSV3", clientFrame(true, 1, ws.OpBinary, []byte("z")), false, 1002, ""},
		{"RSV1 on a continuation", cat(clientFrame(false, 4, ws.OpBinary, []byte("a")), clientFrame(true, 4, ws.OpContinuation, []byte("b"))), true, 1002, ""}, // the first fragment is collected, not delivered
		{"RSV1 on a ping", clientFrame(true, 4, ws.OpPing, nil), true, 1002, ""},
		{"opcode 3", clientFrame(true, 0, 3, nil), false, 1002, ""},
		{"opcode 0xB", clientFrame(true, 0, 0xB, nil), false, 1002, ""},
		{"text frame", clientFrame(true, 0, ws.OpText, []byte("hi")), false, 1003, ""},
		{"continuation without a message", clientFrame(true, 0, ws.OpContinuation, []byte("x")), false, 1002, ""},
		{"binary inside a message", cat(clientFrame(false, 0, ws.OpBinary, []byte("a")), bin("b")), false, 1002, "a"},
		{"text inside a message", cat(clientFrame(false, 0, ws.OpBinary, []byte("a")), clientFrame(true, 0, ws.OpText, nil)), false, 1002, "a"},
		{"64-bit length top bit", len63, false, 1002, ""},
		{"close with 1 byte", closeWith(0x03), false, 1002, ""},
		{"close code 999", closeWith(0x03, 0xe7), false, 1002, ""},
		{"close code 1005", closeWith(0x03, 0xed), false, 1002, ""},
		{"close code 1006", closeWith(0x03, 0xee), false, 1002, ""},
		{"close code 1015", closeWith(0x03, 0xf7), false, 1002, ""},
		{"close code 2000", closeWith(0x07, 0xd0), false, 1002, ""},
		{"close code 5000", closeWith(0x13, 0x88), false, 1002, ""},
		{"close reason not UTF-8", closeWith(0x03, 0xe8, 0xff, 0xfe), false, 1007, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var every []int
			for i := 1; i < len(tc.stream); i++ {
				every = append(every, i)
			}
			for _, cuts := range [][]int{nil, every} {
				d := &Decoder{Compressed: tc.compressed}
				data, ctl, err := decodeLog(d, tc.stream, cuts...)
				var ce *CloseError
				if !errors.As(err, &ce) || ce.Code != tc.code {
					t.Fatalf("cuts %d: err = %v, want close %d", len(cuts), err, tc.code)
				}
				if data != tc.data || ctl != "" {
					t.Fatalf("cuts %d: delivered data %q ctl %q", len(cuts), data, ctl)
				}
				if again := d.Feed(bin("more"), func([]byte) error { t.Fatal("data after failure"); return nil }, nil); again != err {
					t.Fatalf("error not sticky: %v", again)
				}
				if d.ctrl != nil {
					t.Fatal("control buffer kept after failure")
				}
			}
		})
	}
}

func TestDecoderValidCloseCodes(t *testing.T) {
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3504, 3999, 4000, 4999} {
		payload := []byte{byte(code >> 8), byte(code), 'o', 'k', 0xc3, 0xa9}
		_, ctl, err := decodeLog(new(Decoder), clientFrame(true, 0, ws.OpClose, payload))
		if err != nil || ctl == "" {
			t.Fatalf("close %d refused: %v", code, err)
		}
		got, reason, err := ParseClose(payload)
		if err != nil || got != code || string(reason) != "oké" {
			t.Fatalf("ParseClose(%d) = %d %q %v", code, got, reason, err)
		}
	}
}

// TestDecoderAfterClose: nothing after a close frame is delivered or checked.
func TestDecoderAfterClose(t *testing.T) {
	stream := cat(clientFrame(true, 0, ws.OpClose, nil), bin("late"), []byte{0xff, 0xff})
	data, ctl, err := decodeLog(new(Decoder), stream, 1, 3)
	if err != nil || data != "" || ctl != `8:"";` {
		t.Fatalf("after close: err=%v data=%q ctl=%s", err, data, ctl)
	}
}

func TestDecoderMaxMessage(t *testing.T) {
	ok := cat(clientFrame(false, 0, ws.OpBinary, []byte("1234")), clientFrame(true, 0, ws.OpContinuation, []byte("5678")), bin("12345678"))
	if _, _, err := decodeLog(&Decoder{MaxMessage: 8}, ok); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	over := cat(clientFrame(false, 0, ws.OpBinary, []byte("1234")), clientFrame(true, 0, ws.OpContinuation, []byte("56789")))
	var ce *CloseError
	if _, _, err := decodeLog(&Decoder{MaxMessage: 8}, over); !errors.As(err, &ce) || ce.Code != 1009 {
		t.Fatalf("over the limit: %v, want 1009", err)
	}
}

// TestDecoderCallbackError: a callback's error stops decoding and is returned.
func TestDecoderCallbackError(t *testing.T) {
	stop := errors.New("stop")
	d := new(Decoder)
	calls := 0
	err := d.Feed(cat(bin("a"), bin("b")), func([]byte) error { calls++; return stop }, nil)
	if err != stop || calls != 1 || d.Feed(bin("c"), nil, nil) != stop {
		t.Fatalf("err=%v calls=%d", err, calls)
	}
	d = new(Decoder)
	err = d.Feed(clientFrame(true, 0, ws.OpPing, []byte("x")), nil, func(OpCode, []byte) error { return stop })
	if err != stop {
		t.Fatalf("control err=%v", err)
	}
}

// TestDecoderUnmasksInPlace: the data delivered aliases the input, unmasked,
// and equals the original payload.
func TestDecoderUnmasksInPlace(t *testing.T) {
	payload := []byte("the quick brown fox jumps over the lazy dog")
	frame := bin(string(payload))
	var got []byte
	if err := new(Decoder).Feed(frame, func(p []byte) error { got = p; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) || &got[0] != &frame[6] {
		t.Fatalf("got %q (aliasing input: %v)", got, len(got) > 0 && &got[0] == &frame[6])
	}
}
