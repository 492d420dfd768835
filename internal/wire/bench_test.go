package wire

import (
	"testing"

	"github.com/tether-gw/tether/protocol"
)

// The SDK side of a push: encoding its header and decoding its result with Std.
func BenchmarkStdPush(b *testing.B) {
	payload := make([]byte, 64)
	hdr := &Push{Users: []string{"alice", "bob"}, Exclude: []uint64{42}}
	res, _ := AppendFrame(nil, OpResult, 1, &PushResult{Delivered: 3, Offline: 1}, nil)
	body := res[protocol.LengthSize+protocol.HeaderSize:]
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := AppendFrame(nil, OpPush, 1, hdr, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r PushResult
			if _, err := DecodeBody(body, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
