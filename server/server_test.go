package server

import (
	"bytes"
	"testing"

	"github.com/tether-gw/tether/protocol"
)

// TestHandshakePingSend walks the happy path: HELLO → AUTH_OK, PING → PONG with the same
// seq, SEND → SEND_REPLY with the handler's answer, and a push from the Go API.
func TestHandshakePingSend(t *testing.T) {
	s := startServer(t, func(o *Options) { o.Handler = echoHandler{} })
	c := dialRaw(t, s)
	ok := c.hello("alice", "dev1", "ios")
	if ok.UserID != "alice" || ok.ConnID == 0 || ok.HeartbeatMs != 2000 || ok.MaxFrame != protocol.DefaultMaxFrame {
		t.Fatalf("AUTH_OK = %+v", ok)
	}
	c.write(protocol.AppendEmpty(nil, protocol.OpPing, 77))
	if f := c.expect(protocol.OpPong); f.Seq != 77 {
		t.Fatalf("PONG seq = %d, want 77", f.Seq)
	}
	c.send(&protocol.Send{Route: "echo", Payload: []byte("hi")}, 9, 0)
	f := c.expect(protocol.OpSendReply)
	if f.Seq != 9 || !bytes.Equal(f.Body, []byte("echo:hi")) {
		t.Fatalf("SEND_REPLY seq=%d body=%q", f.Seq, f.Body)
	}
	n, err := s.PushUser("alice", []byte("news"))
	if err != nil || n != 1 {
		t.Fatalf("PushUser = %d, %v", n, err)
	}
	f = c.expect(protocol.OpPush)
	var p protocol.Push
	if err := p.Decode(f.Body); err != nil || string(p.Payload) != "news" {
		t.Fatalf("PUSH = %+v, %v", p, err)
	}
}

// echoHandler answers SEND with "<route>:<payload>".
type echoHandler struct{ NopHandler }

func (echoHandler) OnMessage(m *Message) ([]byte, error) {
	return append([]byte(m.Route+":"), m.Payload...), nil
}
