package server

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// testLogger is quiet unless TETHER_TEST_LOG is set.
func testLogger() *slog.Logger { return testkit.Logger() }

// startServer starts a gateway on a loopback port with test-friendly timings, applies
// mutate to the options first, and closes it when the test ends.
func startServer(t *testing.T, mutate func(o *Options)) *Server {
	t.Helper()
	o := Options{
		Addr:          "127.0.0.1:0",
		AdminAddr:     "-",
		Authenticator: testAuth,
		Logger:        testLogger(),
		Heartbeat:     2 * time.Second,
		Tick:          5 * time.Millisecond,
		AuthTimeout:   2 * time.Second,
		MaxConnsPerIP: -1,
		ConnectRate:   -1,
		// per-source limits off like the ones above; the tests of limits set them
		SourceConnectRate: -1, FlapThreshold: -1,
	}
	if mutate != nil {
		mutate(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testAuth accepts "user" or "user#anything" as a token for user; the suffix lets one
// user log in with distinct tokens from several devices.
var testAuth = AuthenticatorFunc(func(_ context.Context, req AuthRequest) (Identity, error) {
	uid, _, _ := strings.Cut(req.Token, "#")
	return Identity{UserID: uid}, nil
})

// rawConn is a test client speaking frames by hand.
type rawConn struct {
	*testkit.FrameConn
	t *testing.T
	c net.Conn
}

func dialRaw(t *testing.T, s *Server) *rawConn {
	t.Helper()
	fc := testkit.DialFrames(t, s.Addr().String())
	return &rawConn{FrameConn: fc, t: t, c: fc.Conn}
}

// write sends raw bytes.
func (r *rawConn) write(b []byte) {
	r.t.Helper()
	r.Write(b)
}

// send encodes and sends a message frame.
func (r *rawConn) send(m interface {
	AppendFrame([]byte, uint32, protocol.Flags) ([]byte, error)
}, seq uint32, flags protocol.Flags) {
	r.t.Helper()
	b, err := m.AppendFrame(nil, seq, flags)
	if err != nil {
		r.t.Fatalf("encode: %v", err)
	}
	r.write(b)
}

// next returns the next frame, or an error (io.EOF when the server closed) if none
// arrives within timeout.
func (r *rawConn) next(timeout time.Duration) (protocol.Frame, error) { return r.Next(timeout) }

// expect returns the next frame and fails unless it has opcode op.
func (r *rawConn) expect(op protocol.Opcode) protocol.Frame {
	r.t.Helper()
	f, err := r.next(5 * time.Second)
	if err != nil {
		r.t.Fatalf("waiting for %v: %v", op, err)
	}
	if f.Op != op {
		r.t.Fatalf("got %v (body %x), want %v", f.Op, f.Body, op)
	}
	return f
}

// hello authenticates with token and device and returns AUTH_OK.
func (r *rawConn) hello(token, device, platform string) protocol.AuthOK {
	r.t.Helper()
	r.send(&protocol.Hello{Token: token + "#" + device, DeviceID: device, Platform: platform, ClientVersion: "test/1"}, 1, 0)
	f := r.expect(protocol.OpAuthOK)
	var ok protocol.AuthOK
	if err := ok.Decode(f.Body); err != nil {
		r.t.Fatalf("AUTH_OK: %v", err)
	}
	return ok
}

// expectClosed reads until the server closes, requiring that the last frame before EOF
// is a CLOSE or AUTH_FAIL (per op) carrying code. Frames before it are skipped.
func (r *rawConn) expectClosed(op protocol.Opcode, code protocol.CloseCode) {
	r.t.Helper()
	var last *protocol.Frame
	for {
		f, err := r.next(10 * time.Second)
		if err != nil {
			if !testkit.IsClosed(err) {
				r.t.Fatalf("waiting for close %v: %v", code, err)
			}
			break
		}
		last = &f
	}
	if last == nil || last.Op != op {
		r.t.Fatalf("connection closed without %v %v (last frame %+v)", op, code, last)
	}
	var got protocol.CloseCode
	switch op {
	case protocol.OpClose:
		var m protocol.Close
		if err := m.Decode(last.Body); err != nil {
			r.t.Fatal(err)
		}
		got = m.Code
	case protocol.OpAuthFail:
		var m protocol.AuthFail
		if err := m.Decode(last.Body); err != nil {
			r.t.Fatal(err)
		}
		got = m.Code
	}
	if got != code {
		r.t.Fatalf("closed with %v, want %v", got, code)
	}
}

func isConnReset(err error) bool { return testkit.IsClosed(err) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, what, cond)
}

// ctxTimeout returns a context that ends after d.
func ctxTimeout(t *testing.T, d time.Duration) context.Context { return testkit.Context(t, d) }
