package control

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

const testSecret = "s3cret-for-tests"

// testLogger is quiet unless TETHER_TEST_LOG is set.
func testLogger() *slog.Logger { return testkit.Logger() }

// gateway is a running gateway with its control port.
type gateway struct {
	t    *testing.T
	srv  *server.Server
	port *Port
}

// startGateway starts a gateway and its control port on loopback ports with
// test-friendly timings; mutate adjusts the control options first. Both are closed when
// the test ends.
func startGateway(t *testing.T, mutate func(o *Options)) *gateway {
	t.Helper()
	o := Options{Addr: "127.0.0.1:0", Secret: testSecret, Logger: testLogger(), AuthTimeout: 2 * time.Second}
	if mutate != nil {
		mutate(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatalf("control.New: %v", err)
	}
	srv, err := server.New(server.Options{
		Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: testAuth, Handler: p, Logger: testLogger(),
		Tick: 5 * time.Millisecond, Heartbeat: 2 * time.Second, MaxConnsPerIP: -1, ConnectRate: -1,
		// Room for a whole test stream: a loaded machine may stall a client past the
		// default 256 messages, and the stream tests are about no loss within the window.
		ResumeBuffer: 4096,
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("server.Start: %v", err)
	}
	if err := p.Start(srv); err != nil {
		srv.Close()
		t.Fatalf("control Start: %v", err)
	}
	t.Cleanup(func() {
		p.Close()
		srv.Close()
	})
	return &gateway{t: t, srv: srv, port: p}
}

// testAuth accepts "user" or "user#anything" as a token for user.
var testAuth = server.AuthenticatorFunc(func(_ context.Context, req server.AuthRequest) (server.Identity, error) {
	uid, _, _ := strings.Cut(req.Token, "#")
	return server.Identity{UserID: uid}, nil
})

// service dials a service with the test secret; mutate adjusts the options.
func (g *gateway) service(mutate func(o *service.Options)) *service.Service {
	g.t.Helper()
	o := service.Options{Secret: testSecret, Name: g.t.Name(), Logger: testLogger(), RequestTimeout: 5 * time.Second}
	if mutate != nil {
		mutate(&o)
	}
	s, err := service.Dial(ctxTimeout(g.t, 5*time.Second), g.port.Addr().String(), o)
	if err != nil {
		g.t.Fatalf("service.Dial: %v", err)
	}
	g.t.Cleanup(func() { s.Close() })
	return s
}

// client connects a client for user on device and waits until the control port has
// seen it (OnConnect ran), so that pushes and presence see it.
func (g *gateway) client(user, device string) *client.Client {
	g.t.Helper()
	c, err := client.Dial(ctxTimeout(g.t, 5*time.Second), g.srv.Addr().String(), client.Options{
		Token: user + "#" + device, DeviceID: device, Platform: "test", NoReconnect: true,
	})
	if err != nil {
		g.t.Fatalf("client.Dial(%s/%s): %v", user, device, err)
	}
	g.t.Cleanup(func() { c.Close() })
	id := c.ConnID()
	waitFor(g.t, "connection "+strconv.FormatUint(id, 10)+" ready", func() bool {
		for _, cc := range g.srv.UserConns(user) {
			if cc.ID() == id {
				return true
			}
		}
		return false
	})
	return c
}

// metric returns the value of the series named exactly name (with labels) in the
// port's metrics, or -1 when absent.
func (g *gateway) metric(name string) float64 {
	g.t.Helper()
	var buf strings.Builder
	g.port.WriteMetrics(&buf)
	return testkit.Metric(g.t, buf.String(), name)
}

// waitMetric polls until metric name reaches at least want.
func (g *gateway) waitMetric(name string, want float64) {
	g.t.Helper()
	waitFor(g.t, name+" >= "+strconv.FormatFloat(want, 'g', -1, 64), func() bool { return g.metric(name) >= want })
}

// nextPush returns the next push a client received.
func nextPush(t *testing.T, c *client.Client) client.Push {
	t.Helper()
	select {
	case p, ok := <-c.Pushes():
		if !ok {
			t.Fatal("client closed while waiting for a push")
		}
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no push within 5s")
	}
	return client.Push{}
}

// noPush fails if the client has a push queued.
func noPush(t *testing.T, c *client.Client) {
	t.Helper()
	select {
	case p := <-c.Pushes():
		t.Fatalf("unexpected push %q", p.Payload)
	default:
	}
}

// rawCtl is a control connection speaking frames by hand.
type rawCtl struct {
	*testkit.FrameConn
	t *testing.T
	c net.Conn
}

func (g *gateway) raw() *rawCtl {
	g.t.Helper()
	fc := testkit.DialFrames(g.t, g.port.Addr().String())
	return &rawCtl{FrameConn: fc, t: g.t, c: fc.Conn}
}

func (r *rawCtl) write(b []byte) {
	r.t.Helper()
	r.Write(b)
}

// send encodes and sends a control frame.
func (r *rawCtl) send(op protocol.Opcode, seq uint32, hdr any, payload []byte) {
	r.t.Helper()
	b, err := wire.AppendFrame(nil, op, seq, hdr, payload)
	if err != nil {
		r.t.Fatalf("encode: %v", err)
	}
	r.write(b)
}

// auth authenticates with the test secret.
func (r *rawCtl) auth() {
	r.t.Helper()
	r.send(OpAuth, 1, &wire.Auth{Secret: testSecret, Name: "raw"}, nil)
	r.expect(OpResult, 1)
}

// next returns the next frame, or the read error.
func (r *rawCtl) next(timeout time.Duration) (protocol.Frame, error) { return r.Next(timeout) }

func (r *rawCtl) expect(op protocol.Opcode, seq uint32) protocol.Frame {
	r.t.Helper()
	f, err := r.next(5 * time.Second)
	if err != nil {
		r.t.Fatalf("waiting for %s: %v", wire.OpName(op), err)
	}
	if f.Op != op || f.Seq != seq {
		r.t.Fatalf("got %s seq %d (body %q), want %s seq %d", wire.OpName(f.Op), f.Seq, f.Body, wire.OpName(op), seq)
	}
	return f
}

// expectFail reads a FAIL for seq and checks its code.
func (r *rawCtl) expectFail(seq uint32, code protocol.ErrorCode) wire.Fail {
	r.t.Helper()
	f := r.expect(OpFail, seq)
	var fl wire.Fail
	if _, err := wire.DecodeBody(f.Body, &fl); err != nil {
		r.t.Fatalf("FAIL body: %v", err)
	}
	if fl.Code != code {
		r.t.Fatalf("FAIL %v (%s), want %v", fl.Code, fl.Message, code)
	}
	return fl
}

// expectClosed reads until the gateway closes, requiring a last CLOSE with code.
func (r *rawCtl) expectClosed(code protocol.CloseCode) {
	r.t.Helper()
	var last *protocol.Frame
	for {
		f, err := r.next(5 * time.Second)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("connection not closed in time (want CLOSE %v)", code)
			}
			break
		}
		last = &f
	}
	if last == nil || last.Op != protocol.OpClose {
		r.t.Fatalf("closed without CLOSE %v (last frame %+v)", code, last)
	}
	var m protocol.Close
	if err := m.Decode(last.Body); err != nil {
		r.t.Fatal(err)
	}
	if m.Code != code {
		r.t.Fatalf("closed with %v (%s), want %v", m.Code, m.Reason, code)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, what, cond)
}

// ctxTimeout returns a context that ends after d.
func ctxTimeout(t *testing.T, d time.Duration) context.Context { return testkit.Context(t, d) }

// serviceErr asserts that err is a *service.Error with code.
func serviceErr(t *testing.T, err error, code protocol.ErrorCode) *service.Error {
	t.Helper()
	var e *service.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error %v, want service.Error %v", err, code)
	}
	return e
}

// clientErr asserts that err is a *client.ServerError with code.
func clientErr(t *testing.T, err error, code protocol.ErrorCode) {
	t.Helper()
	var e *client.ServerError
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("client error %v, want ERROR %v", err, code)
	}
}

// isCode reports whether err is a client ERROR with code.
func isCode(err error, code protocol.ErrorCode) bool {
	var e *client.ServerError
	return errors.As(err, &e) && e.Code == code
}
