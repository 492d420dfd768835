package service

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// The tests in this file drive the reconnect loop against a fake control port that
// the test goroutine plays connection by connection. The schedule itself is tested
// in internal/backoff; these check that the Service feeds it the right endings,
// seen through Options.onWait with the largest jitter draw (so each wait is its
// ceiling) and a made-up clock (so the test decides which sessions are short).

// loopGateway is a fake control port: each accepted connection is handed to the
// test goroutine, which answers its AUTH.
type loopGateway struct {
	t     *testing.T
	ln    net.Listener
	conns chan net.Conn
}

func newLoopGateway(t *testing.T) *loopGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &loopGateway{t: t, ln: ln, conns: make(chan net.Conn, 16)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []net.Conn
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			all = append(all, nc)
			mu.Unlock()
			select {
			case g.conns <- nc:
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, nc := range all {
			nc.Close()
		}
		mu.Unlock()
	})
	return g
}

func (g *loopGateway) addr() string { return g.ln.Addr().String() }

// next accepts the next connection and reads its AUTH, returning the connection and
// the AUTH's seq.
func (g *loopGateway) next() (net.Conn, uint32) {
	g.t.Helper()
	var nc net.Conn
	select {
	case nc = <-g.conns:
	case <-time.After(10 * time.Second):
		g.t.Fatal("fake gateway: no connection")
	}
	var auth *protocol.Frame
	dec := protocol.Decoder{MaxFrame: protocol.PreAuthMaxFrame}
	buf := make([]byte, 4096)
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for auth == nil {
		n, err := nc.Read(buf)
		if n > 0 {
			_ = dec.Decode(buf[:n], func(f protocol.Frame) error {
				if auth == nil {
					fc := f.Clone()
					auth = &fc
				}
				return nil
			})
		}
		if err != nil && auth == nil {
			g.t.Fatalf("fake gateway: reading AUTH: %v", err)
		}
	}
	if auth.Op != wire.OpAuth {
		g.t.Fatalf("fake gateway: first frame %v, want AUTH", auth.Op)
	}
	_ = nc.SetReadDeadline(time.Time{})
	return nc, auth.Seq
}

// accept answers the next connection's AUTH with session id.
func (g *loopGateway) accept(session uint64) net.Conn {
	g.t.Helper()
	nc, seq := g.next()
	res, _ := wire.AppendFrame(nil, wire.OpResult, seq, &wire.AuthResult{Session: session, MaxFrame: 1 << 20}, nil)
	if _, err := nc.Write(res); err != nil {
		g.t.Fatal(err)
	}
	return nc
}

