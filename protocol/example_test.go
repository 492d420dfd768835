package protocol_test

import (
	"fmt"

	"github.com/tether-gw/tether/protocol"
)

// The frames printed here are the worked examples of docs/PROTOCOL.md;
// TestProtocolDocFrames checks the document against the same values.

func ExampleHello_AppendFrame() {
	hello := protocol.Hello{Token: "tk1", DeviceID: "d1", Platform: "ios", ClientVersion: "1.0"}
	frame, err := hello.AppendFrame(nil, 1, 0)
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", frame)
	// Output:
	// 00 00 00 2b 01 01 00 00 00 00 00 01 00 03 74 6b 31 00 02 64 31 00 03 69 6f 73 00 03 31 2e 30 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
}

func ExampleAuthOK_AppendFrame() {
	ok := protocol.AuthOK{
		ConnID:       42,
		HeartbeatMs:  protocol.DefaultHeartbeatMs,
		MaxFrame:     protocol.DefaultMaxFrame,
		ServerTimeMs: 1700000000000,
		Resume:       protocol.ResumeNone,
		Epoch:        1,
		LastID:       7,
		UserID:       "u1",
	}
	frame, _ := ok.AppendFrame(nil, 1, 0) // seq echoes the HELLO's
	fmt.Printf("% x\n", frame)
	// Output:
	// 00 00 00 35 01 02 00 00 00 00 00 01 00 00 00 00 00 00 00 2a 00 00 61 a8 00 01 00 00 00 00 01 8b cf e5 68 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 07 00 02 75 31
}

func ExampleAppendEmpty() {
	ping := protocol.AppendEmpty(nil, protocol.OpPing, 2)
	pong := protocol.AppendEmpty(nil, protocol.OpPong, 2) // echoes the PING's seq
	fmt.Printf("% x\n% x\n", ping, pong)
	// Output:
	// 00 00 00 08 01 04 00 00 00 00 00 02
	// 00 00 00 08 01 05 00 00 00 00 00 02
}

func ExampleSend_AppendFrame() {
	send := protocol.Send{Route: "echo", Payload: []byte("hi")}
	req, _ := send.AppendFrame(nil, 3, 0)
	reply, _ := (&protocol.SendReply{Payload: []byte("hi")}).AppendFrame(nil, 3, 0)
	fmt.Printf("% x\n% x\n", req, reply)
	// Output:
	// 00 00 00 10 01 06 00 00 00 00 00 03 00 04 65 63 68 6f 68 69
	// 00 00 00 0a 01 07 00 00 00 00 00 03 68 69
}

// A broadcast is encoded once; the same immutable slice is then written to
// every recipient (with netpoll, Writer.WriteBinary(frame) per connection).
func ExamplePush_AppendFrame() {
	push := protocol.Push{MsgID: 8, Payload: []byte("yo")}
	frame, _ := push.AppendFrame(nil, 0, protocol.FlagAckRequested)
	ack, _ := (&protocol.Ack{MsgID: 8}).AppendFrame(nil, 4, 0)
	fmt.Printf("% x\n% x\n", frame, ack)
	// Output:
	// 00 00 00 14 01 08 01 00 00 00 00 00 00 00 00 00 00 00 00 08 00 00 79 6f
	// 00 00 00 10 01 09 00 00 00 00 00 04 00 00 00 00 00 00 00 08
}

func ExampleClose_AppendFrame() {
	kick := protocol.Close{Code: protocol.CloseKicked, Reason: "kicked"}
	frame, _ := kick.AppendFrame(nil, 0, 0)
	fmt.Printf("% x\n", frame)
	fmt.Println(kick.Code, "terminal:", kick.Code.IsTerminal())
	// Output:
	// 00 00 00 12 01 0e 00 00 00 00 00 00 0d ae 00 06 6b 69 63 6b 65 64
	// KICKED terminal: true
}

