package protocol

import (
	"errors"
	"runtime"
	"testing"
)

// decodeChunks feeds chunks to a fresh Decoder and returns the cloned frames,
// the final error and the bytes left buffered.
func decodeChunks(maxFrame int, chunks ...[]byte) ([]Frame, error, int) {
	d := Decoder{MaxFrame: maxFrame}
	var frames []Frame
	var err error
	for _, c := range chunks {
		if err = d.Decode(c, func(f Frame) error {
			frames = append(frames, f.Clone())
			return nil
		}); err != nil {
			break
		}
	}
	return frames, err, d.Buffered()
}

func TestDecoderByteByByte(t *testing.T) {
	stream := sampleStream(t)
	want, _, _ := parseAll(stream, 0)
	if len(want) != len(samples()) {
		t.Fatalf("reference parse found %d frames; want %d", len(want), len(samples()))
	}
	chunks := make([][]byte, len(stream))
	for i := range stream {
		chunks[i] = stream[i : i+1]
	}
	got, err, buffered := decodeChunks(0, chunks...)
	if err != nil || buffered != 0 || !framesEqual(got, want) {
		t.Fatalf("byte by byte: %d frames, err %v, buffered %d; want %d frames", len(got), err, buffered, len(want))
	}
}

func TestDecoderEverySplit(t *testing.T) {
	stream := sampleStream(t)
	want, _, _ := parseAll(stream, 0)
	// Every single split point, and every pair of split points, which covers
	// a frame straddling three calls and a call that holds only part of a
	// header.
	for i := 0; i <= len(stream); i++ {
		got, err, buffered := decodeChunks(0, stream[:i], stream[i:])
		if err != nil || buffered != 0 || !framesEqual(got, want) {
			t.Fatalf("split at %d: %d frames, err %v, buffered %d", i, len(got), err, buffered)
		}
		for j := i; j <= len(stream); j++ {
			got, err, buffered := decodeChunks(0, stream[:i], stream[i:j], stream[j:])
			if err != nil || buffered != 0 || !framesEqual(got, want) {
				t.Fatalf("split at %d,%d: %d frames, err %v, buffered %d", i, j, len(got), err, buffered)
			}
		}
	}
}

func TestDecoderBuffered(t *testing.T) {
	frame := frameOf(OpSendReply, 1, make([]byte, 50))
	var d Decoder
	calls := 0
	count := func(Frame) error { calls++; return nil }
	for i, cut := range []int{2, 10, 30} { // inside prefix, inside header, inside body
		prev := 0
		if i > 0 {
			prev = []int{2, 10, 30}[i-1]
		}
		if err := d.Decode(frame[prev:cut], count); err != nil {
			t.Fatal(err)
		}
		if d.Buffered() != cut || calls != 0 {
			t.Fatalf("after %d bytes: Buffered %d calls %d", cut, d.Buffered(), calls)
		}
	}
	if err := d.Decode(frame[30:], count); err != nil || d.Buffered() != 0 || calls != 1 {
		t.Fatalf("complete: err %v Buffered %d calls %d", err, d.Buffered(), calls)
	}
}

func TestDecoderErrors(t *testing.T) {
	f := func(name string, maxFrame int, want error, chunks ...[]byte) {
		t.Helper()
		_, err, _ := decodeChunks(maxFrame, chunks...)
		if !errors.Is(err, want) {
			t.Fatalf("%s: err %v; want %v", name, err, want)
		}
	}
	// Too large, announced in a prefix split over two calls: reported as
	// soon as the fourth byte arrives, with no body sent at all.
	f("too large split prefix", 1024, ErrFrameTooLarge, []byte{0, 0}, []byte{0x04, 0x01})
	// Too short, in one call.
	f("too short", 0, ErrFrameTooShort, []byte{0, 0, 0, 7})
	// Bad version in a header split over calls, before any body byte.
	f("bad version split header", 0, ErrUnsupportedVersion, rawFrame(100, 2, OpPing, 0, 0, 0, nil)[:6], rawFrame(100, 2, OpPing, 0, 0, 0, nil)[6:12])
	// An error after a complete frame in the same chunk.
	f("error after frame", 0, ErrFrameTooShort, append(frameOf(OpPing, 1, nil), 0, 0, 0, 0))
}

func TestDecoderTooLargeAllocatesNothing(t *testing.T) {
	// The prefix announces MaxFrameLimit bytes; with a 4 KiB limit the
	// Decoder must fail without buffering or allocating for the body.
	var d Decoder
	d.MaxFrame = PreAuthMaxFrame
	prefix := []byte{0x01, 0, 0, 0}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_ = d.Decode(prefix[:1], nil)
	_ = d.Decode(prefix[1:], nil)
	runtime.ReadMemStats(&after)
	// The wrapped error itself allocates a little; the 16 MiB body must not.
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("allocated %d bytes for a rejected frame", n)
	}
	if err := d.Decode(nil, nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err %v; want ErrFrameTooLarge", err)
	}
	if cap(d.body) != 0 || d.pool != nil {
		t.Fatalf("body buffer of %d bytes obtained for a rejected frame", cap(d.body))
	}
}

