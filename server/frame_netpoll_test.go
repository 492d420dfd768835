package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cloudwego/netpoll"

	"github.com/tether-gw/tether/protocol"
)

// feed writes p into the LinkBuffer and makes it readable, as netpoll does when
// bytes arrive on a connection.
func feed(t testing.TB, lb *netpoll.LinkBuffer, p []byte) {
	t.Helper()
	if _, err := lb.WriteBinary(p); err != nil {
		t.Fatal(err)
	}
	if err := lb.Flush(); err != nil {
		t.Fatal(err)
	}
}

// rawFrameBytes builds frame bytes field by field, so a test can state any header.
func rawFrameBytes(length uint32, version uint8, op protocol.Opcode, seq uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, length)
	b = append(b, version, byte(op), 0, 0)
	b = binary.BigEndian.AppendUint32(b, seq)
	return append(b, body...)
}

// frameBytes builds a valid frame around body.
func frameBytes(op protocol.Opcode, seq uint32, body []byte) []byte {
	return rawFrameBytes(uint32(protocol.HeaderSize+len(body)), protocol.Version, op, seq, body)
}

// parseStream is the reference reader: a protocol.Parse loop over the whole input.
func parseStream(b []byte, maxFrame int) (frames []protocol.Frame, consumed int, err error) {
	for {
		f, n, err := protocol.Parse(b[consumed:], maxFrame)
		if err != nil || n == 0 {
			return frames, consumed, err
		}
		frames = append(frames, f.Clone())
		consumed += n
	}
}

// nextAll runs NextFrame until it reports "not yet" or an error.
func nextAll(t testing.TB, lb *netpoll.LinkBuffer, maxFrame int) ([]protocol.Frame, error) {
	t.Helper()
	var got []protocol.Frame
	for {
		f, ok, err := NextFrame(lb, maxFrame)
		if err != nil || !ok {
			return got, err
		}
		got = append(got, f.Clone())
	}
}

func sameFrames(a, b []protocol.Frame) bool {
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

func TestNextFrameNeedsMore(t *testing.T) {
	frame := frameBytes(protocol.OpSendReply, 7, []byte("hello"))
	// At every prefix of the frame NextFrame reports "not yet" and consumes nothing.
	for i := 0; i < len(frame); i++ {
		lb := netpoll.NewLinkBuffer()
		feed(t, lb, frame[:i])
		f, ok, err := NextFrame(lb, 0)
		if ok || err != nil || f.Body != nil || lb.Len() != i {
			t.Fatalf("%d bytes: ok %v err %v Len %d", i, ok, err, lb.Len())
		}
	}
}

func TestNextFrameSplitAcrossWrites(t *testing.T) {
	frame := frameBytes(protocol.OpSendReply, 7, bytes.Repeat([]byte("x"), 3000))
	for _, cut := range []int{1, 4, 11, 12, 13, 1500, len(frame) - 1} {
		lb := netpoll.NewLinkBuffer(1024) // small nodes: the frame spans several
		feed(t, lb, frame[:cut])
		if _, ok, err := NextFrame(lb, 0); ok || err != nil {
			t.Fatalf("cut %d, first write: ok %v err %v", cut, ok, err)
		}
		feed(t, lb, frame[cut:])
		f, ok, err := NextFrame(lb, 0)
		if !ok || err != nil {
			t.Fatalf("cut %d, second write: ok %v err %v", cut, ok, err)
		}
		if f.Op != protocol.OpSendReply || f.Seq != 7 || !bytes.Equal(f.Body, frame[protocol.Overhead:]) {
			t.Fatalf("cut %d: frame %+v, body %d bytes", cut, f.Header, len(f.Body))
		}
		if lb.Len() != 0 {
			t.Fatalf("cut %d: %d bytes left", cut, lb.Len())
		}
		if err := lb.Release(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNextFrameErrors(t *testing.T) {
	f := func(name string, p []byte, maxFrame int, want error) {
		t.Helper()
		lb := netpoll.NewLinkBuffer()
		feed(t, lb, p)
		_, ok, err := NextFrame(lb, maxFrame)
		if ok || !errors.Is(err, want) {
			t.Fatalf("%s: ok %v err %v; want %v", name, ok, err, want)
		}
		if lb.Len() != len(p) {
			t.Fatalf("%s: consumed %d bytes on error", name, len(p)-lb.Len())
		}
	}
	// Too large from the 4 prefix bytes alone: no body is waited for.
	f("too large", []byte{0, 0, 0x10, 0x01}, protocol.PreAuthMaxFrame, protocol.ErrFrameTooLarge)
	f("too short", []byte{0, 0, 0, 3}, 0, protocol.ErrFrameTooShort)
	// Bad version from the 12 header bytes, body not yet arrived.
	f("bad version", rawFrameBytes(100, 2, protocol.OpPing, 0, nil), 0, protocol.ErrUnsupportedVersion)
}

// FuzzNextFrame checks that NextFrame over a LinkBuffer holding the input gives
// exactly the frames and error of a protocol.Parse loop, and consumes exactly the
// bytes of the frames it returned. limit is the maxFrame (0 = DefaultMaxFrame).
func FuzzNextFrame(f *testing.F) {
	var stream []byte
	for i, op := range []protocol.Opcode{protocol.OpPing, protocol.OpSend, protocol.OpPush, protocol.OpClose} {
		stream = append(stream, frameBytes(op, uint32(i), bytes.Repeat([]byte{byte(i)}, i*7))...)
	}
	f.Add(stream, uint16(0))                                                                                       // valid frames back to back
	f.Add(stream[:len(stream)-3], uint16(0))                                                                       // cut inside the last frame
	f.Add(stream[:9], uint16(0))                                                                                   // cut inside the first header
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(0))                                                               // oversized, rejected from 4 bytes
	f.Add(frameBytes(protocol.OpSendReply, 1, make([]byte, 64)), uint16(32))                                       // oversized for a small limit
	f.Add([]byte{0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 0, 0}, uint16(0))                                                   // shorter than the header
	f.Add(append(frameBytes(protocol.OpPing, 1, nil), rawFrameBytes(8, 2, protocol.OpPing, 2, nil)...), uint16(0)) // bad version second

	f.Fuzz(func(t *testing.T, in []byte, limit uint16) {
		want, consumed, wantErr := parseStream(in, int(limit))
		lb := netpoll.NewLinkBuffer()
		feed(t, lb, in)
		got, gotErr := nextAll(t, lb, int(limit))
		if !sameFrames(got, want) || (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("NextFrame: %d frames, err %v; Parse loop: %d frames, err %v", len(got), gotErr, len(want), wantErr)
		}
		if lb.Len() != len(in)-consumed {
			t.Fatalf("NextFrame left %d bytes; want %d", lb.Len(), len(in)-consumed)
		}
		_ = lb.Release()
	})
}
