package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
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
// test-friendly timings and every per-source limit off; mutate adjusts the gateway's
// options first. Both are closed when the test ends.
func startGateway(t *testing.T, mutate func(o *server.Options)) *gateway {
	t.Helper()
	p, err := control.New(control.Options{Addr: "127.0.0.1:0", Secret: testSecret, Logger: testkit.Logger(), AuthTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("control.New: %v", err)
	}
	o := server.Options{
		Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: testAuth, Handler: p, Logger: testkit.Logger(),
		Heartbeat: 2 * time.Second, Tick: 5 * time.Millisecond, AuthTimeout: 2 * time.Second,
		MaxConnsPerIP: -1, ConnectRate: -1, SourceConnectRate: -1, FlapThreshold: -1,
	}
	if mutate != nil {
		mutate(&o)
	}
	srv, err := server.New(o)
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

// testAuth accepts "user" or "user#anything" as a token for user; the suffix lets one
// user log in with distinct tokens from several devices.
var testAuth = server.AuthenticatorFunc(func(_ context.Context, req server.AuthRequest) (server.Identity, error) {
	uid, _, _ := strings.Cut(req.Token, "#")
	return server.Identity{UserID: uid}, nil
})

// serverMetric returns the value of the gateway's series named exactly name (with
// labels), or -1 when absent.
func (g *gateway) serverMetric(name string) float64 {
	g.t.Helper()
	var buf strings.Builder
	g.srv.WriteMetrics(&buf)
	return testkit.Metric(g.t, buf.String(), name)
}
