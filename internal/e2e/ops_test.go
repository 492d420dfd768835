package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server/control"
)

// JOIN and LEAVE by user and by connection, seen through presence and room pushes.
func TestJoinLeavePresence(t *testing.T) {
	g := startGateway(t, nil, nil)
	a1, a2 := g.client("alice", "phone"), g.client("alice", "laptop")
	b := g.client("bob", "phone")
	svc := g.service(nil)
	ctx := context.Background()

	res, err := svc.JoinUsers(ctx, "lobby", "alice", "ghost")
	if err != nil || res.Conns != 2 || res.Missing != 1 {
		t.Fatalf("JoinUsers = %+v, %v; want 2 conns, 1 missing", res, err)
	}
	if res, err = svc.JoinConns(ctx, "lobby", b.ConnID()); err != nil || res.Conns != 1 {
		t.Fatalf("JoinConns = %+v, %v", res, err)
	}
	pr, err := svc.Presence(ctx, []string{"alice", "ghost"}, []string{"lobby", "nowhere"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(pr.Users["alice"]); n != 2 {
		t.Fatalf("alice has %d connections in presence, want 2: %+v", n, pr.Users)
	}
	devices := map[string]bool{}
	for _, ci := range pr.Users["alice"] {
		devices[ci.Device] = true
		if ci.Platform != "test" || ci.Addr == "" || len(ci.Rooms) != 1 || ci.Rooms[0] != "lobby" ||
			(ci.Conn != a1.ConnID() && ci.Conn != a2.ConnID()) {
			t.Fatalf("presence entry %+v", ci)
		}
	}
	if !devices["phone"] || !devices["laptop"] {
		t.Fatalf("alice's devices %v", devices)
	}
	if l, ok := pr.Users["ghost"]; !ok || len(l) != 0 {
		t.Fatalf("ghost in presence = %v, %v; want an empty list", l, ok)
	}
	if pr.Rooms["lobby"] != 3 || pr.Rooms["nowhere"] != 0 {
		t.Fatalf("room sizes %v", pr.Rooms)
	}
	if pr.Totals.Users != 2 || pr.Totals.Authenticated != 3 || pr.Totals.Rooms != 1 {
		t.Fatalf("totals %+v", pr.Totals)
	}

	if res, err := svc.PushRoom(ctx, "lobby", []byte("hi")); err != nil || res.Delivered != 3 {
		t.Fatalf("PushRoom = %+v, %v", res, err)
	}
	if res, err = svc.LeaveConns(ctx, "lobby", a2.ConnID()); err != nil || res.Conns != 1 {
		t.Fatalf("LeaveConns = %+v, %v", res, err)
	}
	if res, err = svc.LeaveUsers(ctx, "lobby", "bob"); err != nil || res.Conns != 1 {
		t.Fatalf("LeaveUsers = %+v, %v", res, err)
	}
	if pr, _ := svc.Presence(ctx, nil, []string{"lobby"}); pr.Rooms["lobby"] != 1 {
		t.Fatalf("lobby has %d members after leaving, want 1", pr.Rooms["lobby"])
	}

	_, err = svc.JoinUsers(ctx, "lobby", "ghost")
	serviceErr(t, err, protocol.ErrorNotFound)
	_, err = svc.JoinConns(ctx, "lobby", 987654)
	serviceErr(t, err, protocol.ErrorNotFound)
	_, err = svc.JoinUsers(ctx, "", "alice")
	serviceErr(t, err, protocol.ErrorBadRequest)
	_, err = svc.LeaveUsers(ctx, "lobby")
	serviceErr(t, err, protocol.ErrorBadRequest)
}

// STATS reports the gateway's and the control port's counts.
func TestStats(t *testing.T) {
	g := startGateway(t, nil, func(o *control.Options) { o.UplinkTimeout = 5 * time.Second })
	g.client("alice", "d1")
	held := make(chan *service.Uplink, 1)
	svc := g.service(func(o *service.Options) { o.OnUplink = func(u *service.Uplink) { held <- u } })
	if _, err := svc.Subscribe(context.Background(), service.Subscription{Routes: []string{"a", "b"}, Prefixes: []string{"p."}, Events: true}); err != nil {
		t.Fatal(err)
	}
	c := g.client("bob", "d1")
	done := make(chan error, 1)
	go func() { _, err := c.Send(testkit.Context(t, 5*time.Second), "a", nil); done <- err }()
	u := <-held
	st, err := svc.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Authenticated != 2 || st.Users != 2 || st.Services != 1 || st.Routes != 2 || st.Prefixes != 1 ||
		st.EventSubscribers != 1 || st.PendingUplinks != 1 || st.UplinksTotal != 1 || st.Draining {
		t.Fatalf("stats %+v", st)
	}
	_ = u.Reply(nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d, err := svc.Ping(context.Background()); err != nil || d <= 0 {
		t.Fatalf("Ping = %v, %v", d, err)
	}
}

// The gateway refuses subscriptions beyond the limit and malformed names.
func TestSubscribeLimits(t *testing.T) {
	g := startGateway(t, nil, func(o *control.Options) { o.MaxSubscriptions = 3 })
	svc := g.service(func(o *service.Options) { o.OnUplink = func(u *service.Uplink) { _ = u.Reply(nil) } })
	ctx := context.Background()
	if _, err := svc.Subscribe(ctx, service.Subscription{Routes: []string{"a", "b"}, Prefixes: []string{""}}); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Subscribe(ctx, service.Subscription{Routes: []string{"c"}})
	serviceErr(t, err, protocol.ErrorTooManyRooms)
	_, err = svc.Subscribe(ctx, service.Subscription{Routes: []string{""}})
	serviceErr(t, err, protocol.ErrorBadRequest)
	// The catch-all prefix "" serves any route.
	c := g.client("alice", "d1")
	if _, err := c.Send(testkit.Context(t, 5*time.Second), "anything.at.all", nil); err != nil {
		t.Fatal(err)
	}
	// Without an uplink handler the SDK refuses to subscribe to routes.
	bare := g.service(nil)
	_, err = bare.Subscribe(ctx, service.Subscription{Routes: []string{"x"}})
	serviceErr(t, err, protocol.ErrorBadRequest)
}
