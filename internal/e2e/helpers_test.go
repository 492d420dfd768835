package e2e

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/control"
)

const testSecret = "e2e-secret-for-tests"

// gateway is a running gateway with its control port.
type gateway struct {
	t    *testing.T
	srv  *server.Server
	port *control.Port
}

// startGateway starts the gateway and its control port on loopback ports with
// test-friendly timings and every per-source limit off; mutate and mutateControl (either
// may be nil) adjust their options first. If mutate replaces the Handler (the port), the
// gateway runs without a control port and the result's port is nil. Everything started
// is closed when the test ends.
func startGateway(t *testing.T, mutate func(o *server.Options), mutateControl func(o *control.Options)) *gateway {
	t.Helper()
	co := control.Options{Addr: "127.0.0.1:0", Secret: testSecret, Logger: testkit.Logger(), AuthTimeout: 2 * time.Second}
	if mutateControl != nil {
		mutateControl(&co)
	}
	p, err := control.New(co)
	if err != nil {
		t.Fatalf("control.New: %v", err)
	}
	so := server.Options{
		Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: testAuth, Handler: p, Logger: testkit.Logger(),
		Heartbeat: 2 * time.Second, Tick: 5 * time.Millisecond, AuthTimeout: 2 * time.Second,
		MaxConnsPerIP: -1, ConnectRate: -1, SourceConnectRate: -1, FlapThreshold: -1,
	}
	if mutate != nil {
		mutate(&so)
	}
	srv, err := server.New(so)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		t.Fatalf("start the gateway: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	if so.Handler != p { // the test replaced the control port: the gateway runs alone
		return &gateway{t: t, srv: srv}
	}
	if err := p.Start(srv); err != nil {
		t.Fatalf("start the control port: %v", err)
	}
	t.Cleanup(func() { p.Close() }) // runs first: the port, then the gateway
	return &gateway{t: t, srv: srv, port: p}
}

// testAuth accepts "user" or "user#anything" as a token for user; the suffix lets one
// user log in with distinct tokens from several devices.
var testAuth = server.AuthenticatorFunc(func(_ context.Context, req server.AuthRequest) (server.Identity, error) {
	uid, _, _ := strings.Cut(req.Token, "#")
	return server.Identity{UserID: uid}, nil
})

// service dials a service with the test secret; mutate adjusts the options.
func (g *gateway) service(mutate func(o *service.Options)) *service.Service {
	g.t.Helper()
	o := service.Options{Secret: testSecret, Name: g.t.Name(), Logger: testkit.Logger(), RequestTimeout: 5 * time.Second}
	if mutate != nil {
		mutate(&o)
	}
	s, err := service.Dial(testkit.Context(g.t, 5*time.Second), g.port.Addr().String(), o)
	if err != nil {
		g.t.Fatalf("service.Dial: %v", err)
	}
	g.t.Cleanup(func() { s.Close() })
	return s
}

// userName returns a user id unique to the test: a token is its user id, and the
// gateway quietly replaces a connection presenting the same token from the same device,
// so tests must not share one.
func userName(t *testing.T) string {
	return strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
}

// dial connects a client to addr, as userName(t) unless o has a token, and closes it
// when the test ends.
func dial(t *testing.T, addr string, o client.Options) *client.Client {
	t.Helper()
	if o.Token == "" && o.TokenFunc == nil {
		o.Token = userName(t)
	}
	c, err := client.Dial(testkit.Context(t, waitTimeout), addr, o)
	if err != nil {
		t.Fatalf("client.Dial(%s): %v", o.Token, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// client connects a client for user on device and waits until the control port has
// seen it (OnConnect ran), so that pushes and presence see it.
func (g *gateway) client(user, device string) *client.Client {
	g.t.Helper()
	c := dial(g.t, g.srv.Addr().String(), client.Options{
		Token: user + "#" + device, DeviceID: device, Platform: "test", NoReconnect: true,
	})
	id := c.ConnID()
	testkit.WaitFor(g.t, "connection "+strconv.FormatUint(id, 10)+" ready", func() bool {
		for _, cc := range g.srv.UserConns(user) {
			if cc.ID() == id {
				return true
			}
		}
		return false
	})
	return c
}

// metric returns the value of the control port's series named exactly name (with
// labels), or -1 when absent.
func (g *gateway) metric(name string) float64 {
	g.t.Helper()
	return testkit.Metric(g.t, g.port.WriteMetrics, name)
}

// serverMetric is metric for the gateway's own series.
func (g *gateway) serverMetric(name string) float64 {
	g.t.Helper()
	return testkit.Metric(g.t, g.srv.WriteMetrics, name)
}

// waitMetric polls until metric name reaches at least want.
func (g *gateway) waitMetric(name string, want float64) {
	g.t.Helper()
	testkit.WaitFor(g.t, name+" >= "+strconv.FormatFloat(want, 'g', -1, 64), func() bool { return g.metric(name) >= want })
}

// recv receives one push from ch or fails the test.
func recv(t *testing.T, ch <-chan client.Push) client.Push {
	t.Helper()
	return testkit.Recv(t, ch, waitTimeout)
}

// nextPush returns the next push a client received.
func nextPush(t *testing.T, c *client.Client) client.Push {
	t.Helper()
	return recv(t, c.Pushes())
}

// closeCode matches a *client.CloseError with code.
func closeCode(code protocol.CloseCode) func(error) bool {
	return func(err error) bool {
		var ce *client.CloseError
		return errors.As(err, &ce) && ce.Code == code
	}
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

// raw opens a control connection that speaks frames by hand.
func (g *gateway) raw() *testkit.ControlConn {
	g.t.Helper()
	return testkit.DialControl(g.t, g.port.Addr().String())
}

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
