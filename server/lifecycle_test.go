package server

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// TestBadToken: a rejected token gets AUTH_FAIL with the authenticator's terminal code
// and the connection closes.
func TestBadToken(t *testing.T) {
	s := startServer(t, func(o *Options) {
		o.Authenticator = AuthenticatorFunc(func(ctx context.Context, req AuthRequest) (Identity, error) {
			if req.Token == "expired" {
				return Identity{}, &AuthError{Code: protocol.CloseTokenExpired, Reason: "token expired"}
			}
			return Identity{}, &AuthError{Code: protocol.CloseInvalidToken, Reason: "bad signature"}
		})
	})
	for _, tc := range []struct {
		token string
		code  protocol.CloseCode
	}{
		{"garbage", protocol.CloseInvalidToken}, // an unparseable token
		{"expired", protocol.CloseTokenExpired}, // a valid but expired one
	} {
		c := dialRaw(t, s)
		c.send(&protocol.Hello{Token: tc.token}, 1, 0)
		c.expectClosed(protocol.OpAuthFail, tc.code)
		if !tc.code.IsTerminal() {
			t.Fatalf("%v should be terminal", tc.code)
		}
	}
}

// TestHeartbeatTimeout: an authenticated connection silent for 1.5 heartbeats is closed
// with HeartbeatTimeout.
func TestHeartbeatTimeout(t *testing.T) {
	s := startServer(t, func(o *Options) { o.Heartbeat = 100 * time.Millisecond })
	c := dialRaw(t, s)
	c.hello("bob", "d", "ios")
	start := time.Now()
	c.expectClosed(protocol.OpClose, protocol.CloseHeartbeatTimeout)
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("closed after %v, before 1.5 heartbeats", el)
	}
}

// TestBadInputBeforeAuth: garbage, bad framing and wrong first frames close only the
// offending connection, with the defined code; an authenticated bystander is unaffected.
func TestBadInputBeforeAuth(t *testing.T) {
	s := startServer(t, nil)
	bystander := dialRaw(t, s)
	bystander.hello("bystander", "d", "ios")

	frameLen := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	cases := []struct {
		name  string
		input []byte
		code  protocol.CloseCode
	}{
		// An HTTP request: "GET " read as a length is ~1.2 GB.
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), protocol.CloseFrameTooLarge},
		// A length below the 8-byte header.
		{"short length", frameLen(3), protocol.CloseProtocolError},
		// A HELLO-sized frame above the 4 KiB pre-auth cap.
		{"oversized hello", frameLen(protocol.PreAuthMaxFrame + 1), protocol.CloseFrameTooLarge},
		// Version 9 in an otherwise valid header.
		{"bad version", append(frameLen(8), 9, byte(protocol.OpHello), 0, 0, 0, 0, 0, 1), protocol.CloseUnsupportedVersion},
		// A SEND before HELLO.
		{"send first", mustFrame(t, &protocol.Send{Route: "x"}), protocol.CloseProtocolError},
		// A HELLO whose body is truncated.
		{"malformed hello", protocol.AppendFrame(nil, protocol.Header{Version: 1, Op: protocol.OpHello}, []byte{0, 9, 'a'}), protocol.CloseProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s)
			c.write(tc.input)
			c.expectClosed(protocol.OpClose, tc.code)
		})
	}
	bystander.write(protocol.AppendEmpty(nil, protocol.OpPing, 5))
	bystander.expect(protocol.OpPong)
}

// TestPreAuthBudget: PINGs are allowed before HELLO, but only up to the byte budget.
func TestPreAuthBudget(t *testing.T) {
	s := startServer(t, func(o *Options) { o.PreAuthBudget = 120 })
	c := dialRaw(t, s)
	for i := 0; i < 5; i++ { // 60 bytes: within budget
		c.write(protocol.AppendEmpty(nil, protocol.OpPing, uint32(i)))
		c.expect(protocol.OpPong)
	}
	for i := 0; i < 6; i++ { // 72 more: over
		c.write(protocol.AppendEmpty(nil, protocol.OpPing, uint32(i)))
	}
	c.expectClosed(protocol.OpClose, protocol.CloseProtocolError)
}

