package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// The tests in this file run the client SDK against the real gateway with a Handler of
// their own (no control port), through its exported API only.

const (
	// testHeartbeat is short so that heartbeats are seen quickly, and long enough that a
	// loaded -race run does not trip the gateway's idle timeout (1.5 × heartbeat).
	testHeartbeat = 300 * time.Millisecond
	// waitTimeout bounds each wait for a push or a dial.
	waitTimeout = 5 * time.Second
)

// startServer starts the gateway the way the client SDK's tests want it: alone (no
// control port; the Handler is whatever set installs, none by default), testHeartbeat,
// a 10 ms tick and drains spread over 50 ms; set (may be nil) adjusts the options
// further.
func startServer(t *testing.T, set func(*server.Options)) *server.Server {
	t.Helper()
	return startGateway(t, func(o *server.Options) {
		o.Handler = nil
		o.Heartbeat, o.Tick, o.DrainSpread = testHeartbeat, 10*time.Millisecond, 50*time.Millisecond
		if set != nil {
			set(o)
		}
	}, nil).srv
}

// testHandler echoes route "echo", fails route "nope" with NO_ROUTE, never
// answers route "slow", records fire-and-forget SENDs, and refuses to let
// anyone into room "private".
type testHandler struct {
	server.NopHandler
	mu      sync.Mutex
	noReply []string
}

func (h *testHandler) OnMessage(m *server.Message) ([]byte, error) {
	switch m.Route {
	case "echo":
		return append([]byte("echo:"), m.Payload...), nil
	case "nope":
		return nil, &server.ReplyError{Code: protocol.ErrorNoRoute, Message: "no route"}
	case "slow":
		return nil, server.ErrDeferReply
	case "note":
		h.mu.Lock()
		h.noReply = append(h.noReply, fmt.Sprintf("%s:%v", m.Payload, m.NoReply))
		h.mu.Unlock()
		return nil, nil
	}
	return nil, nil
}

func (h *testHandler) OnSubscribe(_ *server.Conn, room string) error {
	if room == "private" {
		return &server.ReplyError{Code: protocol.ErrorDenied, Message: "members only"}
	}
	return nil
}

func (h *testHandler) notes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.noReply...)
}

func withHandler(h server.Handler) func(*server.Options) {
	return func(o *server.Options) { o.Handler = h }
}

func TestDialAuthenticates(t *testing.T) {
	s := startServer(t, nil)
	var tr testkit.Transitions[client.State]
	c := dial(t, s.Addr().String(), client.Options{DeviceID: "dev1", Platform: "ios", ClientVersion: "1.2.3", OnStateChange: tr.Record})

	if got := c.State(); got != client.StateConnected {
		t.Fatalf("State = %v, want connected", got)
	}
	if got, want := c.UserID(), userName(t); got != want {
		t.Fatalf("UserID = %q, want %q", got, want)
	}
	auth := c.LastAuth()
	if auth.HeartbeatMs != uint32(testHeartbeat/time.Millisecond) || auth.MaxFrame != protocol.DefaultMaxFrame {
		t.Fatalf("AUTH_OK = %+v", auth)
	}
	if c.ConnID() == 0 || c.ConnID() != auth.ConnID {
		t.Fatalf("ConnID = %d, AUTH_OK conn_id %d", c.ConnID(), auth.ConnID)
	}
	conns := s.UserConns(userName(t))
	if len(conns) != 1 {
		t.Fatalf("server sees %d connections, want 1", len(conns))
	}
	sc := conns[0]
	if sc.ID() != c.ConnID() || sc.DeviceID() != "dev1" || sc.Platform() != "ios" || sc.ClientVersion() != "1.2.3" {
		t.Fatalf("server conn %d %q %q %q", sc.ID(), sc.DeviceID(), sc.Platform(), sc.ClientVersion())
	}
	if _, ok := tr.Find(client.StateConnecting, nil); !ok {
		t.Fatal("no transition to connecting")
	}
	if _, ok := tr.Find(client.StateConnected, nil); !ok {
		t.Fatal("no transition to connected")
	}
}

