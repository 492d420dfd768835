package wsproto

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// TestAppendHeader: each length class round-trips through gobwas/ws' reader.
func TestAppendHeader(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xffff, 0x10000, 1 << 33} {
		for _, fin := range []bool{true, false} {
			b := AppendHeader(nil, OpBinary, fin, n)
			if len(b) > MaxHeaderLen {
				t.Fatalf("len %d: header of %d bytes", n, len(b))
			}
			h, err := ws.ReadHeader(bytes.NewReader(b))
			if err != nil || h.Length != int64(n) || h.Fin != fin || h.OpCode != ws.OpBinary || h.Masked || h.Rsv != 0 {
				t.Fatalf("len %d fin %v: read back %+v err %v", n, fin, h, err)
			}
		}
	}
	if b := AppendHeader([]byte("x"), OpPing, true, 3); string(b[:1]) != "x" || len(b) != 3 {
		t.Fatalf("AppendHeader does not append: %q", b)
	}
}

func TestAppendClose(t *testing.T) {
	f, err := ws.ReadFrame(bytes.NewReader(AppendClose(nil, 3502, "kicked")))
	if err != nil || f.Header.OpCode != ws.OpClose || !f.Header.Fin {
		t.Fatalf("read back %+v %v", f.Header, err)
	}
	if code, reason, err := ParseClose(f.Payload); code != 3502 || string(reason) != "kicked" || err != nil {
		t.Fatalf("ParseClose = %d %q %v", code, reason, err)
	}
	// A reason of 2-byte runes cut at 123 bytes must not split a rune.
	long := strings.Repeat("é", 100)
	b := AppendClose(nil, 1000, long)
	if len(b) > 2+MaxControlPayload {
		t.Fatalf("close frame of %d bytes", len(b))
	}
	_, reason, err := ParseClose(b[2:])
	if err != nil || !utf8.Valid(reason) || len(reason) != 122 {
		t.Fatalf("truncated reason %d bytes, err %v", len(reason), err)
	}
	if b := AppendClose(nil, 0, "ignored"); !bytes.Equal(b, []byte{0x88, 0}) {
		t.Fatalf("code 0: %x", b)
	}
}

func TestAppendPong(t *testing.T) {
	f, err := ws.ReadFrame(bytes.NewReader(AppendPong(nil, []byte("p1"))))
	if err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "p1" {
		t.Fatalf("read back %+v %q %v", f.Header, f.Payload, err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("126-byte pong did not panic")
		}
	}()
	AppendPong(nil, make([]byte, 126))
}

// TestParseHeaderIncomplete: every strict prefix of a valid header is
// "incomplete", never an error; the whole header parses to its length.
func TestParseHeaderIncomplete(t *testing.T) {
	for _, n := range []int{5, 300, 70000} {
		frame := clientFrame(true, 0, ws.OpBinary, make([]byte, n))
		hl := len(frame) - n
		for i := 0; i < hl; i++ {
			if _, got, err := ParseHeader(frame[:i], false); got != 0 || err != nil {
				t.Fatalf("len %d prefix %d: n=%d err=%v", n, i, got, err)
			}
		}
		h, got, err := ParseHeader(frame, false)
		if err != nil || got != hl || h.Length != int64(n) || h.Mask != testMask || !h.Masked || !h.Fin || h.Op != OpBinary {
			t.Fatalf("len %d: %+v n=%d err=%v", n, h, got, err)
		}
	}
	// A bad first byte pair fails before the rest of the header is there.
	if _, _, err := ParseHeader([]byte{0x83, 0xfe}, false); err != errOpcode {
		t.Fatalf("early check: %v", err)
	}
}

func TestUnmaskOffsets(t *testing.T) {
	orig := []byte("0123456789abcdefghij")
	masked := append([]byte(nil), orig...)
	Unmask(masked, testMask, 0)
	for cut := 0; cut <= len(masked); cut++ {
		p := append([]byte(nil), masked...)
		Unmask(p[:cut], testMask, 0)
		Unmask(p[cut:], testMask, int64(cut))
		if !bytes.Equal(p, orig) {
			t.Fatalf("cut %d: %q", cut, p)
		}
	}
}
