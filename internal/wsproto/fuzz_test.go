package wsproto

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

// FuzzUpgrade: Upgrade never panics, never claims more bytes than it was
// given, asks for more only without a response, and answers every decision
// with a response of the kind its error says; feeding a prefix first does
// not change the answer.
func FuzzUpgrade(f *testing.F) {
	f.Add(goodRequest(), 10)                                                         // valid
	f.Add(goodRequest("Sec-WebSocket-Protocol: tether.v1", "Origin: https://x"), 50) // refused 403
	f.Add(request("POST /ws HTTP/1.1", goodHeaders...), 3)                           // 405
	f.Add(goodRequest("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10"), 0)
	f.Add([]byte("GET /ws HTTP/1.1\r\n\n\r\n"), 1) // bare LF
	f.Fuzz(func(t *testing.T, buf []byte, cut int) {
		cfg := &UpgradeConfig{MaxHeaderBytes: 1024, Compression: cut%2 == 0}
		n, resp, info, err := Upgrade(buf, cfg)
		switch {
		case n < 0 || n > len(buf):
			t.Fatalf("n = %d of %d", n, len(buf))
		case n == 0 && (err != nil || resp != nil):
			t.Fatalf("n == 0 with err %v resp %q", err, resp)
		case n > 0 && err == nil && !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")):
			t.Fatalf("accepted with %q", resp)
		case n > 0 && err != nil && (bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) || info != Info{}):
			t.Fatalf("refused (%v) with %q %+v", err, resp, info)
		}
		if cut < 0 || cut > len(buf) {
			return
		}
		// A decision made on a prefix must be the decision on the whole.
		if pn, _, _, perr := Upgrade(buf[:cut], cfg); pn != 0 && (pn != n || (perr == nil) != (err == nil)) {
			t.Fatalf("prefix %d decided n=%d err=%v, whole n=%d err=%v", cut, pn, perr, n, err)
		}
	})
}

// FuzzDecoder: the decoder never panics, never delivers more data bytes than
// it was given (without compression), and decodes the same whatever the
// split of its input.
func FuzzDecoder(f *testing.F) {
	f.Add(bin("hello"), 3)                                     // one frame
	f.Add(cat(clientFrame(false, 0, ws.OpBinary, []byte("a")), // fragmented, ping inside
		clientFrame(true, 0, ws.OpPing, []byte("p")),
		clientFrame(true, 0, ws.OpContinuation, []byte("b"))), 7)
	f.Add(clientFrame(true, 0, ws.OpClose, []byte{0x03, 0xe8, 'x'}), 1)           // close
	f.Add([]byte{0x82, 0x02, 'h', 'i'}, 1)                                        // unmasked
	f.Add(clientFrame(true, 4, ws.OpBinary, []byte("z")), 2)                      // RSV1
	f.Add(bin(string(make([]byte, 300))), 5)                                      // 16-bit length
	f.Add(clientFrame(true, 4, ws.OpBinary, Deflate(nil, []byte("zzzzzzzz"))), 3) // compressed
	f.Fuzz(func(t *testing.T, stream []byte, cut int) {
		if cut < 0 || cut > len(stream) {
			cut = len(stream) / 2
		}
		d1 := &Decoder{Compressed: cut%2 == 1, MaxMessage: 1 << 20}
		data1, ctl1, err1 := decodeLog(d1, stream)
		if !d1.Compressed && len(data1) > len(stream) { // inflating may grow it
			t.Fatalf("%d data bytes from %d input bytes", len(data1), len(stream))
		}
		d2 := &Decoder{Compressed: cut%2 == 1, MaxMessage: 1 << 20}
		data2, ctl2, err2 := decodeLog(d2, stream, cut)
		if data1 != data2 || ctl1 != ctl2 || err1 != err2 {
			t.Fatalf("split at %d changed the result: %q %q %v vs %q %q %v", cut, data1, ctl1, err1, data2, ctl2, err2)
		}
	})
}
