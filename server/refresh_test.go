package server

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// expiryServer is a server on a made-up clock whose Authenticator reads tokens
// "user:ttl-seconds" (ttl 0: no expiry), "user:bad" (refused TOKEN_EXPIRED) and
// "user:slow" (waits for release, then 60 s), with expiries on the same made-up clock.
type expiryServer struct {
	s       *Server
	mc      *manualClock
	start   int64 // wheel time at start
	base    int64 // wall time at start, Unix ns
	release chan struct{}
	entered chan struct{}
	grace   time.Duration
}

func startExpiry(t *testing.T) *expiryServer {
	t.Helper()
	es := &expiryServer{base: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
		release: make(chan struct{}), entered: make(chan struct{}, 4), grace: 2 * time.Second}
	var clock func() int64 // the made-up clock, set before the server starts
	wall := func() int64 { return es.base + clock() - es.start }
	auth := AuthenticatorFunc(func(_ context.Context, req AuthRequest) (Identity, error) {
		user, ttl, _ := strings.Cut(req.Token, ":")
		if i := strings.IndexByte(user, '#'); i >= 0 {
			user = user[:i]
		}
		switch ttl {
		case "bad":
			return Identity{}, &AuthError{Code: protocol.CloseTokenExpired, Reason: "expired"}
		case "slow":
			es.entered <- struct{}{}
			<-es.release
			ttl = "60"
		}
		n, _ := strconv.Atoi(ttl)
		id := Identity{UserID: user}
		if n > 0 {
			id.ExpiresAt = time.Unix(0, wall()+int64(n)*int64(time.Second))
		}
		return id, nil
	})
	es.s, es.mc = startManual(t, func(o *Options) {
		o.Authenticator = auth
		o.Heartbeat = 100 * time.Hour // only the token deadline matters here
		o.TokenGrace = es.grace
		o.wall = wall
		clock = o.clock
		es.start = clock()
	})
	return es
}

// at advances the made-up clock to d after the start.
func (es *expiryServer) at(d time.Duration) { es.mc.advance(es.start + int64(d)) }

// wallMs is the made-up wall time d after the start, in Unix ms.
func (es *expiryServer) wallMs(d time.Duration) int64 {
	return (es.base + int64(d)) / int64(time.Millisecond)
}

// login authenticates with token and returns the client, its AUTH_OK and the server's
// connection.
func (es *expiryServer) login(t *testing.T, token, device string) (*rawConn, protocol.AuthOK, *Conn) {
	t.Helper()
	c := dialRaw(t, es.s)
	c.send(&protocol.Hello{Token: token, DeviceID: device}, 1, 0)
	var ok protocol.AuthOK
	if err := ok.Decode(c.expect(protocol.OpAuthOK).Body); err != nil {
		t.Fatal(err)
	}
	var sc *Conn
	waitFor(t, "the connection indexed", func() bool {
		for _, x := range es.s.UserConns(ok.UserID) {
			if x.DeviceID() == device {
				sc = x
			}
		}
		return sc != nil
	})
	return c, ok, sc
}

// refresh sends REFRESH with token and seq and returns the answer.
func refresh(t *testing.T, c *rawConn, token string, seq uint32) protocol.Frame {
	t.Helper()
	c.send(&protocol.Refresh{Token: token}, seq, 0)
	f, err := c.next(10 * time.Second)
	if err != nil {
		t.Fatalf("answer to REFRESH: %v", err)
	}
	if f.Seq != seq {
		t.Fatalf("answer %v seq %d, want seq %d", f.Op, f.Seq, seq)
	}
	return f
}

// errorCode decodes f as ERROR and returns its code.
func errorCode(t *testing.T, f protocol.Frame) protocol.ErrorCode {
	t.Helper()
	var m protocol.Error
	if f.Op != protocol.OpError || m.Decode(f.Body) != nil {
		t.Fatalf("got %v %x, want ERROR", f.Op, f.Body)
	}
	return m.Code
}

// alive checks the connection still answers a PING.
func alive(t *testing.T, c *rawConn, sc *Conn, when string) {
	t.Helper()
	if !sc.Authenticated() {
		t.Fatalf("%s: closed with %v", when, sc.closeCode())
	}
	c.write(protocol.AppendEmpty(nil, protocol.OpPing, 77))
	c.expect(protocol.OpPong)
}

// TestSessionExpires: AUTH_OK announces the token's expiry, and a connection that sends
// no REFRESH is closed with SESSION_EXPIRED once the expiry plus the grace has passed,
// not before, and counted.
func TestSessionExpires(t *testing.T) {
	es := startExpiry(t)
	c, ok, sc := es.login(t, "alice:60", "d1")
	if want := es.wallMs(60 * time.Second); ok.TokenExpiresMs != want {
		t.Fatalf("AUTH_OK token_expires_ms %d, want %d", ok.TokenExpiresMs, want)
	}
	if got := sc.TokenExpiry().UnixMilli(); got != ok.TokenExpiresMs {
		t.Fatalf("TokenExpiry %d ms, want %d", got, ok.TokenExpiresMs)
	}
	es.at(60*time.Second + es.grace - time.Millisecond)
	alive(t, c, sc, "just before expiry + grace")
	es.at(60*time.Second + es.grace)
	c.expectClosed(protocol.OpClose, protocol.CloseSessionExpired)
	if !protocol.CloseSessionExpired.IsReconnect() {
		t.Fatal("SESSION_EXPIRED is not a reconnect code")
	}
	if n := es.s.metrics.closedCounter(protocol.CloseSessionExpired).Get(); n != 1 {
		t.Fatalf("tether_closes_total{SESSION_EXPIRED} = %d, want 1", n)
	}
}

