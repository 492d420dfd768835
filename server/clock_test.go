package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// manualClock is the made-up wheel time of a server started by startManual: the wheel
// has no driver and moves only when the test calls advance, which runs the expiries
// before it returns.
type manualClock struct {
	s   *Server
	now atomic.Int64
}

// startManual is startServer with a made-up clock (Options.clock).
func startManual(t *testing.T, mutate func(o *Options)) (*Server, *manualClock) {
	t.Helper()
	mc := &manualClock{}
	mc.now.Store(int64(time.Hour)) // any start will do
	mc.s = startServer(t, func(o *Options) {
		o.clock = mc.now.Load
		if mutate != nil {
			mutate(o)
		}
	})
	return mc.s, mc
}

// set moves the clock to now without advancing the wheel: what the real clock does
// between two driver ticks.
func (mc *manualClock) set(now int64) { mc.now.Store(now) }

// advance moves the clock to now and advances the wheel to it, like one driver tick.
func (mc *manualClock) advance(now int64) {
	mc.now.Store(now)
	mc.s.advance(now)
}

// advance moves the wheel to now and runs what expired, for servers whose Options.clock
// replaced the driver.
func (s *Server) advance(now int64) {
	if batch := s.wheel.Advance(now, nil); len(batch) > 0 {
		s.onExpire(batch)
	}
}

// onlyConn returns the server's single connection, waiting for it to be indexed.
func onlyConn(t *testing.T, s *Server) *Conn {
	t.Helper()
	var c *Conn
	waitFor(t, "one connection with its deadline", func() bool {
		s.hub.each(func(x *Conn) { c = x })
		return c != nil && s.wheel.Len() == 1
	})
	return c
}

// TestAuthDeadline: a connection that never sends HELLO is closed with AuthTimeout at
// its deadline, not before.
func TestAuthDeadline(t *testing.T) {
	s, mc := startManual(t, func(o *Options) { o.AuthTimeout = 10 * time.Second })
	start := mc.now.Load()
	c := dialRaw(t, s)
	sc := onlyConn(t, s)
	mc.advance(start + int64(10*time.Second) - 1)
	if sc.closing() {
		t.Fatal("closed before the auth deadline")
	}
	mc.advance(start + int64(10*time.Second))
	if got := sc.closeCode(); got != protocol.CloseAuthTimeout {
		t.Fatalf("close code %v at the deadline, want AUTH_TIMEOUT", got)
	}
	c.expectClosed(protocol.OpClose, protocol.CloseAuthTimeout)
	waitFor(t, "connection count back to 0", func() bool { return s.Stats().Connections == 0 })
}

// TestAuthDeadlineWhileAuthenticating: an Authenticator slower than the auth deadline
// loses: the client gets AuthTimeout, and no AUTH_OK once the Authenticator returns.
func TestAuthDeadlineWhileAuthenticating(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	s, mc := startManual(t, func(o *Options) {
		o.AuthTimeout = 10 * time.Second
		o.Authenticator = AuthenticatorFunc(func(ctx context.Context, req AuthRequest) (Identity, error) {
			close(entered)
			<-release
			return Identity{UserID: req.Token}, nil
		})
	})
	start := mc.now.Load()
	c := dialRaw(t, s)
	sc := onlyConn(t, s)
	c.send(&protocol.Hello{Token: "slow"}, 1, 0)
	<-entered
	mc.advance(start + int64(10*time.Second))
	close(release)
	c.expectClosed(protocol.OpClose, protocol.CloseAuthTimeout)
	if sc.Authenticated() {
		t.Fatal("authenticated after its auth deadline")
	}
}

