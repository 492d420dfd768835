package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server/control"
)

// The tests in this file check that clients are served while the control port closes,
// or closes a misbehaving service.

// Closing the port answers the uplinks waiting for a reply and closes the services
// with GOING_AWAY.
func TestCloseWithPendingUplinks(t *testing.T) {
	g := startGateway(t, nil, nil)
	held := make(chan *service.Uplink, 1)
	svc := g.service(func(o *service.Options) { o.OnUplink = func(u *service.Uplink) { held <- u } })
	if _, err := svc.Subscribe(context.Background(), service.Subscription{Routes: []string{"r"}}); err != nil {
		t.Fatal(err)
	}
	c := g.client("alice", "d1")
	errs := make(chan error, 1)
	go func() { _, err := c.Send(testkit.Context(t, 5*time.Second), "r", nil); errs <- err }()
	<-held
	g.port.Close()
	clientErr(t, <-errs, protocol.ErrorNoRoute)
	<-svc.Done()
	var ce *service.CloseError
	if !errors.As(svc.Err(), &ce) || ce.Code != protocol.CloseGoingAway {
		t.Fatalf("service ended with %v, want CLOSE GOING_AWAY", svc.Err())
	}
	_, err := c.Send(testkit.Context(t, 5*time.Second), "r", nil)
	clientErr(t, err, protocol.ErrorNoRoute)
}

// A frame above the control max frame closes that connection with FRAME_TOO_LARGE, as
// soon as its length prefix arrives; other services and clients carry on.
func TestOversizedFrame(t *testing.T) {
	g := startGateway(t, nil, func(o *control.Options) { o.MaxFrame = 128 << 10 })
	other := echoService(g, "ok:", []string{"echo"}, nil)
	c := g.client("alice", "d1")
	r := g.raw()
	r.Auth(testSecret)
	// The prefix alone: the gateway must not wait for the megabyte behind it.
	r.Write(append(binary.BigEndian.AppendUint32(nil, 1<<20), 1, byte(wire.OpPush), 0, 0, 0, 0, 0, 2))
	r.ExpectClosed(protocol.CloseFrameTooLarge)
	g.waitMetric(`tether_control_closes_total{code="3505",reason="FRAME_TOO_LARGE"}`, 1)

	// The SDK refuses to send an oversized request instead of getting closed.
	_, err := other.Broadcast(context.Background(), make([]byte, 200<<10))
	if !errors.Is(err, service.ErrTooLarge) {
		t.Fatalf("oversized Broadcast = %v, want ErrTooLarge", err)
	}
	if got, err := c.Send(testkit.Context(t, 5*time.Second), "echo", []byte("x")); err != nil || string(got) != "ok:x" {
		t.Fatalf("client after the oversized frame: %q, %v", got, err)
	}
	// A push larger than the clients' max frame fails without hurting anyone.
	_, err = other.Broadcast(context.Background(), make([]byte, 64<<10))
	serviceErr(t, err, protocol.ErrorBadRequest)
	if res, err := other.Broadcast(context.Background(), []byte("fine")); err != nil || res.Delivered != 1 {
		t.Fatalf("Broadcast after: %+v, %v", res, err)
	}
}

// stuckService authenticates a raw control connection with a tiny receive buffer,
// sends what subscribe asks for, and then never reads.
func stuckService(g *gateway, sub *wire.Subscription) *testkit.ControlConn {
	g.t.Helper()
	r := g.raw()
	if err := r.Conn.(*net.TCPConn).SetReadBuffer(1024); err != nil {
		g.t.Fatal(err)
	}
	r.Auth(testSecret)
	if sub != nil {
		r.Send(wire.OpSubscribe, 2, sub, nil)
		r.Expect(wire.OpResult, 2)
	}
	return r
}

// A service that never reads its results is closed as a slow consumer once its queue
// stays full; meanwhile other services and the clients are unaffected.
func TestServiceNeverReads(t *testing.T) {
	g := startGateway(t, nil, func(o *control.Options) {
		o.MaxQueueBytes = 16 << 10
		o.WriteTimeout = 300 * time.Millisecond
	})
	healthy := echoService(g, "ok:", []string{"echo"}, nil)
	c := g.client("alice", "d1")
	stuck := stuckService(g, &wire.Subscription{Events: true})
	// Big results fill the socket buffers sooner: a user with many devices.
	for i := range 20 {
		g.client("crowd", fmt.Sprint(i))
	}

	// Pipeline requests without reading a single result.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		req, _ := wire.AppendFrame(nil, wire.OpPresence, 3, &wire.Presence{Users: []string{"crowd"}}, nil)
		batch := bytes.Repeat(req, 1000)
		for {
			stuck.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := stuck.Conn.Write(batch); err != nil {
				return
			}
		}
	}()
	// While it is stuck, everybody else works.
	for i := 0; g.metric("tether_control_slow_service_closes_total") < 1; i++ {
		if got, err := c.Send(testkit.Context(t, 5*time.Second), "echo", []byte("x")); err != nil || string(got) != "ok:x" {
			t.Fatalf("uplink while a service is stuck: %q, %v", got, err)
		}
		if res, err := healthy.PushUsers(context.Background(), []string{"alice"}, []byte("p"), service.PushOptions{}); err != nil || res.Delivered != 1 {
			t.Fatalf("push while a service is stuck: %+v, %v", res, err)
		}
		nextPush(t, c)
		if i > 10000 {
			t.Fatal("stuck service never closed")
		}
	}
	wg.Wait() // its writes fail once the gateway closed it
	g.waitMetric(`tether_control_closes_total{code="3002",reason="SLOW_CONSUMER"}`, 1)
	testkit.WaitFor(t, "stuck service gone", func() bool { return g.metric("tether_control_services") == 1 })
	if st, err := healthy.Stats(context.Background()); err != nil || st.Services != 1 || st.EventSubscribers != 0 {
		t.Fatalf("stats after the slow close: %+v, %v", st, err)
	}
	// Events still flow to the healthy service's peers: connecting a client works.
	g.client("bob", "d1")
}

// A client's uplink to a route whose only service has a full queue gets ERROR BUSY;
// other routes keep working.
func TestUplinkBusy(t *testing.T) {
	g := startGateway(t, nil, func(o *control.Options) {
		o.MaxQueueBytes = 64 << 10
		o.WriteTimeout = 30 * time.Second // keep it connected: this is about BUSY
		o.UplinkTimeout = 2 * time.Second
	})
	stuckService(g, &wire.Subscription{Routes: []string{"hog"}})
	echoService(g, "ok:", []string{"echo"}, nil)
	big := make([]byte, 60<<10)
	busy := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i := range 8 {
		c := g.client("user", string(rune('a'+i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 30 {
				_, err := c.Send(testkit.Context(t, 10*time.Second), "hog", big)
				if isCode(err, protocol.ErrorBusy) {
					once.Do(func() { close(busy) })
					return
				}
				select {
				case <-busy:
					return
				default:
				}
			}
		}()
	}
	select {
	case <-busy:
	case <-time.After(20 * time.Second):
		t.Fatal("no ERROR BUSY while the only subscriber's queue is full")
	}
	c := g.client("other", "d1")
	if got, err := c.Send(testkit.Context(t, 5*time.Second), "echo", []byte("x")); err != nil || string(got) != "ok:x" {
		t.Fatalf("uplink on another route: %q, %v", got, err)
	}
	g.waitMetric(`tether_control_uplinks_total{result="busy"}`, 1)
	wg.Wait()
}
