package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseIncompleteAtEveryPrefix(t *testing.T) {
	for _, s := range samples() {
		frame := s.bytes(t)
		for i := 0; i < len(frame); i++ {
			f, n, err := Parse(frame[:i], 0)
			if err != nil || n != 0 || f.Body != nil || f.Header != (Header{}) {
				t.Fatalf("%s: Parse(%d of %d bytes) = %+v, %d, %v; want zero, 0, nil", s.name, i, len(frame), f, n, err)
			}
		}
		// The complete frame followed by the start of another parses to the
		// first frame only.
		f, n, err := Parse(append(frame, 0, 0), 0)
		if err != nil || n != len(frame) {
			t.Fatalf("%s: Parse(complete) = n %d, err %v; want n %d", s.name, n, err, len(frame))
		}
		if f.Op != s.op || f.Seq != s.seq || f.Flags != s.flags || f.Version != Version {
			t.Fatalf("%s: header %+v; want op %s seq %d flags %s", s.name, f.Header, s.op, s.seq, s.flags)
		}
		if !bytes.Equal(f.Body, frame[Overhead:]) {
			t.Fatalf("%s: body %x; want %x", s.name, f.Body, frame[Overhead:])
		}
	}
}

func TestParseErrors(t *testing.T) {
	f := func(name string, b []byte, maxFrame int, want error, wantText string) {
		t.Helper()
		_, n, err := Parse(b, maxFrame)
		if !errors.Is(err, want) || n != 0 {
			t.Fatalf("%s: Parse = n %d, err %v; want %v", name, n, err, want)
		}
		if !strings.Contains(err.Error(), wantText) {
			t.Fatalf("%s: error %q does not contain %q", name, err, wantText)
		}
	}
	// A length below the header size is rejected from the 4 prefix bytes.
	for length := uint32(0); length < HeaderSize; length++ {
		f("too short", rawFrame(length, Version, OpPing, 0, 0, 0, nil)[:LengthSize], 0, ErrFrameTooShort, "below the 8-byte header")
	}
	// A length above the limit is rejected from the 4 prefix bytes alone,
	// without the rest of the frame.
	f("too large, prefix only", []byte{0, 0, 0x10, 0x01}, 4096, ErrFrameTooLarge, "length 4097 exceeds limit 4096")
	// The largest uint32 length with the default limit.
	f("too large, max uint32", []byte{0xff, 0xff, 0xff, 0xff}, 0, ErrFrameTooLarge, "exceeds limit 65536")
	// Limits above MaxFrameLimit are clamped to it.
	f("too large, clamped limit", []byte{0x01, 0, 0, 0x01}, 1<<30, ErrFrameTooLarge, "exceeds limit 16777216")
	// A bad version is reported once the header is complete, before the body.
	f("bad version 0", rawFrame(100, 0, OpPing, 0, 0, 0, nil), 0, ErrUnsupportedVersion, "version 0, want 1")
	f("bad version 2", rawFrame(100, 2, OpPing, 0, 0, 0, nil), 0, ErrUnsupportedVersion, "version 2, want 1")
	// The length check comes first: a too-large frame with a bad version
	// reports the size.
	f("too large and bad version", rawFrame(1<<20, 9, OpPing, 0, 0, 0, nil), 0, ErrFrameTooLarge, "exceeds")
}

func TestParseLimits(t *testing.T) {
	body := make([]byte, 100)
	frame := frameOf(OpSendReply, 1, body)
	// Exactly at the limit is accepted, one byte below rejects it.
	if _, n, err := Parse(frame, HeaderSize+100); err != nil || n != len(frame) {
		t.Fatalf("at limit: n %d err %v", n, err)
	}
	if _, _, err := Parse(frame, HeaderSize+99); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("above limit: err %v; want ErrFrameTooLarge", err)
	}
	// An empty-body frame (length == HeaderSize) is the smallest valid frame.
	if f, n, err := Parse(frameOf(OpPing, 1, nil), 0); err != nil || n != Overhead || len(f.Body) != 0 {
		t.Fatalf("empty body: %+v n %d err %v", f, n, err)
	}
}

func TestParseHeaderFields(t *testing.T) {
	// Reserved bits in flags are kept; the reserved byte is ignored.
	b := rawFrame(HeaderSize+1, Version, OpPush, FlagAckRequested|0x80, 0xAB, 0xDEADBEEF, []byte{7})
	f, n, err := Parse(b, 0)
	if err != nil || n != len(b) {
		t.Fatalf("Parse: n %d err %v", n, err)
	}
	want := Header{Version: 1, Op: OpPush, Flags: FlagAckRequested | 0x80, Seq: 0xDEADBEEF}
	if f.Header != want {
		t.Fatalf("header %+v; want %+v", f.Header, want)
	}
	if !f.Flags.Has(FlagAckRequested) || f.Flags.Has(FlagNoReply) {
		t.Fatalf("Has: flags %s", f.Flags)
	}
}

