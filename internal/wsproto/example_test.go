package wsproto_test

import (
	"fmt"

	"github.com/tether-gw/tether/internal/wsproto"
)

// Example shows the read-callback flow: upgrade on the bytes buffered so
// far, then decode frames from the rest of the stream.
func Example() {
	in := []byte("GET /ws?token=t1 HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: tether.v1\r\n\r\n")
	// A masked binary frame "hi" (mask 00 00 00 00 keeps the example readable)
	// and a masked ping "p".
	in = append(in, 0x82, 0x82, 0, 0, 0, 0, 'h', 'i', 0x89, 0x81, 0, 0, 0, 0, 'p')

	n, resp, info, err := wsproto.Upgrade(in, &wsproto.UpgradeConfig{})
	if n == 0 && err == nil {
		return // wait for more bytes
	}
	fmt.Printf("%s\n| %s %q %q\n", resp[:32], info.Path, info.RawQuery, info.Subprotocol)

	var d wsproto.Decoder
	var out []byte // what the connection writes back
	err = d.Feed(in[n:],
		func(p []byte) error { fmt.Printf("data %q\n", p); return nil },
		func(op wsproto.OpCode, p []byte) error {
			if op == wsproto.OpPing {
				out = wsproto.AppendPong(out, p)
			}
			return nil
		})
	fmt.Printf("err %v, reply % x\n", err, out)
	fmt.Printf("close % x\n", wsproto.AppendClose(nil, 3502, "kicked"))
	// Output:
	// HTTP/1.1 101 Switching Protocols
	// | /ws "token=t1" "tether.v1"
	// data "hi"
	// err <nil>, reply 8a 01 70
	// close 88 08 0d ae 6b 69 63 6b 65 64
}