// TestRefreshExtendsLife: an accepted REFRESH moves the connection's expiry to the new
// token's: it outlives the first token, several times over, and closes at the last one.
func TestRefreshExtendsLife(t *testing.T) {
	es := startExpiry(t)
	c, _, sc := es.login(t, "alice:60", "d1")
	for i, at := range []time.Duration{50 * time.Second, 100 * time.Second, 150 * time.Second} {
		es.at(at)
		f := refresh(t, c, "alice:60", uint32(8+i))
		var m protocol.RefreshOK
		if f.Op != protocol.OpRefreshOK || m.Decode(f.Body) != nil {
			t.Fatalf("REFRESH at %v answered %v %x, want REFRESH_OK", at, f.Op, f.Body)
		}
		if want := es.wallMs(at + 60*time.Second); m.TokenExpiresMs != want || sc.TokenExpiry().UnixMilli() != want {
			t.Fatalf("REFRESH_OK token_expires_ms %d (TokenExpiry %v), want %d", m.TokenExpiresMs, sc.TokenExpiry(), want)
		}
	}
	es.at(150*time.Second + 60*time.Second + es.grace - time.Millisecond)
	alive(t, c, sc, "before the last token's expiry")
	es.at(150*time.Second + 60*time.Second + es.grace)
	c.expectClosed(protocol.OpClose, protocol.CloseSessionExpired)
	if n := es.s.metrics.set.GetOrCreateCounter(`tether_token_refreshes_total{result="ok"}`).Get(); n != 3 {
		t.Fatalf("refreshes ok = %d, want 3", n)
	}
}

// TestRefreshRefused: a REFRESH the Authenticator refuses is answered TOKEN_REJECTED, and
// one for another user DENIED; neither ends the connection nor changes its expiry.
func TestRefreshRefused(t *testing.T) {
	es := startExpiry(t)
	c, _, sc := es.login(t, "alice:60", "d1")
	es.at(30 * time.Second)
	if got := errorCode(t, refresh(t, c, "alice:bad", 8)); got != protocol.ErrorTokenRejected {
		t.Fatalf("refused token answered %v, want TOKEN_REJECTED", got)
	}
	if got := errorCode(t, refresh(t, c, "bob:600", 9)); got != protocol.ErrorDenied {
		t.Fatalf("another user's token answered %v, want DENIED", got)
	}
	if sc.UserID() != "alice" || sc.TokenExpiry().UnixMilli() != es.wallMs(60*time.Second) {
		t.Fatalf("after refused refreshes: user %q expiry %v", sc.UserID(), sc.TokenExpiry())
	}
	alive(t, c, sc, "after refused refreshes")
	es.at(60*time.Second + es.grace)
	c.expectClosed(protocol.OpClose, protocol.CloseSessionExpired)
}

// TestRefreshOneAtATime: a second REFRESH while the first is being checked is answered
// BUSY at once; the first then completes, and a third after it is accepted.
func TestRefreshOneAtATime(t *testing.T) {
	es := startExpiry(t)
	c, _, sc := es.login(t, "alice:60", "d1")
	c.send(&protocol.Refresh{Token: "alice:slow"}, 8, 0)
	<-es.entered
	if got := errorCode(t, refresh(t, c, "alice:60", 9)); got != protocol.ErrorBusy {
		t.Fatalf("concurrent REFRESH answered %v, want BUSY", got)
	}
	close(es.release)
	if f := c.expect(protocol.OpRefreshOK); f.Seq != 8 {
		t.Fatalf("REFRESH_OK seq %d, want 8", f.Seq)
	}
	if f := refresh(t, c, "alice:120", 10); f.Op != protocol.OpRefreshOK {
		t.Fatalf("REFRESH after the first completed answered %v", f.Op)
	}
	alive(t, c, sc, "after the refreshes")
}

// TestNoExpiry: a token without an expiry gives no token_expires_ms and no expiry state
// (nothing per connection); a REFRESH to such a token cancels an expiry.
func TestNoExpiry(t *testing.T) {
	es := startExpiry(t)
	c, ok, sc := es.login(t, "carol:0", "d1")
	if ok.TokenExpiresMs != 0 || sc.life.Load() != nil || !sc.TokenExpiry().IsZero() {
		t.Fatalf("no-expiry token: token_expires_ms %d, life %v", ok.TokenExpiresMs, sc.life.Load())
	}
	c2, _, sc2 := es.login(t, "dave:60", "d2")
	var m protocol.RefreshOK
	if f := refresh(t, c2, "dave:0", 8); f.Op != protocol.OpRefreshOK || m.Decode(f.Body) != nil || m.TokenExpiresMs != 0 {
		t.Fatalf("REFRESH to a token without expiry answered %v %x", f.Op, f.Body)
	}
	es.at(24 * time.Hour)
	alive(t, c, sc, "a day later")
	alive(t, c2, sc2, "a day later, refreshed to no expiry")
}

// TestExpiryTimerReleased: closing a connection cancels its token deadline, so the
// wheel does not keep a closed connection until its token would have expired.
func TestExpiryTimerReleased(t *testing.T) {
	es := startExpiry(t)
	c, _, sc := es.login(t, "erin:3600", "d1")
	_ = c.c.Close()
	waitFor(t, "connection gone", func() bool { return es.s.Stats().Connections == 0 })
	if sc.life.Load().timer.Pending() || es.s.wheel.Len() != 0 {
		t.Fatalf("token timer pending %v, wheel holds %d timers after close", sc.life.Load().timer.Pending(), es.s.wheel.Len())
	}
}
