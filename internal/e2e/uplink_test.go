package e2e

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server/control"
)

// echoService subscribes to routes and answers each uplink with prefix+payload.
func echoService(g *gateway, prefix string, routes, prefixes []string) *service.Service {
	g.t.Helper()
	svc := g.service(func(o *service.Options) {
		o.OnUplink = func(u *service.Uplink) { _ = u.Reply(append([]byte(prefix), u.Payload...)) }
	})
	if _, err := svc.Subscribe(context.Background(), service.Subscription{Routes: routes, Prefixes: prefixes}); err != nil {
		g.t.Fatalf("Subscribe: %v", err)
	}
	return svc
}

// A client's SEND reaches the subscribed service with the sender's identity, and the
// service's reply comes back to the client's request.
func TestUplinkRoundTrip(t *testing.T) {
	g := startGateway(t, nil, nil)
	got := make(chan *service.Uplink, 1)
	svc := g.service(func(o *service.Options) {
		o.OnUplink = func(u *service.Uplink) {
			got <- u
			_ = u.Reply(bytes.ToUpper(u.Payload))
		}
	})
	sub, err := svc.Subscribe(context.Background(), service.Subscription{Routes: []string{"echo"}})
	if err != nil || len(sub.Routes) != 1 || sub.Routes[0] != "echo" {
		t.Fatalf("Subscribe = %+v, %v", sub, err)
	}
	c := g.client("alice", "phone")
	reply, err := c.Send(testkit.Context(t, 5*time.Second), "echo", []byte("hello"))
	if err != nil || string(reply) != "HELLO" {
		t.Fatalf("Send = %q, %v; want HELLO", reply, err)
	}
	u := <-got
	if u.User != "alice" || u.Device != "phone" || u.Platform != "test" || u.Conn != c.ConnID() || u.Route != "echo" || u.NoReply {
		t.Fatalf("uplink = %+v", u.Uplink)
	}
	if err := u.Reply(nil); err != service.ErrAlreadyReplied {
		t.Fatalf("second Reply = %v, want ErrAlreadyReplied", err)
	}
	g.waitMetric(`tether_control_uplinks_total{result="replied"}`, 1)

	// A service's Fail reaches the client as ERROR with its code.
	svc2 := g.service(func(o *service.Options) {
		o.OnUplink = func(u *service.Uplink) { _ = u.Fail(protocol.ErrorDenied, "not allowed") }
	})
	if _, err := svc2.Subscribe(context.Background(), service.Subscription{Routes: []string{"deny"}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Send(testkit.Context(t, 5*time.Second), "deny", nil)
	clientErr(t, err, protocol.ErrorDenied)

	// Fire-and-forget SENDs reach the service flagged NoReply.
	if err := c.SendNoReply("echo", []byte("quiet")); err != nil {
		t.Fatal(err)
	}
	if u := <-got; !u.NoReply || string(u.Payload) != "quiet" {
		t.Fatalf("noreply uplink = %+v %q", u.Uplink, u.Payload)
	}
}

// An exact route wins over prefixes and the longest prefix wins; unsubscribing moves
// traffic on; no subscriber at all is NO_ROUTE.
func TestUplinkRouting(t *testing.T) {
	g := startGateway(t, nil, nil)
	echoService(g, "exact:", []string{"chat.send"}, nil)
	echoService(g, "chat:", nil, []string{"chat."})
	long := echoService(g, "room:", nil, []string{"chat.room."})
	c := g.client("alice", "d1")
	f := func(route, want string) {
		t.Helper()
		got, err := c.Send(testkit.Context(t, 5*time.Second), route, nil)
		if err != nil || string(got) != want {
			t.Fatalf("Send(%s) = %q, %v; want %q", route, got, err, want)
		}
	}
	f("chat.send", "exact:")   // exact beats prefixes
	f("chat.other", "chat:")   // prefix
	f("chat.room.42", "room:") // longest prefix
	f("chat.roomy", "chat:")   // "chat.room." does not match
	if _, err := long.Unsubscribe(context.Background(), service.Subscription{Prefixes: []string{"chat.room."}}); err != nil {
		t.Fatal(err)
	}
	f("chat.room.42", "chat:") // after unsubscribing, the shorter prefix serves it
	_, err := c.Send(testkit.Context(t, 5*time.Second), "nobody.home", nil)
	clientErr(t, err, protocol.ErrorNoRoute)
	g.waitMetric(`tether_control_uplinks_total{result="no_route"}`, 1)

	// The empty prefix matches every route, but a route is never empty: BAD_REQUEST,
	// and no service sees it.
	echoService(g, "any:", nil, []string{""})
	f("unclaimed.route", "any:")
	_, err = c.Send(testkit.Context(t, 5*time.Second), "", nil)
	clientErr(t, err, protocol.ErrorBadRequest)
}

// Uplinks are spread round-robin over the subscribers of a route.
func TestUplinkRoundRobin(t *testing.T) {
	g := startGateway(t, nil, nil)
	const services, sends = 5, 50
	for i := range services {
		echoService(g, fmt.Sprint(i), []string{"work"}, nil)
	}
	c := g.client("alice", "d1")
	count := map[string]int{}
	for range sends {
		got, err := c.Send(testkit.Context(t, 5*time.Second), "work", nil)
		if err != nil {
			t.Fatal(err)
		}
		count[string(got)]++
	}
	for i := range services {
		if n := count[fmt.Sprint(i)]; n != sends/services {
			t.Fatalf("service %d got %d uplinks, want %d (all: %v)", i, n, sends/services, count)
		}
	}
}

// When a service connection drops, its unanswered uplink is re-dispatched to another
// subscriber, and later uplinks go to the survivor.
func TestUplinkFailover(t *testing.T) {
	g := startGateway(t, nil, nil)
	held := make(chan *service.Uplink, 1)
	a := g.service(func(o *service.Options) {
		o.OnUplink = func(u *service.Uplink) { held <- u } // never answers
	})
	if _, err := a.Subscribe(context.Background(), service.Subscription{Routes: []string{"work"}}); err != nil {
		t.Fatal(err)
	}
	c := g.client("alice", "d1")
	type answer struct {
		reply []byte
		err   error
	}
	inflight := make(chan answer, 1)
	go func() {
		r, err := c.Send(testkit.Context(t, 10*time.Second), "work", []byte("first"))
		inflight <- answer{r, err}
	}()
	u := <-held
	if string(u.Payload) != "first" {
		t.Fatalf("a got %q", u.Payload)
	}
	echoService(g, "b:", []string{"work"}, nil)
	go a.Close() // Close waits for the held OnUplink, which has returned already
	ans := <-inflight
	if ans.err != nil || string(ans.reply) != "b:first" {
		t.Fatalf("in-flight uplink after failover = %q, %v; want b:first", ans.reply, ans.err)
	}
	if err := u.Reply([]byte("too late")); err == nil {
		t.Fatal("Reply on the dead connection succeeded")
	}
	for i := range 4 {
		got, err := c.Send(testkit.Context(t, 5*time.Second), "work", []byte(fmt.Sprint(i)))
		if err != nil || string(got) != "b:"+fmt.Sprint(i) {
			t.Fatalf("Send after failover = %q, %v", got, err)
		}
	}
	g.waitMetric("tether_control_uplinks_redispatched_total", 1)
}

// An uplink whose service dies with no other subscriber gets NO_ROUTE; one whose
// service does not answer gets TIMEOUT, and the late reply is dropped and counted.
func TestUplinkTimeoutAndLostService(t *testing.T) {
	g := startGateway(t, nil, func(o *control.Options) { o.UplinkTimeout = 200 * time.Millisecond })
	held := make(chan *service.Uplink, 4)
	svc := g.service(func(o *service.Options) {
		o.OnUplink = func(u *service.Uplink) { held <- u }
	})
	if _, err := svc.Subscribe(context.Background(), service.Subscription{Routes: []string{"slow"}}); err != nil {
		t.Fatal(err)
	}
	c := g.client("alice", "d1")
	start := time.Now()
	_, err := c.Send(testkit.Context(t, 5*time.Second), "slow", nil)
	clientErr(t, err, protocol.ErrorTimeout)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("TIMEOUT after %v, before the uplink timeout", d)
	}
	u := <-held
	if err := u.Reply([]byte("late")); err != nil {
		t.Fatal(err)
	}
	g.waitMetric("tether_control_replies_unknown_total", 1)
	g.waitMetric(`tether_control_uplinks_total{result="timeout"}`, 1)
	if n := g.metric("tether_control_uplinks_pending"); n != 0 {
		t.Fatalf("%v uplinks still pending", n)
	}

	// The client is fine afterwards: its connection and other routes keep working.
	echoService(g, "ok:", []string{"fast"}, nil)
	if got, err := c.Send(testkit.Context(t, 5*time.Second), "fast", nil); err != nil || string(got) != "ok:" {
		t.Fatalf("Send(fast) = %q, %v", got, err)
	}

	// The only subscriber drops with the uplink in flight: NO_ROUTE.
	errs := make(chan error, 1)
	go func() {
		_, err := c.Send(testkit.Context(t, 5*time.Second), "slow", nil)
		errs <- err
	}()
	<-held
	go svc.Close()
	clientErr(t, <-errs, protocol.ErrorNoRoute)
}

// Services subscribed to events learn of clients going online and offline, with the
// close code; a kick carries its code to the client.
func TestEventsAndKick(t *testing.T) {
	g := startGateway(t, nil, nil)
	var mu sync.Mutex
	var events []service.Event
	svc := g.service(func(o *service.Options) {
		o.OnEvent = func(ev service.Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}
	})
	if res, err := svc.Subscribe(context.Background(), service.Subscription{Events: true}); err != nil || !res.Events {
		t.Fatalf("Subscribe events = %+v, %v", res, err)
	}
	c := g.client("alice", "phone")
	id := c.ConnID()
	testkit.WaitFor(t, "online event", func() bool { mu.Lock(); defer mu.Unlock(); return len(events) == 1 })
	mu.Lock()
	if ev := events[0]; ev.Type != "online" || ev.User != "alice" || ev.Device != "phone" || ev.Conn != id || ev.Platform != "test" {
		t.Fatalf("online event = %+v", ev)
	}
	mu.Unlock()

	res, err := svc.KickConns(context.Background(), []uint64{id}, 0, "bye")
	if err != nil || res.Kicked != 1 {
		t.Fatalf("KickConns = %+v, %v", res, err)
	}
	testkit.WaitFor(t, "offline event", func() bool { mu.Lock(); defer mu.Unlock(); return len(events) == 2 })
	mu.Lock()
	if ev := events[1]; ev.Type != "offline" || ev.Conn != id || ev.Code != protocol.CloseKicked || ev.Reason != "KICKED" {
		t.Fatalf("offline event = %+v", ev)
	}
	mu.Unlock()
	testkit.WaitFor(t, "client closed", func() bool { return c.State().String() == "closed" })

	// Kicking by user, with a custom reconnect code; unknown users are NOT_FOUND.
	g.client("bob", "d1")
	g.client("bob", "d2")
	res, err = svc.KickUsers(context.Background(), []string{"bob", "ghost"}, protocol.CloseGoingAway, "maintenance")
	if err != nil || res.Kicked != 2 || res.Missing != 1 {
		t.Fatalf("KickUsers = %+v, %v", res, err)
	}
	_, err = svc.KickUsers(context.Background(), []string{"ghost"}, 0, "")
	serviceErr(t, err, protocol.ErrorNotFound)
	_, err = svc.KickUsers(context.Background(), []string{"bob"}, 4000, "")
	serviceErr(t, err, protocol.ErrorBadRequest)
	testkit.WaitFor(t, "bob's offline events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, ev := range events {
			if ev.User == "bob" && ev.Type == "offline" && ev.Code == protocol.CloseGoingAway {
				n++
			}
		}
		return n == 2
	})
}
