package wsproto

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/gobwas/ws"
)

// BenchmarkDecoderFeed decodes a read's worth of back-to-back binary
// messages, one Feed per read, beside gobwas/ws' blocking reader
// (ReadHeader + ReadFull + Cipher over a bytes.Reader), the frame-level API
// a goroutine-per-connection server would use.
func BenchmarkDecoderFeed(b *testing.B) {
	for _, size := range []int{64, 1024} {
		var read []byte
		for len(read) < 16<<10 {
			read = append(read, bin(string(make([]byte, size)))...)
		}
		b.Run(fmt.Sprintf("%dB/", size)+"Decoder", func(b *testing.B) {
			var d Decoder
			onData := func([]byte) error { return nil }
			b.ReportAllocs()
			b.SetBytes(int64(len(read)))
			for b.Loop() {
				// Feed unmasks in place; the headers are unchanged, so
				// the same bytes stay a valid stream.
				if err := d.Feed(read, onData, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%dB/", size)+"gobwas-ReadHeader", func(b *testing.B) {
			r := bytes.NewReader(read)
			payload := make([]byte, size)
			b.ReportAllocs()
			b.SetBytes(int64(len(read)))
			for b.Loop() {
				r.Reset(read)
				for {
					h, err := ws.ReadHeader(r)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(r, payload[:h.Length]); err != nil {
						b.Fatal(err)
					}
					ws.Cipher(payload[:h.Length], h.Mask, 0)
				}
			}
		})
	}
}

// BenchmarkUpgrade is the cost of one accepted opening handshake.
func BenchmarkUpgrade(b *testing.B) {
	req := goodRequest("Origin: https://gw.example.com", "Sec-WebSocket-Protocol: tether.v1",
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
	cfg := &UpgradeConfig{}
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if _, _, _, err := Upgrade(req, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