// TestHeartbeatBound: a silent authenticated connection is closed no earlier than
// 1.5 heartbeats after its last inbound byte and, with the wheel advanced once a tick
// as its driver does, no later than 1.5 heartbeats plus one tick, whatever the phase of
// the byte within a tick. The made-up ticks come a microsecond early, as a ticker's do
// when it catches up: a deadline that lands exactly on the driver's grid (the old
// "coarse clock + 1.5 x heartbeat + 1 tick") then slips a whole tick, to 1.5 x + 2
// ticks, which is what issue 8 measured.
func TestHeartbeatBound(t *testing.T) {
	const hb, tick = 5 * time.Second, 50 * time.Millisecond
	s, mc := startManual(t, func(o *Options) { o.Heartbeat = hb; o.Tick = tick })
	for _, phase := range []time.Duration{0, time.Millisecond, 17 * time.Millisecond, tick / 2, tick - time.Millisecond} {
		c := dialRaw(t, s)
		c.hello("hb", "d"+phase.String(), "ios")
		var sc *Conn
		for _, x := range s.UserConns("hb") {
			if x.DeviceID() == "d"+phase.String() {
				sc = x
			}
		}
		// The driver last ticked at tick0; the client's PING arrives phase later.
		tick0 := mc.now.Load() + int64(time.Second)
		mc.advance(tick0)
		last := tick0 + int64(phase)
		mc.set(last)
		c.write(protocol.AppendEmpty(nil, protocol.OpPing, 2))
		c.expect(protocol.OpPong) // the read path refreshed the deadline before answering
		var closedAt int64
		for k := int64(1); k <= int64(hb*3/2/tick)+3; k++ {
			now := tick0 + k*int64(tick) - int64(time.Microsecond)
			mc.advance(now)
			if sc.closing() {
				closedAt = now
				break
			}
		}
		silent := time.Duration(closedAt - last)
		switch {
		case closedAt == 0:
			t.Fatalf("phase %v: not closed by 1.5 x heartbeat + 3 ticks", phase)
		case silent < hb*3/2:
			t.Fatalf("phase %v: closed after %v of silence, before 1.5 x heartbeat", phase, silent)
		case silent > hb*3/2+tick:
			t.Fatalf("phase %v: closed after %v of silence, past 1.5 x heartbeat + 1 tick (%v)", phase, silent, hb*3/2+tick)
		}
		if got := sc.closeCode(); got != protocol.CloseHeartbeatTimeout {
			t.Fatalf("phase %v: close code %v", phase, got)
		}
		c.expectClosed(protocol.OpClose, protocol.CloseHeartbeatTimeout)
	}
}

// TestAnyFrameRefreshesHeartbeat: a client that keeps sending SENDs (never PING) stays
// connected far past the heartbeat timeout, and is closed once it goes quiet.
func TestAnyFrameRefreshesHeartbeat(t *testing.T) {
	const hb = 2 * time.Second
	s, mc := startManual(t, func(o *Options) { o.Heartbeat = hb })
	c := dialRaw(t, s)
	c.hello("carol", "d", "ios")
	sc := s.UserConns("carol")[0]
	now := mc.now.Load()
	// Ten heartbeats of made-up time, a SEND every heartbeat (under the 1.5 x timeout).
	for seq := uint32(1); seq <= 10; seq++ {
		now += int64(hb)
		mc.advance(now)
		if sc.closing() {
			t.Fatalf("closed after SEND %d although every frame refreshes the deadline", seq-1)
		}
		c.send(&protocol.Send{Route: "r"}, seq, 0)
		if f := c.expect(protocol.OpSendReply); f.Seq != seq {
			t.Fatalf("reply seq %d, want %d", f.Seq, seq)
		}
	}
	mc.advance(now + int64(hb)*3/2)
	c.expectClosed(protocol.OpClose, protocol.CloseHeartbeatTimeout)
}

// TestGoAwayGraceNotExtended: after GOAWAY the timer holds the grace deadline, which
// inbound frames do not extend, and its expiry closes with GOING_AWAY.
func TestGoAwayGraceNotExtended(t *testing.T) {
	s, mc := startManual(t, nil)
	c := dialRaw(t, s)
	c.hello("grace", "a", "ios")
	sc := s.UserConns("grace")[0]
	start := mc.now.Load()
	if err := sc.GoAway(time.Second, 3*time.Second, "move"); err != nil {
		t.Fatal(err)
	}
	c.expect(protocol.OpGoAway)
	mc.set(start + int64(2*time.Second))
	c.write(protocol.AppendEmpty(nil, protocol.OpPing, 2))
	c.expect(protocol.OpPong)
	mc.advance(start + int64(3*time.Second))
	c.expectClosed(protocol.OpClose, protocol.CloseGoingAway)
}