// TestBadInputAfterAuth: after auth, an oversized frame closes with FrameTooLarge; a
// malformed body or unknown opcode only gets an ERROR and the connection stays.
func TestBadInputAfterAuth(t *testing.T) {
	s := startServer(t, func(o *Options) { o.MaxFrame = 1024 })
	c := dialRaw(t, s)
	c.hello("dave", "d", "ios")

	c.write(protocol.AppendFrame(nil, protocol.Header{Version: 1, Op: protocol.OpSend, Seq: 3}, []byte{0xff}))
	f := c.expect(protocol.OpError)
	var e protocol.Error
	if err := e.Decode(f.Body); err != nil || e.Code != protocol.ErrorBadRequest || f.Seq != 3 {
		t.Fatalf("malformed SEND: ERROR %+v seq %d (%v)", e, f.Seq, err)
	}
	c.write(protocol.AppendFrame(nil, protocol.Header{Version: 1, Op: 0x30, Seq: 4}, nil))
	f = c.expect(protocol.OpError)
	if err := e.Decode(f.Body); err != nil || e.Code != protocol.ErrorUnknownOpcode || f.Seq != 4 {
		t.Fatalf("unknown opcode: ERROR %+v seq %d (%v)", e, f.Seq, err)
	}
	c.write(protocol.AppendEmpty(nil, protocol.OpPing, 5))
	c.expect(protocol.OpPong)

	big := protocol.AppendFrame(nil, protocol.Header{Version: 1, Op: protocol.OpSend, Seq: 6}, make([]byte, 2000))
	c.write(big)
	c.expectClosed(protocol.OpClose, protocol.CloseFrameTooLarge)
}

// TestClientClose: a client CLOSE ends the connection and it leaves the hub.
func TestClientClose(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s)
	c.hello("erin", "d", "ios")
	waitFor(t, "authenticated", func() bool { return s.Stats().Authenticated == 1 })
	c.send(&protocol.Close{Code: protocol.CloseNormal}, 0, 0)
	waitFor(t, "connection removed", func() bool { return s.Stats().Connections == 0 && s.Stats().Users == 0 })
}

func mustFrame(t *testing.T, m interface {
	AppendFrame([]byte, uint32, protocol.Flags) ([]byte, error)
}) []byte {
	t.Helper()
	b, err := m.AppendFrame(nil, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFramesSplitAcrossReads: frames cut at every byte boundary across writes decode the
// same as whole ones, and the connection holds no decoder once nothing is pending.
func TestFramesSplitAcrossReads(t *testing.T) {
	s := startServer(t, func(o *Options) { o.Handler = echoHandler{} })
	c := dialRaw(t, s)
	c.hello("split", "a", "ios")
	var sc *Conn
	waitFor(t, "conn", func() bool {
		cs := s.UserConns("split")
		sc = nil
		if len(cs) == 1 {
			sc = cs[0]
		}
		return sc != nil
	})
	frame := mustFrame(t, &protocol.Send{Route: "r", Payload: []byte("0123456789")})
	for cut := 1; cut < len(frame); cut++ {
		c.write(frame[:cut])
		// Wait until the server holds the partial frame, so the cut is a real read boundary.
		waitFor(t, "partial frame buffered", func() bool { return pendingDecoder(sc) })
		c.write(frame[cut:])
		if f := c.expect(protocol.OpSendReply); string(f.Body) != "r:0123456789" {
			t.Fatalf("cut %d: reply %q", cut, f.Body)
		}
	}
	if pendingDecoder(sc) {
		t.Fatal("decoder kept after the last frame completed")
	}
}

// pendingDecoder reports whether c holds a partial frame.
func pendingDecoder(c *Conn) bool { return c.partial.Load() }