func TestDialFailures(t *testing.T) {
	s := startServer(t, func(o *server.Options) {
		o.Authenticator = server.AuthenticatorFunc(func(_ context.Context, req server.AuthRequest) (server.Identity, error) {
			if req.Token == "busy" {
				return server.Identity{}, &server.AuthError{Code: protocol.CloseServerBusy, Reason: "try later"}
			}
			return server.Identity{}, &server.AuthError{Code: protocol.CloseInvalidToken, Reason: "bad token"}
		})
	})
	ctx := context.Background()

	// AUTH_FAIL with a terminal code.
	_, err := client.Dial(ctx, s.Addr().String(), client.Options{Token: "forged"})
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Op != protocol.OpAuthFail || ce.Code != protocol.CloseInvalidToken || !ce.Terminal() {
		t.Fatalf("Dial with a bad token: %v, want terminal AUTH_FAIL INVALID_TOKEN", err)
	}

	// AUTH_FAIL with a reconnect code: still an error from Dial, not terminal.
	_, err = client.Dial(ctx, s.Addr().String(), client.Options{Token: "busy"})
	if !errors.As(err, &ce) || ce.Code != protocol.CloseServerBusy || ce.Terminal() {
		t.Fatalf("Dial to a busy server: %v, want non-terminal SERVER_BUSY", err)
	}

	// Nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := client.Dial(ctx, addr, client.Options{}); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}

	// A failing TokenFunc fails the attempt before dialing.
	boom := errors.New("no token")
	_, err = client.Dial(ctx, s.Addr().String(), client.Options{TokenFunc: func(context.Context) (string, error) { return "", boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("Dial with a failing TokenFunc: %v", err)
	}
}

func TestSendReply(t *testing.T) {
	s := startServer(t, withHandler(&testHandler{}))
	c := dial(t, s.Addr().String(), client.Options{})
	ctx := context.Background()

	// Concurrent requests check that replies are matched by seq.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			in := fmt.Sprintf("msg-%d", i)
			out, err := c.Send(ctx, "echo", []byte(in))
			if err == nil && string(out) != "echo:"+in {
				err = fmt.Errorf("Send(%q) = %q", in, out)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// An empty reply is a nil payload, not an error.
	out, err := c.Send(ctx, "other", nil)
	if err != nil || len(out) != 0 {
		t.Fatalf("Send(other) = %q, %v", out, err)
	}
}

func TestSendTooLarge(t *testing.T) {
	s := startServer(t, func(o *server.Options) { o.MaxFrame = 1024 })
	c := dial(t, s.Addr().String(), client.Options{})
	_, err := c.Send(context.Background(), "echo", make([]byte, 2000))
	if !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("Send of 2000 bytes with max_frame 1024: %v", err)
	}
	// Nothing was sent: the connection is intact.
	if _, err := c.Send(context.Background(), "echo", []byte("small")); err != nil {
		t.Fatalf("Send after refusing a large frame: %v", err)
	}
}

func TestSendServerError(t *testing.T) {
	s := startServer(t, withHandler(&testHandler{}))
	c := dial(t, s.Addr().String(), client.Options{})
	id := c.ConnID()

	_, err := c.Send(context.Background(), "nope", []byte("x"))
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != protocol.ErrorNoRoute || se.Message != "no route" {
		t.Fatalf("Send(nope) = %v, want client.ServerError NO_ROUTE", err)
	}
	// ERROR leaves the connection open.
	if _, err := c.Send(context.Background(), "echo", nil); err != nil || c.ConnID() != id {
		t.Fatalf("Send after ERROR: %v (conn %d, was %d)", err, c.ConnID(), id)
	}
}

func TestSendTimeout(t *testing.T) {
	s := startServer(t, withHandler(&testHandler{}))
	c := dial(t, s.Addr().String(), client.Options{RequestTimeout: 100 * time.Millisecond})

	_, err := c.Send(context.Background(), "slow", nil)
	if !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("Send(slow) = %v, want client.ErrTimeout", err)
	}
	// A shorter deadline of the caller is reported as the caller's.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Send(ctx, "slow", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send(slow) with a 20ms context = %v, want DeadlineExceeded", err)
	}
	// Timed-out requests leave the connection usable.
	if _, err := c.Send(context.Background(), "echo", nil); err != nil {
		t.Fatalf("Send after timeouts: %v", err)
	}
}

func TestSendNoReply(t *testing.T) {
	h := &testHandler{}
	s := startServer(t, withHandler(h))
	c := dial(t, s.Addr().String(), client.Options{})
	if err := c.SendNoReply("note", []byte("fire")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the handler to see the SEND", func() bool { return len(h.notes()) == 1 })
	if got := h.notes()[0]; got != "fire:true" {
		t.Fatalf("handler saw %q, want fire:true", got)
	}
}

func TestPing(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s.Addr().String(), client.Options{})
	rtt, err := c.Ping(context.Background())
	if err != nil || rtt <= 0 {
		t.Fatalf("Ping = %v, %v", rtt, err)
	}
}

func TestPushCallback(t *testing.T) {
	s := startServer(t, nil)
	got := make(chan client.Push, 4)
	c := dial(t, s.Addr().String(), client.Options{OnPush: func(p client.Push) { got <- p }})
	if c.Pushes() != nil {
		t.Fatal("Pushes() is not nil with OnPush set")
	}
	if n, err := s.PushUser(userName(t), []byte("hello")); n != 1 || err != nil {
		t.Fatalf("PushUser = %d, %v", n, err)
	}
	p := recv(t, got)
	if p.MsgID != 0 || p.Channel != "" || string(p.Payload) != "hello" || p.AckRequested {
		t.Fatalf("push = %+v", p)
	}
}

func TestPushChannel(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s.Addr().String(), client.Options{})
	for i := range 5 {
		if _, err := s.PushUser(userName(t), fmt.Appendf(nil, "p%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if p := recv(t, c.Pushes()); string(p.Payload) != fmt.Sprintf("p%d", i) {
			t.Fatalf("push %d = %q", i, p.Payload)
		}
	}
	_ = c.Close()
	if _, ok := <-c.Pushes(); ok {
		t.Fatal("Pushes not closed after Close")
	}
}

