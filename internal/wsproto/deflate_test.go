package wsproto

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// gobwasCompress is an independent permessage-deflate encoder.
func gobwasCompress(t *testing.T, p []byte) []byte {
	t.Helper()
	f, err := wsflate.CompressFrame(ws.NewBinaryFrame(p))
	if err != nil {
		t.Fatal(err)
	}
	return f.Payload
}

// TestDecoderInflates: a compressed message from gobwas' encoder, whole or in
// fragments and at every split, arrives inflated; plain messages around it
// still stream.
func TestDecoderInflates(t *testing.T) {
	msg := []byte(strings.Repeat("tether frames in a compressed websocket message ", 20))
	z := gobwasCompress(t, msg)
	third := len(z) / 3
	stream := cat(
		bin("plain"),
		clientFrame(true, 4, ws.OpBinary, z),
		clientFrame(false, 4, ws.OpBinary, z[:third]),
		clientFrame(true, 0, ws.OpPing, []byte("p")),
		clientFrame(false, 0, ws.OpContinuation, z[third:2*third]),
		clientFrame(true, 0, ws.OpContinuation, z[2*third:]),
		clientFrame(true, 4, ws.OpBinary, gobwasCompress(t, nil)), // empty message
		bin("end"),
	)
	want := "plain" + string(msg) + string(msg) + "end"
	for cut := 0; cut <= len(stream); cut++ {
		d := &Decoder{Compressed: true}
		data, ctl, err := decodeLog(d, stream, cut)
		if err != nil || data != want || ctl != `9:"p";` {
			t.Fatalf("cut %d: err=%v data %d bytes (want %d) ctl=%s", cut, err, len(data), len(want), ctl)
		}
		if d.z != nil && d.z.in != nil {
			t.Fatalf("cut %d: compressed buffer kept after the message", cut)
		}
	}
}

func TestDecoderInflateLimits(t *testing.T) {
	bomb := Deflate(nil, make([]byte, 64<<10)) // 64 KiB of zeros: a few hundred bytes compressed
	var ce *CloseError
	_, _, err := decodeLog(&Decoder{Compressed: true, MaxMessage: 32 << 10}, clientFrame(true, 4, ws.OpBinary, bomb))
	if !errors.As(err, &ce) || ce.Code != 1009 {
		t.Fatalf("inflates past MaxMessage: %v, want 1009", err)
	}
	if data, _, err := decodeLog(&Decoder{Compressed: true}, clientFrame(true, 4, ws.OpBinary, bomb)); err != nil || len(data) != 64<<10 {
		t.Fatalf("within the default limit: %v, %d bytes", err, len(data))
	}
	_, _, err = decodeLog(&Decoder{Compressed: true}, clientFrame(true, 4, ws.OpBinary, []byte{0xff, 0xff, 0xff}))
	if !errors.As(err, &ce) || ce.Code != 1007 {
		t.Fatalf("garbage: %v, want 1007", err)
	}
}

// TestDeflateRoundTrip: Deflate's output is read by gobwas' decoder and by
// Inflate, and the compressed header carries RSV1.
func TestDeflateRoundTrip(t *testing.T) {
	for _, msg := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("abc"), 5000)} {
		z := Deflate([]byte("keep"), msg)
		if string(z[:4]) != "keep" {
			t.Fatal("Deflate does not append")
		}
		z = z[4:]
		f, err := wsflate.DecompressFrame(ws.Frame{Header: ws.Header{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: ws.OpBinary, Length: int64(len(z))}, Payload: z})
		if err != nil || !bytes.Equal(f.Payload, msg) {
			t.Fatalf("gobwas reads back %d bytes, err %v", len(f.Payload), err)
		}
		got, err := Inflate(nil, z, len(msg))
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("Inflate: %d bytes, err %v", len(got), err)
		}
		if len(msg) > 0 {
			if _, err := Inflate(nil, z, len(msg)-1); !errors.Is(err, errInflated) {
				t.Fatalf("Inflate past its limit: %v", err)
			}
		}
	}
	h, err := ws.ReadHeader(bytes.NewReader(AppendCompressedHeader(nil, OpBinary, true, 7)))
	if err != nil || h.Rsv != ws.Rsv(true, false, false) || h.Length != 7 {
		t.Fatalf("compressed header %+v %v", h, err)
	}
}