func ExampleError_AppendFrame() {
	e := protocol.Error{Code: protocol.ErrorNoRoute, Message: "no route"}
	frame, _ := e.AppendFrame(nil, 7, 0) // seq echoes the failed request's
	fmt.Printf("% x\n", frame)
	// Output:
	// 00 00 00 14 01 0f 00 00 00 00 00 07 0f a1 00 08 6e 6f 20 72 6f 75 74 65
}

// BeginFrame and EndFrame build a body of unknown length in place, here a
// SEND_REPLY whose payload is produced by appending.
func ExampleBeginFrame() {
	b, start := protocol.BeginFrame(nil, protocol.Header{Op: protocol.OpSendReply, Seq: 3})
	b = append(b, 'h')
	b = append(b, 'i')
	b = protocol.EndFrame(b, start)
	fmt.Printf("% x\n", b)
	// Output:
	// 00 00 00 0a 01 07 00 00 00 00 00 03 68 69
}

func ExampleParse() {
	stream := []byte{
		0x00, 0x00, 0x00, 0x08, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // PING seq 2
		0x00, 0x00, 0x00, 0x0a, 0x01, 0x07, 0x00, // start of a SEND_REPLY
	}
	for {
		f, n, err := protocol.Parse(stream, protocol.DefaultMaxFrame)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		if n == 0 {
			fmt.Printf("need more: %d bytes buffered\n", len(stream))
			return
		}
		fmt.Println(f.Op, f.Seq, len(f.Body))
		stream = stream[n:]
	}
	// Output:
	// PING 2 0
	// need more: 7 bytes buffered
}

// A Decoder turns reads of any size into frames; here a stream of three
// frames arrives in two reads that split the middle frame.
func ExampleDecoder() {
	var stream []byte
	stream = protocol.AppendEmpty(stream, protocol.OpPong, 2)
	stream, _ = (&protocol.Push{MsgID: 8, Payload: []byte("yo")}).AppendFrame(stream, 0, protocol.FlagAckRequested)
	stream, _ = (&protocol.Close{Code: protocol.CloseGoingAway, Reason: "drain"}).AppendFrame(stream, 0, 0)

	var d protocol.Decoder // zero value: DefaultMaxFrame
	handle := func(f protocol.Frame) error {
		switch f.Op {
		case protocol.OpPush:
			var p protocol.Push
			if err := p.Decode(f.Body); err != nil {
				return err
			}
			fmt.Printf("PUSH msg_id=%d payload=%q ack=%v\n", p.MsgID, p.Payload, f.Flags.Has(protocol.FlagAckRequested))
		case protocol.OpClose:
			var c protocol.Close
			if err := c.Decode(f.Body); err != nil {
				return err
			}
			fmt.Printf("CLOSE %s reconnect=%v\n", c.Code, c.Code.IsReconnect())
		default:
			fmt.Println(f.Op, f.Seq)
		}
		return nil
	}
	for _, read := range [][]byte{stream[:20], stream[20:]} {
		if err := d.Decode(read, handle); err != nil {
			fmt.Println("close with", protocol.CloseCodeFor(err))
			return
		}
	}
	// Output:
	// PONG 2
	// PUSH msg_id=8 payload="yo" ack=true
	// CLOSE GOING_AWAY reconnect=true
}

// A frame whose length prefix exceeds the limit is rejected from its first
// four bytes, and the error maps to the CLOSE code to send.
func ExampleCloseCodeFor() {
	var d protocol.Decoder
	d.MaxFrame = protocol.PreAuthMaxFrame
	err := d.Decode([]byte{0x00, 0x10, 0x00, 0x00}, func(protocol.Frame) error { return nil })
	fmt.Println(err)
	fmt.Println(protocol.CloseCodeFor(err))
	// Output:
	// protocol: frame too large: length 1048576 exceeds limit 4096
	// FRAME_TOO_LARGE
}