func TestParseBodyCapacityClipped(t *testing.T) {
	stream := append(frameOf(OpSendReply, 1, []byte("ab")), frameOf(OpSendReply, 2, []byte("cd"))...)
	f, n, err := Parse(stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(f.Body, 'X') // must not overwrite the next frame
	g, _, err := Parse(stream[n:], 0)
	if err != nil || g.Seq != 2 || string(g.Body) != "cd" {
		t.Fatalf("second frame corrupted: %+v %v", g, err)
	}
}

func TestFrameClone(t *testing.T) {
	buf := frameOf(OpSendReply, 1, []byte("payload"))
	f, _, _ := Parse(buf, 0)
	c := f.Clone()
	buf[Overhead] = 'X'
	if string(c.Body) != "payload" || c.Header != f.Header {
		t.Fatalf("clone shares memory or lost header: %+v", c)
	}
	if c.Size() != len(buf) {
		t.Fatalf("Size %d; want %d", c.Size(), len(buf))
	}
	if e := (Frame{Header: f.Header, Body: []byte{}}).Clone(); e.Body != nil {
		t.Fatalf("clone of empty body: %#v", e.Body)
	}
}

func TestAppendHeaderAndFrame(t *testing.T) {
	// Version 0 is written as Version and the reserved byte as 0.
	got := AppendFrame([]byte("xx"), Header{Op: OpSend, Flags: FlagNoReply, Seq: 0x01020304}, []byte{0xAA})
	want := append([]byte("xx"), 0, 0, 0, 9, 1, 6, 2, 0, 1, 2, 3, 4, 0xAA)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame = %x; want %x", got, want)
	}
	// An explicit version is written as given, so tests can produce others.
	got = AppendHeader(nil, Header{Version: 2, Op: OpPing}, 0)
	if got[4] != 2 {
		t.Fatalf("version byte %d; want 2", got[4])
	}
	if got := AppendEmpty(nil, OpPong, 7); !bytes.Equal(got, frameOf(OpPong, 7, nil)) {
		t.Fatalf("AppendEmpty = %x", got)
	}
}

func TestBeginEndFrame(t *testing.T) {
	// Two frames begun and ended back to back in one buffer.
	b, s1 := BeginFrame([]byte("pre"), Header{Op: OpSendReply, Seq: 1})
	b = append(b, "one"...)
	b = EndFrame(b, s1)
	b, s2 := BeginFrame(b, Header{Op: OpSendReply, Seq: 2})
	b = EndFrame(b, s2)
	want := append([]byte("pre"), frameOf(OpSendReply, 1, []byte("one"))...)
	want = append(want, frameOf(OpSendReply, 2, nil)...)
	if s1 != 3 || !bytes.Equal(b, want) {
		t.Fatalf("got %x start %d; want %x", b, s1, want)
	}
}

func TestEncodePanicsOnBug(t *testing.T) {
	f := func(name string, fn func()) {
		t.Helper()
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "BUG") {
				t.Fatalf("%s: recover() = %v; want BUG panic", name, r)
			}
		}()
		fn()
	}
	f("negative body length", func() { AppendHeader(nil, Header{}, -1) })
	f("end without begin", func() { EndFrame(make([]byte, 5), 0) })
	f("negative start", func() { EndFrame(make([]byte, 20), -1) })
}

func TestEncodeZeroAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	push := &Push{MsgID: 1, Channel: "room", Payload: make([]byte, 256)}
	hello := &Hello{Token: "t", DeviceID: "d", Platform: "p", ClientVersion: "v", ResumeEpoch: 1, ResumeLastID: 2}
	allocs := testing.AllocsPerRun(100, func() {
		b, _ := push.AppendFrame(buf[:0], 0, FlagAckRequested)
		b, _ = hello.AppendFrame(b, 1, 0)
		b = AppendEmpty(b, OpPing, 3)
		b = AppendFrame(b, Header{Op: OpSendReply}, push.Payload)
		_ = b
	})
	if allocs != 0 {
		t.Fatalf("encode allocs = %v; want 0", allocs)
	}
}

func TestParseZeroAllocs(t *testing.T) {
	stream := sampleStream(t)
	allocs := testing.AllocsPerRun(100, func() {
		for b := stream; len(b) > 0; {
			_, n, err := Parse(b, 0)
			if err != nil || n == 0 {
				panic("bad sample stream")
			}
			b = b[n:]
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocs = %v; want 0", allocs)
	}
}
