package baseline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// start runs a server on a loopback port and stops it when the test ends.
func start(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(opts)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// client is a minimal blocking test client.
type client struct {
	t  *testing.T
	nc net.Conn
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc}
}

func (c *client) send(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) sendMsg(m protocol.Message, seq uint32, flags protocol.Flags) {
	c.t.Helper()
	b, err := m.AppendFrame(nil, seq, flags)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(b)
}

// read returns the next frame, or fails the test after 5 s.
func (c *client) read() protocol.Frame {
	c.t.Helper()
	f, err := c.tryRead(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *client) tryRead(timeout time.Duration) (protocol.Frame, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	var head [protocol.LengthSize]byte
	if _, err := io.ReadFull(c.nc, head[:]); err != nil {
		return protocol.Frame{}, err
	}
	b := make([]byte, protocol.LengthSize+int(binary.BigEndian.Uint32(head[:])))
	copy(b, head[:])
	if _, err := io.ReadFull(c.nc, b[protocol.LengthSize:]); err != nil {
		return protocol.Frame{}, err
	}
	f, _, err := protocol.Parse(b, protocol.MaxFrameLimit)
	return f, err
}

// expect reads a frame and checks its opcode and seq.
func (c *client) expect(op protocol.Opcode, seq uint32) protocol.Frame {
	c.t.Helper()
	f := c.read()
	if f.Op != op || f.Seq != seq {
		c.t.Fatalf("got %v seq %d, want %v seq %d", f.Op, f.Seq, op, seq)
	}
	return f
}

// expectClose reads a CLOSE with code, then EOF.
func (c *client) expectClose(code protocol.CloseCode) {
	c.t.Helper()
	f := c.expect(protocol.OpClose, 0)
	var m protocol.Close
	if err := m.Decode(f.Body); err != nil {
		c.t.Fatal(err)
	}
	if m.Code != code {
		c.t.Fatalf("CLOSE %v (%q), want %v", m.Code, m.Reason, code)
	}
	if _, err := c.tryRead(5 * time.Second); !errors.Is(err, io.EOF) {
		c.t.Fatalf("after CLOSE: %v, want EOF", err)
	}
}

func (c *client) hello(token string) protocol.AuthOK {
	c.t.Helper()
	c.sendMsg(&protocol.Hello{Token: token, DeviceID: "d1", Platform: "test"}, 1, 0)
	f := c.expect(protocol.OpAuthOK, 1)
	var ok protocol.AuthOK
	if err := ok.Decode(f.Body); err != nil {
		c.t.Fatal(err)
	}
	return ok
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSession(t *testing.T) {
	s, addr := start(t, Options{Heartbeat: 7 * time.Second})
	c := dial(t, addr)

	// PING is answered even before HELLO.
	c.send(protocol.AppendEmpty(nil, protocol.OpPing, 9))
	c.expect(protocol.OpPong, 9)

	ok := c.hello("alice")
	if ok.UserID != "alice" || ok.HeartbeatMs != 7000 || ok.MaxFrame != protocol.DefaultMaxFrame || ok.ConnID == 0 {
		t.Fatalf("AUTH_OK = %+v", ok)
	}
	waitFor(t, "authenticated count", func() bool { return s.Stats().Authenticated == 1 })

	c.send(protocol.AppendEmpty(nil, protocol.OpPing, 2))
	c.expect(protocol.OpPong, 2)

	c.sendMsg(&protocol.Send{Route: "echo", Payload: []byte("hi")}, 3, 0)
	f := c.expect(protocol.OpSendReply, 3)
	if !bytes.Equal(f.Body, []byte("hi")) {
		t.Fatalf("SEND_REPLY body %q, want %q", f.Body, "hi")
	}

	// A SEND larger than the 4 KiB read buffer takes the copying path.
	big := bytes.Repeat([]byte{'x'}, 10000)
	c.sendMsg(&protocol.Send{Route: "echo", Payload: big}, 4, 0)
	f = c.expect(protocol.OpSendReply, 4)
	if !bytes.Equal(f.Body, big) {
		t.Fatalf("big SEND_REPLY body has %d bytes, want %d", len(f.Body), len(big))
	}

	// FlagNoReply gets no answer: the next answer is the SUBSCRIBE's OK.
	c.sendMsg(&protocol.Send{Route: "echo", Payload: []byte("quiet")}, 5, protocol.FlagNoReply)
	c.sendMsg(&protocol.Subscribe{Room: "r1"}, 6, 0)
	c.expect(protocol.OpOK, 6)
	c.sendMsg(&protocol.Unsubscribe{Room: "r1"}, 7, 0)
	c.expect(protocol.OpOK, 7)

	// An undefined client opcode is an ERROR, and the connection stays.
	c.send(protocol.AppendEmpty(nil, 0x30, 8))
	f = c.expect(protocol.OpError, 8)
	var e protocol.Error
	if err := e.Decode(f.Body); err != nil || e.Code != protocol.ErrorUnknownOpcode {
		t.Fatalf("ERROR %+v, %v; want UNKNOWN_OPCODE", e, err)
	}

	// CLOSE from the client ends the connection without an answer.
	c.sendMsg(&protocol.Close{Code: protocol.CloseNormal}, 0, 0)
	if _, err := c.tryRead(5 * time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("after CLOSE: %v, want EOF", err)
	}
	waitFor(t, "connection to go", func() bool { return s.Stats() == Stats{} })
}

func TestCloses(t *testing.T) {
	f := func(name string, opts Options, code protocol.CloseCode, do func(c *client)) {
		t.Run(name, func(t *testing.T) {
			_, addr := start(t, opts)
			c := dial(t, addr)
			do(c)
			c.expectClose(code)
		})
	}
	// Anything but HELLO or PING first is a protocol error.
	f("no hello", Options{}, protocol.CloseProtocolError, func(c *client) {
		c.sendMsg(&protocol.Subscribe{Room: "r"}, 1, 0)
	})
	// A pre-auth frame above PreAuthMaxFrame is refused from its length prefix alone.
	f("pre-auth too large", Options{}, protocol.CloseFrameTooLarge, func(c *client) {
		c.send(protocol.AppendHeader(nil, protocol.Header{Op: protocol.OpHello}, protocol.PreAuthMaxFrame))
	})
	// A foreign version byte is refused.
	f("version", Options{}, protocol.CloseUnsupportedVersion, func(c *client) {
		c.send(protocol.AppendEmpty(nil, protocol.OpPing, 1)[:4])
		c.send([]byte{9, byte(protocol.OpPing), 0, 0, 0, 0, 0, 1})
	})
	// Silence before HELLO hits the auth deadline.
	f("auth timeout", Options{AuthTimeout: 50 * time.Millisecond}, protocol.CloseAuthTimeout, func(*client) {})
	// Silence after AUTH_OK hits 1.5 x heartbeat.
	f("heartbeat timeout", Options{Heartbeat: 60 * time.Millisecond}, protocol.CloseHeartbeatTimeout, func(c *client) {
		c.hello("bob")
	})
	// A HELLO after AUTH_OK is a protocol error.
	f("second hello", Options{}, protocol.CloseProtocolError, func(c *client) {
		c.hello("carol")
		c.sendMsg(&protocol.Hello{Token: "carol"}, 2, 0)
	})
}

func TestCloseServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	var cs []*client
	for i := range 3 {
		c := dial(t, ln.Addr().String())
		if i > 0 {
			c.hello("u")
		}
		cs = append(cs, c)
	}
	waitFor(t, "three connections", func() bool { return s.Stats() == Stats{Connections: 3, Authenticated: 2} })
	s.Close()
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v, want ErrServerClosed", err)
	}
	for _, c := range cs {
		c.expectClose(protocol.CloseGoingAway)
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("stats after Close: %+v", st)
	}
	if err := s.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close returned %v", err)
	}
}
