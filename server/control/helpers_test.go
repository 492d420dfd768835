package control

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

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

// metric returns the value of the series named exactly name (with labels) in the
// port's metrics, or -1 when absent.
func (g *gateway) metric(name string) float64 {
	g.t.Helper()
	return testkit.Metric(g.t, g.port.WriteMetrics, name)
}

// waitMetric polls until metric name reaches at least want.
func (g *gateway) waitMetric(name string, want float64) {
	g.t.Helper()
	waitFor(g.t, name+" >= "+strconv.FormatFloat(want, 'g', -1, 64), func() bool { return g.metric(name) >= want })
}

// rawCtl is a control connection speaking frames by hand (testkit.ControlConn), with
// the test secret.
type rawCtl struct {
	*testkit.ControlConn
	t *testing.T
	c net.Conn
}

func (g *gateway) raw() *rawCtl {
	g.t.Helper()
	cc := testkit.DialControl(g.t, g.port.Addr().String())
	return &rawCtl{ControlConn: cc, t: g.t, c: cc.Conn}
}

func (r *rawCtl) write(b []byte) {
	r.t.Helper()
	r.Write(b)
}

func (r *rawCtl) send(op protocol.Opcode, seq uint32, hdr any, payload []byte) {
	r.t.Helper()
	r.Send(op, seq, hdr, payload)
}

// auth authenticates with the test secret.
func (r *rawCtl) auth() {
	r.t.Helper()
	r.Auth(testSecret)
}

func (r *rawCtl) expect(op protocol.Opcode, seq uint32) protocol.Frame {
	r.t.Helper()
	return r.Expect(op, seq)
}

func (r *rawCtl) expectFail(seq uint32, code protocol.ErrorCode) wire.Fail {
	r.t.Helper()
	return r.ExpectFail(seq, code)
}

func (r *rawCtl) expectClosed(code protocol.CloseCode) {
	r.t.Helper()
	r.ExpectClosed(code)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, what, cond)
}

// ctxTimeout returns a context that ends after d.
func ctxTimeout(t *testing.T, d time.Duration) context.Context { return testkit.Context(t, d) }