func TestReconnectAfterKickWithReconnectCode(t *testing.T) {
	s := startServer(t, nil)
	var tr testkit.Transitions[client.State]
	var tokens atomic.Int32
	c := dial(t, s.Addr().String(), client.Options{
		OnStateChange: tr.Record,
		BackoffMin:    10 * time.Millisecond,
		TokenFunc: func(context.Context) (string, error) {
			tokens.Add(1)
			return userName(t), nil
		},
	})
	old := c.ConnID()
	if n := s.KickUser(userName(t), protocol.CloseServerBusy, "busy"); n != 1 {
		t.Fatalf("KickUser closed %d connections", n)
	}
	testkit.WaitFor(t, "a new connection", func() bool { id := c.ConnID(); return id != 0 && id != old })
	if _, ok := tr.Find(client.StateReconnecting, closeCode(protocol.CloseServerBusy)); !ok {
		t.Fatalf("no reconnecting transition with SERVER_BUSY: %+v", tr.Dump())
	}
	if n := tokens.Load(); n != 2 {
		t.Fatalf("TokenFunc called %d times, want 2 (dial and reconnect)", n)
	}
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after reconnect: %v", err)
	}
}

func TestRoomsRejoinedAfterReconnect(t *testing.T) {
	s := startServer(t, withHandler(&testHandler{}))
	c := dial(t, s.Addr().String(), client.Options{BackoffMin: 10 * time.Millisecond})
	ctx := context.Background()
	for _, room := range []string{"r1", "r2"} {
		if err := c.Subscribe(ctx, room); err != nil {
			t.Fatalf("Subscribe(%s): %v", room, err)
		}
	}
	if err := c.Unsubscribe(ctx, "r2"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	if s.RoomSize("r1") != 1 || s.RoomSize("r2") != 0 {
		t.Fatalf("room sizes r1=%d r2=%d", s.RoomSize("r1"), s.RoomSize("r2"))
	}

	old := c.ConnID()
	s.KickUser(userName(t), protocol.CloseInternal, "oops")
	testkit.WaitFor(t, "reconnect and rejoin", func() bool {
		id := c.ConnID()
		return id != 0 && id != old && s.RoomSize("r1") == 1
	})
	if s.RoomSize("r2") != 0 {
		t.Fatal("r2 was rejoined after Unsubscribe")
	}
	if n, err := s.PushRoom("r1", []byte("after")); n != 1 || err != nil {
		t.Fatalf("PushRoom = %d, %v", n, err)
	}
	if p := recv(t, c.Pushes()); p.Channel != "r1" || string(p.Payload) != "after" {
		t.Fatalf("push = %+v", p)
	}
	if got := c.Rooms(); len(got) != 1 || got[0] != "r1" {
		t.Fatalf("Rooms = %v", got)
	}
}

func TestSubscribeDenied(t *testing.T) {
	s := startServer(t, withHandler(&testHandler{}))
	c := dial(t, s.Addr().String(), client.Options{})
	err := c.Subscribe(context.Background(), "private")
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != protocol.ErrorDenied {
		t.Fatalf("Subscribe(private) = %v, want DENIED", err)
	}
	if got := c.Rooms(); len(got) != 0 {
		t.Fatalf("refused room kept: %v", got)
	}
}

func TestShutdownGoAway(t *testing.T) {
	s := startServer(t, nil)
	var tr testkit.Transitions[client.State]
	dial(t, s.Addr().String(), client.Options{OnStateChange: tr.Record, BackoffMin: 10 * time.Millisecond})

	// Shutdown waits until the clients have left: a client that honours
	// GOAWAY by closing lets it return well before the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	testkit.WaitFor(t, "a reconnecting transition after GOAWAY", func() bool {
		_, ok := tr.Find(client.StateReconnecting, func(err error) bool {
			var ce *client.CloseError
			return errors.As(err, &ce) && ce.Op == protocol.OpGoAway && ce.Code == protocol.CloseGoingAway
		})
		return ok
	})
}

func TestConcurrentUseDuringReconnects(t *testing.T) {
	s := startServer(t, withHandler(&testHandler{}))
	c := dial(t, s.Addr().String(), client.Options{BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond})
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				out, err := c.Send(ctx, "echo", []byte("x"))
				switch {
				case err == nil && !bytes.Equal(out, []byte("echo:x")):
					t.Errorf("Send = %q", out)
					return
				case err == nil:
					ok.Add(1)
				case !errors.Is(err, client.ErrDisconnected):
					t.Errorf("Send: %v", err)
					return
				}
			}
		})
	}
	for range 5 {
		old := c.ConnID()
		s.KickUser(userName(t), protocol.CloseServerBusy, "again")
		testkit.WaitFor(t, "reconnect", func() bool { id := c.ConnID(); return id != 0 && id != old })
	}
	close(stop)
	wg.Wait()
	if ok.Load() == 0 {
		t.Fatal("no Send succeeded")
	}
}