func TestDecoderStickyErrorAndReset(t *testing.T) {
	var d Decoder
	boom := errors.New("boom")
	calls := 0
	stream := append(frameOf(OpPing, 1, nil), frameOf(OpPing, 2, nil)...)
	err := d.Decode(stream, func(Frame) error { calls++; return boom })
	if err != boom || calls != 1 {
		t.Fatalf("callback error: err %v calls %d; want boom after 1 call", err, calls)
	}
	// Sticky: the next call returns the same error without calling fn.
	if err := d.Decode(frameOf(OpPing, 3, nil), func(Frame) error { calls++; return nil }); err != boom || calls != 1 {
		t.Fatalf("after error: err %v calls %d", err, calls)
	}
	// Reset clears the error and any partial frame, keeping MaxFrame.
	d.MaxFrame = 100
	_ = d.Decode(nil, nil)
	d.Reset()
	if err := d.Decode(frameOf(OpPing, 4, nil)[:5], nil); err != nil || d.Buffered() != 5 {
		t.Fatalf("after Reset: err %v Buffered %d", err, d.Buffered())
	}
	d.Reset()
	if d.Buffered() != 0 || d.MaxFrame != 100 {
		t.Fatalf("Reset: Buffered %d MaxFrame %d", d.Buffered(), d.MaxFrame)
	}
	// A callback error on a frame completed from the straddle buffer is sticky too.
	d.Reset()
	frame := frameOf(OpSendReply, 5, []byte("xyz"))
	_ = d.Decode(frame[:14], nil)
	if err := d.Decode(frame[14:], func(Frame) error { return boom }); err != boom {
		t.Fatalf("straddled callback error: %v", err)
	}
	if err := d.Decode(nil, nil); err != boom {
		t.Fatalf("straddled callback error not sticky: %v", err)
	}
}

func TestDecoderMaxFrameChange(t *testing.T) {
	// A server decodes HELLO under PreAuthMaxFrame, then raises the limit.
	big := frameOf(OpSendReply, 1, make([]byte, PreAuthMaxFrame))
	d := Decoder{MaxFrame: PreAuthMaxFrame}
	if err := d.Decode(frameOf(OpPing, 1, nil), func(Frame) error { return nil }); err != nil {
		t.Fatal(err)
	}
	d.MaxFrame = DefaultMaxFrame
	n := 0
	if err := d.Decode(big, func(Frame) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("after raising limit: err %v frames %d", err, n)
	}
}

func TestDecoderRetainsOnlySmallBuffers(t *testing.T) {
	nop := func(Frame) error { return nil }
	small := frameOf(OpSendReply, 1, make([]byte, 100))
	// By default nothing is kept between frames: an idle stream holds no buffer.
	var idle Decoder
	_ = idle.Decode(small[:20], nop)
	_ = idle.Decode(small[20:], nop)
	if cap(idle.spare) != 0 {
		t.Fatalf("default decoder kept a %d-byte buffer", cap(idle.spare))
	}
	d := Decoder{Retain: true}
	_ = d.Decode(small[:20], nop)
	_ = d.Decode(small[20:], nop)
	if cap(d.spare) < 100 {
		t.Fatalf("small straddle buffer dropped: cap %d", cap(d.spare))
	}
	// A pooled buffer is in use only while its frame is pending.
	pooled := frameOf(OpSendReply, 2, make([]byte, decoderRetain+1))
	_ = d.Decode(pooled[:20], nop)
	if d.pool == nil {
		t.Fatal("4 KiB+ straddling frame not using the pool")
	}
	_ = d.Decode(pooled[20:], nop)
	if d.pool != nil || cap(d.spare) > decoderRetain {
		t.Fatalf("pooled buffer kept: pool %v spare cap %d", d.pool != nil, cap(d.spare))
	}
	// Reset returns a pending pooled buffer too.
	_ = d.Decode(pooled[:20], nop)
	d.Reset()
	if d.pool != nil || d.Buffered() != 0 {
		t.Fatal("Reset kept the pending pooled buffer")
	}
	// Frames above DefaultMaxFrame get their own buffer, dropped after use.
	d.MaxFrame = MaxFrameLimit
	huge := frameOf(OpSendReply, 3, make([]byte, DefaultMaxFrame))
	got := 0
	_ = d.Decode(huge[:20], nop)
	_ = d.Decode(huge[20:], func(f Frame) error { got = len(f.Body); return nil })
	if got != DefaultMaxFrame || d.pool != nil || cap(d.spare) > decoderRetain {
		t.Fatalf("huge frame: body %d, pool %v, spare cap %d", got, d.pool != nil, cap(d.spare))
	}
}

func TestDecoderZeroAllocs(t *testing.T) {
	stream := sampleStream(t)
	d := Decoder{Retain: true}
	nop := func(Frame) error { return nil }
	// Whole frames: zero-copy, no allocation.
	if a := testing.AllocsPerRun(100, func() { _ = d.Decode(stream, nop) }); a != 0 {
		t.Fatalf("whole frames: allocs %v; want 0", a)
	}
	// Straddling small frames reuse the retained buffer once it exists.
	_ = d.Decode(stream[:len(stream)/2], nop)
	_ = d.Decode(stream[len(stream)/2:], nop)
	if a := testing.AllocsPerRun(100, func() {
		_ = d.Decode(stream[:len(stream)/2], nop)
		_ = d.Decode(stream[len(stream)/2:], nop)
	}); a != 0 {
		t.Fatalf("straddling frames: allocs %v; want 0", a)
	}
}
