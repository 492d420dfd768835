package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/control"
)

const secret = "service-test-secret"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startGateway starts a gateway with a control port; both close when the test ends.
func startGateway(t *testing.T) (*server.Server, *control.Port) {
	t.Helper()
	p, err := control.New(control.Options{Addr: "127.0.0.1:0", Secret: secret, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: server.InsecureAuthenticator{},
		Handler: p, Logger: quiet, Tick: 5 * time.Millisecond, MaxConnsPerIP: -1, ConnectRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(srv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); srv.Close() })
	return srv, p
}

// connDialer dials normally and remembers the connections, so tests can cut them.
type connDialer struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (d *connDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func (d *connDialer) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.conns[len(d.conns)-1].Close()
}

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

// After the connection is lost, the Service reconnects and subscribes again, so
// clients' uplinks reach it once more; requests made meanwhile wait for it.
func TestReconnectResubscribes(t *testing.T) {
	srv, p := startGateway(t)
	d := &connDialer{}
	var events sync.Map
	svc, err := Dial(context.Background(), p.Addr().String(), Options{
		Secret: secret, Reconnect: true, Dialer: d.dial, BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		OnUplink: func(u *Uplink) { _ = u.Reply(append([]byte("re:"), u.Payload...)) },
		OnEvent:  func(ev Event) { events.Store(ev.User+"/"+ev.Type, true) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, err := svc.Subscribe(context.Background(), Subscription{Routes: []string{"echo"}, Events: true}); err != nil {
		t.Fatal(err)
	}
	first := svc.Session()
	d.cut()
	waitFor(t, "a new session", func() bool { return svc.Session() != first })
	st, err := svc.Stats(context.Background())
	if err != nil || st.Services != 1 || st.Routes != 1 || st.EventSubscribers != 1 {
		t.Fatalf("after reconnect: %+v, %v", st, err)
	}
	c, err := client.Dial(context.Background(), srv.Addr().String(), client.Options{Token: "alice", NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := c.Send(context.Background(), "echo", []byte("x")); err != nil || string(got) != "re:x" {
		t.Fatalf("uplink after reconnect = %q, %v", got, err)
	}
	waitFor(t, "online event after reconnect", func() bool { _, ok := events.Load("alice/online"); return ok })
}

// Without Reconnect a lost connection ends the Service.
func TestLostConnectionEnds(t *testing.T) {
	_, p := startGateway(t)
	d := &connDialer{}
	svc, err := Dial(context.Background(), p.Addr().String(), Options{Secret: secret, Dialer: d.dial})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	d.cut()
	select {
	case <-svc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Service did not end")
	}
	if !errors.Is(svc.Err(), ErrDisconnected) {
		t.Fatalf("Err = %v, want ErrDisconnected", svc.Err())
	}
	if _, err := svc.Stats(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stats after the end = %v, want ErrClosed", err)
	}
}

// fakeGateway accepts one control connection, answers AUTH, and then lets handle
// read the rest.
func fakeGateway(t *testing.T, handle func(nc net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		buf := make([]byte, 4096)
		n, _ := nc.Read(buf)
		f, _, err := protocol.Parse(buf[:n], 0)
		if err != nil {
			return
		}
		res, _ := wire.AppendFrame(nil, wire.OpResult, f.Seq, &wire.AuthResult{Session: 1, MaxFrame: 1 << 20}, nil)
		nc.Write(res)
		handle(nc)
	}()
	return ln.Addr().String()
}

// A request with no answer times out with ErrTimeout; the caller's own cancellation
// is reported as such.
func TestRequestTimeout(t *testing.T) {
	addr := fakeGateway(t, func(nc net.Conn) { io.Copy(io.Discard, nc) })
	svc, err := Dial(context.Background(), addr, Options{Secret: "x", RequestTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, err := svc.Stats(context.Background()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Stats = %v, want ErrTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := svc.Stats(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stats with a cancelled context = %v, want context.Canceled", err)
	}
}

// A CLOSE from the gateway ends requests in flight with the *CloseError.
func TestGatewayClose(t *testing.T) {
	addr := fakeGateway(t, func(nc net.Conn) {
		buf := make([]byte, 4096)
		nc.Read(buf) // the request
		cl, _ := (&protocol.Close{Code: protocol.CloseSlowConsumer, Reason: "slow"}).AppendFrame(nil, 0, 0)
		nc.Write(cl)
	})
	svc, err := Dial(context.Background(), addr, Options{Secret: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	_, err = svc.Stats(context.Background())
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseSlowConsumer || ce.Terminal() {
		t.Fatalf("Stats = %v, want CloseError SLOW_CONSUMER", err)
	}
	<-svc.Done()
}
