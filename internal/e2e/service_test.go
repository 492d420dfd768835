package e2e

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
)

// The tests in this file run the service SDK against the real control port.

// After the connection is lost, the Service reconnects and subscribes again, so
// clients' uplinks reach it once more; requests made meanwhile wait for it.
func TestReconnectResubscribes(t *testing.T) {
	g := startGateway(t, nil, nil)
	d := &testkit.CutDialer{}
	var events sync.Map
	svc, err := service.Dial(context.Background(), g.port.Addr().String(), service.Options{
		Secret: testSecret, Reconnect: true, Dialer: d.Dial, BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		OnUplink: func(u *service.Uplink) { _ = u.Reply(append([]byte("re:"), u.Payload...)) },
		OnEvent:  func(ev service.Event) { events.Store(ev.User+"/"+ev.Type, true) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, err := svc.Subscribe(context.Background(), service.Subscription{Routes: []string{"echo"}, Events: true}); err != nil {
		t.Fatal(err)
	}
	first := svc.Session()
	d.Cut()
	testkit.WaitFor(t, "a new session", func() bool { return svc.Session() != first })
	st, err := svc.Stats(context.Background())
	if err != nil || st.Services != 1 || st.Routes != 1 || st.EventSubscribers != 1 {
		t.Fatalf("after reconnect: %+v, %v", st, err)
	}
	c, err := client.Dial(context.Background(), g.srv.Addr().String(), client.Options{Token: "alice", NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := c.Send(context.Background(), "echo", []byte("x")); err != nil || string(got) != "re:x" {
		t.Fatalf("uplink after reconnect = %q, %v", got, err)
	}
	testkit.WaitFor(t, "online event after reconnect", func() bool { _, ok := events.Load("alice/online"); return ok })
}

// Without Reconnect a lost connection ends the Service.
func TestLostConnectionEnds(t *testing.T) {
	g := startGateway(t, nil, nil)
	d := &testkit.CutDialer{}
	svc, err := service.Dial(context.Background(), g.port.Addr().String(), service.Options{Secret: testSecret, Dialer: d.Dial})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	d.Cut()
	select {
	case <-svc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Service did not end")
	}
	if !errors.Is(svc.Err(), service.ErrDisconnected) {
		t.Fatalf("Err = %v, want ErrDisconnected", svc.Err())
	}
	if _, err := svc.Stats(context.Background()); !errors.Is(err, service.ErrClosed) {
		t.Fatalf("Stats after the end = %v, want ErrClosed", err)
	}
}

// A service subscribed to acks gets an "ack" event when a client acknowledges QoS1
// messages (a delivery receipt), with the cumulative id; one subscribed to events only
// does not.
func TestAckEvents(t *testing.T) {
	g := startGateway(t, nil, nil)
	acks := make(chan service.Event, 16)
	others := make(chan service.Event, 16)
	svc, err := service.Dial(context.Background(), g.port.Addr().String(), service.Options{Secret: testSecret,
		OnEvent: func(ev service.Event) { acks <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	res, err := svc.Subscribe(context.Background(), service.Subscription{Acks: true})
	if err != nil || !res.Acks || res.Events {
		t.Fatalf("subscribe acks: %+v, %v", res, err)
	}
	plain, err := service.Dial(context.Background(), g.port.Addr().String(), service.Options{Secret: testSecret,
		OnEvent: func(ev service.Event) { others <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Subscribe(context.Background(), service.Subscription{Events: true}); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(context.Background(), g.srv.Addr().String(), client.Options{Token: "ack-alice", DeviceID: "phone", NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ev := testkit.Recv(t, others, 5*time.Second); ev.Type != "online" {
		t.Fatalf("events-only service got %+v first", ev)
	}
	for i := range 2 {
		if _, err := svc.PushUsers(context.Background(), []string{"ack-alice"}, []byte{byte(i)}, service.PushOptions{QoS1: true}); err != nil {
			t.Fatal(err)
		}
		testkit.Recv(t, c.Pushes(), 5*time.Second) // the client ACKs it
		ev := testkit.Recv(t, acks, 5*time.Second)
		if ev.Type != "ack" || ev.User != "ack-alice" || ev.Device != "phone" || ev.MsgID != uint64(i+1) || ev.Conn != c.ConnID() {
			t.Fatalf("ack event %d: %+v", i, ev)
		}
	}
	select {
	case ev := <-others:
		t.Fatalf("events-only service got %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
	if res, err := svc.Unsubscribe(context.Background(), service.Subscription{Acks: true}); err != nil || res.Acks {
		t.Fatalf("unsubscribe acks: %+v, %v", res, err)
	}
}
