package webhook

import (
	"errors"
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

const ctlSecret = "control-secret-for-tests"

// gateway is a running gateway whose control port has the Sender as Observer.
type gateway struct {
	srv   *server.Server
	port  *control.Port
	hooks *Sender
}

func startGateway(t *testing.T, hooks *Sender) *gateway {
	t.Helper()
	p, err := control.New(control.Options{Addr: "127.0.0.1:0", Secret: ctlSecret, Logger: testkit.Logger(), Observer: hooks})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Addr: "127.0.0.1:0", AdminAddr: "-", Handler: p, Logger: testkit.Logger(),
		Authenticator: server.InsecureAuthenticator{}, Tick: 5 * time.Millisecond, Heartbeat: 2 * time.Second,
		MaxConnsPerIP: -1, ConnectRate: -1, SourceConnectRate: -1, FlapThreshold: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(srv); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); srv.Close() })
	return &gateway{srv: srv, port: p, hooks: hooks}
}

func (g *gateway) dial(t *testing.T, token, device string) *client.Client {
	t.Helper()
	c, err := client.Dial(testkit.Context(t, 10*time.Second), g.srv.Addr().String(),
		client.Options{Token: token, DeviceID: device, NoReconnect: true, Logger: testkit.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A kick posts the offline event with its close code and reason, after the online.
func TestGatewayEvents(t *testing.T) {
	rc := newReceiver(t, nil)
	g := startGateway(t, newSender(t, rc.srv.URL, nil, nil))
	id := g.dial(t, "alice", "d1").ConnID()
	on := rc.waitRequests(1)[0]
	if on.verify != nil || on.ev.Type != TypeOnline || on.ev.User != "alice" || on.ev.Device != "d1" ||
		on.ev.Conn != id || on.ev.Platform != client.DefaultPlatform {
		t.Fatalf("online: %s (verify %v)", on.body, on.verify)
	}
	if n := g.srv.KickUser("alice", protocol.CloseKicked, "bye"); n != 1 {
		t.Fatalf("kicked %d", n)
	}
	off := rc.waitRequests(2)[1]
	if off.verify != nil || off.ev.Type != TypeOffline || off.ev.Conn != id || off.ev.Code != 3502 || off.ev.Reason != "KICKED" {
		t.Fatalf("offline: %s (verify %v)", off.body, off.verify)
	}
	if off.ev.ID == on.ev.ID {
		t.Errorf("two events share the id %s", on.ev.ID)
	}
}

// A SEND on a webhook route is posted; with no service subscribed the client gets an
// empty SEND_REPLY, with one it gets the service's REPLY; other routes are unchanged.
func TestGatewayUplinkRoute(t *testing.T) {
	rc := newReceiver(t, nil)
	g := startGateway(t, newSender(t, rc.srv.URL, nil, func(o *Options) { o.Events = false; o.Routes = []string{"notify", "chat"} }))
	c := g.dial(t, "alice", "d1")
	ctx := testkit.Context(t, 10*time.Second)
	reply, err := c.Send(ctx, "notify", []byte("wake bob"))
	if err != nil || len(reply) != 0 {
		t.Fatalf("Send on a webhook route without a service: %q, %v; want an empty reply", reply, err)
	}
	up := rc.waitRequests(1)[0]
	if up.verify != nil || up.ev.Type != TypeUplink || up.ev.Route != "notify" || string(up.ev.Payload) != "wake bob" ||
		up.ev.User != "alice" || up.ev.Device != "d1" || up.ev.Conn != c.ConnID() ||
		!strings.Contains(string(up.body), `"payload_b64":"d2FrZSBib2I="`) {
		t.Fatalf("uplink: %s (verify %v)", up.body, up.verify)
	}
	var se *client.ServerError
	if _, err := c.Send(ctx, "other", []byte("x")); !errors.As(err, &se) || se.Code != protocol.ErrorNoRoute {
		t.Fatalf("Send on a route without webhook nor service: %v, want NO_ROUTE", err)
	}

	svc, err := service.Dial(ctx, g.port.Addr().String(), service.Options{Secret: ctlSecret,
		OnUplink: func(u *service.Uplink) { _ = u.Reply([]byte("stored")) }})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, err := svc.Subscribe(ctx, service.Subscription{Routes: []string{"chat"}}); err != nil {
		t.Fatal(err)
	}
	if reply, err := c.Send(ctx, "chat", []byte("hi")); err != nil || string(reply) != "stored" {
		t.Fatalf("Send on a webhook route with a service: %q, %v; want the service's reply", reply, err)
	}
	if r := rc.waitRequests(2)[1]; r.ev.Route != "chat" || string(r.ev.Payload) != "hi" {
		t.Fatalf("uplink: %s", r.body)
	}
	if n := len(rc.requests()); n != 2 {
		t.Errorf("%d requests: the route without a webhook must not be posted", n)
	}
}

// While the receiver hangs, events fill the queue and are dropped (counted), and the
// gateway goes on serving: logins, pushes and heartbeats are not held up.
func TestGatewayServesWhileReceiverHangs(t *testing.T) {
	rc := newHangingReceiver(t)
	hooks := newSender(t, rc.srv.URL, nil, func(o *Options) { o.QueueSize = 4 })
	g := startGateway(t, hooks)
	alice := g.dial(t, "alice", "d1")
	testkit.Recv(t, rc.arrived, 10*time.Second) // the one worker is stuck on alice's online
	for range 10 {
		c := g.dial(t, "bob", "")
		c.Close()
	}
	waitMetric(t, hooks, mDropped, 20-4) // 20 events, 4 queued
	if n, err := g.srv.PushUser("alice", []byte("still here")); err != nil || n != 1 {
		t.Fatalf("PushUser: %d, %v", n, err)
	}
	p := testkit.Recv(t, alice.Pushes(), 10*time.Second)
	if string(p.Payload) != "still here" {
		t.Fatalf("push %q", p.Payload)
	}
	if _, err := alice.Ping(testkit.Context(t, 10*time.Second)); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if q := metric(t, hooks, "tether_webhook_queue_length"); q != 4 {
		t.Errorf("queue length %v, want 4", q)
	}
	rc.release()
	waitMetric(t, hooks, mOK, 5)
	if err := hooks.Close(testkit.Context(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}
