package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// testLogger is quiet unless TETHER_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("TETHER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

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
	t   *testing.T
	c   net.Conn
	dec protocol.Decoder
	buf []protocol.Frame
	err error
}

func dialRaw(t *testing.T, s *Server) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, dec: protocol.Decoder{MaxFrame: protocol.MaxFrameLimit}}
}

// write sends raw bytes.
func (r *rawConn) write(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
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
func (r *rawConn) next(timeout time.Duration) (protocol.Frame, error) {
	deadline := time.Now().Add(timeout)
	p := make([]byte, 64<<10)
	for len(r.buf) == 0 {
		if r.err != nil {
			return protocol.Frame{}, r.err
		}
		r.c.SetReadDeadline(deadline)
		n, err := r.c.Read(p)
		if n > 0 {
			if derr := r.dec.Decode(p[:n], func(f protocol.Frame) error {
				r.buf = append(r.buf, f.Clone())
				return nil
			}); derr != nil {
				r.err = derr
			}
		}
		if err != nil && len(r.buf) == 0 {
			r.err = err
			return protocol.Frame{}, err
		}
	}
	f := r.buf[0]
	r.buf = r.buf[1:]
	return f, nil
}

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
func (r *rawConn) expectClosed(op protocol.Opcode, code protocol.Code) {
	r.t.Helper()
	var last *protocol.Frame
	for {
		f, err := r.next(10 * time.Second)
		if err != nil {
			if !errors.Is(err, io.EOF) && !isConnReset(err) {
				r.t.Fatalf("waiting for close %v: %v", code, err)
			}
			break
		}
		last = &f
	}
	if last == nil || last.Op != op {
		r.t.Fatalf("connection closed without %v %v (last frame %+v)", op, code, last)
	}
	var got protocol.Code
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

func isConnReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ctxTimeout returns a context that ends after d.
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
