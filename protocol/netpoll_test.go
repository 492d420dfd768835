package protocol

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cloudwego/netpoll"
)

// feed writes p into the LinkBuffer and makes it readable, as netpoll does
// when bytes arrive on a connection.
func feed(t *testing.T, lb *netpoll.LinkBuffer, p []byte) {
	t.Helper()
	if _, err := lb.WriteBinary(p); err != nil {
		t.Fatal(err)
	}
	if err := lb.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestNextFrameNeedsMore(t *testing.T) {
	frame := frameOf(OpSendReply, 7, []byte("hello"))
	// At every prefix of the frame NextFrame reports "not yet" and consumes
	// nothing.
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
	frame := frameOf(OpSendReply, 7, bytes.Repeat([]byte("x"), 3000))
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
		if f.Op != OpSendReply || f.Seq != 7 || !bytes.Equal(f.Body, frame[Overhead:]) {
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

func TestNextFrameStream(t *testing.T) {
	stream := sampleStream(t)
	want, _, _ := parseAll(stream, 0)
	lb := netpoll.NewLinkBuffer()
	feed(t, lb, stream[:len(stream)/3])
	feed(t, lb, stream[len(stream)/3:])
	var got []Frame
	for {
		f, ok, err := NextFrame(lb, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, f.Clone())
	}
	if err := lb.Release(); err != nil {
		t.Fatal(err)
	}
	if !framesEqual(got, want) {
		t.Fatalf("NextFrame loop got %d frames; want %d", len(got), len(want))
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
	f("too large", []byte{0, 0, 0x10, 0x01}, PreAuthMaxFrame, ErrFrameTooLarge)
	f("too short", []byte{0, 0, 0, 3}, 0, ErrFrameTooShort)
	// Bad version from the 12 header bytes, body not yet arrived.
	f("bad version", rawFrame(100, 2, OpPing, 0, 0, 0, nil), 0, ErrUnsupportedVersion)
}