// closeWith sends CLOSE with code and closes nc.
func closeWith(t *testing.T, nc net.Conn, code protocol.CloseCode) {
	t.Helper()
	cl, _ := (&protocol.Close{Code: code, Reason: "test"}).AppendFrame(nil, 0, 0)
	if _, err := nc.Write(cl); err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// connected reports whether s uses a connection of the given session.
func connected(s *Service, session uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil && s.session.Load() == session
}

// A gateway that accepts the service and at once drops it, whatever the code,
// must see growing waits, as for failed dials; only a connection that lived
// StableAfter starts them over.
func TestShortSessionsBackOff(t *testing.T) {
	const ms = time.Millisecond
	g := newLoopGateway(t)
	clk := testkit.NewFakeClock()
	var w testkit.Waits
	const stable = time.Minute // on the fake clock
	type result struct {
		s   *Service
		err error
	}
	res := make(chan result, 1)
	go func() {
		s, err := Dial(context.Background(), g.addr(), Options{Secret: "x", Reconnect: true,
			BackoffMin: ms, BackoffMax: 16 * ms, StableAfter: stable,
			randN: func(n int64) int64 { return n - 1 }, now: clk.Now, onWait: w.Record})
		res <- result{s, err}
	}()
	nc := g.accept(1)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	svc := r.s
	defer svc.Close()

	session := uint64(1)
	next := func() net.Conn {
		t.Helper()
		session++
		nc := g.accept(session)
		testkit.WaitFor(t, "the new connection", func() bool { return connected(svc, session) })
		return nc
	}
	for _, code := range []protocol.CloseCode{protocol.CloseGoingAway, protocol.CloseSlowConsumer, protocol.CloseServerFull} {
		closeWith(t, nc, code)
		nc = next()
	}
	// A drop without a code counts too, and so does an AUTH refused with a
	// reconnect code.
	nc.Close()
	refused, _ := g.next()
	closeWith(t, refused, protocol.CloseAuthTimeout)
	nc = next()
	want := []testkit.Wait{{D: 2 * ms, Failures: 1}, {D: 4 * ms, Failures: 2}, {D: 8 * ms, Failures: 3}, {D: 16 * ms, Failures: 4}, {D: 16 * ms, Failures: 5}}
	if got := w.Get(); !slices.Equal(got, want) {
		t.Fatalf("waits after short sessions %v, want %v", got, want)
	}

	clk.Advance(stable)
	closeWith(t, nc, protocol.CloseGoingAway)
	nc = next()
	closeWith(t, nc, protocol.CloseGoingAway)
	next()
	want = append(want, testkit.Wait{D: ms, Failures: 0}, testkit.Wait{D: 2 * ms, Failures: 1})
	if got := w.Get(); !slices.Equal(got, want) {
		t.Fatalf("waits after a stable session %v, want %v", got, want)
	}
}

// A terminal code ends the Service, with the *CloseError, whether it closes a live
// connection or answers a reconnect's AUTH (a secret rotated meanwhile); a reconnect
// code only makes it reconnect.
func TestReconnectCloseCodes(t *testing.T) {
	f := func(name string, refuseReconnect bool, code protocol.CloseCode, terminal bool) {
		t.Run(name, func(t *testing.T) {
			g := newLoopGateway(t)
			var w testkit.Waits
			res := make(chan *Service, 1)
			go func() {
				s, err := Dial(context.Background(), g.addr(), Options{Secret: "x", Reconnect: true,
					BackoffMin: time.Millisecond, BackoffMax: time.Millisecond, onWait: w.Record})
				if err != nil {
					t.Error(err)
				}
				res <- s
			}()
			nc := g.accept(1)
			svc := <-res
			if svc == nil {
				t.FailNow()
			}
			defer svc.Close()
			if refuseReconnect {
				closeWith(t, nc, protocol.CloseGoingAway)
				nc, _ = g.next()
			}
			closeWith(t, nc, code)
			if !terminal {
				g.accept(2)
				testkit.WaitFor(t, "the new connection", func() bool { return connected(svc, 2) })
				return
			}
			select {
			case <-svc.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("Service still running after a terminal code")
			}
			var ce *CloseError
			if !errors.As(svc.Err(), &ce) || ce.Code != code {
				t.Fatalf("Err = %v, want a CloseError %v", svc.Err(), code)
			}
			if _, err := svc.Stats(context.Background()); !errors.Is(err, ErrClosed) || !errors.As(err, &ce) {
				t.Fatalf("Stats after the end = %v, want ErrClosed wrapping the CloseError", err)
			}
			if n := len(w.Get()); n != map[bool]int{false: 0, true: 1}[refuseReconnect] {
				t.Fatalf("%d reconnect waits", n)
			}
			select {
			case <-g.conns:
				t.Fatal("Service dialled again after a terminal code")
			default:
			}
		})
	}
	f("PROTOCOL_ERROR on a live connection", false, protocol.CloseProtocolError, true)
	f("INVALID_TOKEN answering a reconnect", true, protocol.CloseInvalidToken, true)
	f("SLOW_CONSUMER", false, protocol.CloseSlowConsumer, false)
	f("GOING_AWAY answering a reconnect", true, protocol.CloseGoingAway, false)
}
