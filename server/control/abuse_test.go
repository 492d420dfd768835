package control

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// dialFrom opens a TCP connection to addr from the loopback address ip (127.0.0.0/8
// is all loopback), closed when the test ends.
func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serviceFrom dials a service from the loopback address ip with secret.
func (g *gateway) serviceFrom(ip, secret string) (*service.Service, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	s, err := service.Dial(ctxTimeout(g.t, 5*time.Second), g.port.Addr().String(), service.Options{
		Secret: secret, Logger: testLogger(),
		Dialer: func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
	})
	if err == nil {
		g.t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// closedWith reads c until the gateway closes it within timeout and returns the code of
// its last CLOSE; ok is false if c is still open (a read timed out) or got no CLOSE.
func closedWith(c net.Conn, timeout time.Duration) (code protocol.CloseCode, ok bool) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return 0, false
	}
	for len(b) > 0 {
		f, n, err := protocol.Parse(b, protocol.MaxFrameLimit)
		if err != nil || n == 0 {
			return 0, false
		}
		b = b[n:]
		if f.Op == protocol.OpClose {
			var cl protocol.Close
			if cl.Decode(f.Body) == nil {
				code, ok = cl.Code, true
			}
		}
	}
	return code, ok
}

// unauthenticated returns how many control connections have not authenticated.
func (g *gateway) unauthenticated() int {
	g.port.mu.Lock()
	defer g.port.mu.Unlock()
	return len(g.port.unauth)
}

// Idle unauthenticated connections cannot lock services out: with the unauthenticated
// cap full, a service still authenticates, and the connection that makes room is the
// oldest of the source holding the most of them, not one of another source.
func TestUnauthenticatedCapLetsServicesIn(t *testing.T) {
	const limit = 8
	g := startGateway(t, func(o *Options) { o.MaxUnauthenticated = limit; o.AuthTimeout = time.Minute })
	addr := g.port.Addr().String()
	other := dialFrom(t, "127.0.0.3", addr) // one idle connection from another host
	waitFor(t, "first idle connection registered", func() bool { return g.unauthenticated() == 1 })
	flood := make([]net.Conn, 0, limit-1)
	for range limit - 1 {
		flood = append(flood, dialFrom(t, "127.0.0.2", addr))
	}
	waitFor(t, "unauthenticated cap full", func() bool { return g.unauthenticated() == limit })

	// A service (from 127.0.0.1) authenticates although the cap is full.
	svc, err := g.serviceFrom("127.0.0.1", testSecret)
	if err != nil {
		t.Fatalf("service refused with the unauthenticated cap full: %v", err)
	}
	if _, err := svc.Stats(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The flooding host's oldest connection made room; the other host's is untouched.
	if code, ok := closedWith(flood[0], 5*time.Second); !ok || code != protocol.CloseServerFull {
		t.Fatalf("oldest flood connection: closed %v with %v, want SERVER_FULL", ok, code)
	}
	if _, closed := closedWith(other, 100*time.Millisecond); closed {
		t.Fatal("the other host's idle connection was evicted")
	}
	for _, c := range flood[1:] {
		if _, closed := closedWith(c, 10*time.Millisecond); closed {
			t.Fatal("a newer flood connection was evicted")
		}
	}
	if v := g.metric(`tether_control_rejected_total{reason="too_many_unauthenticated"}`); v != 1 {
		t.Fatalf("too_many_unauthenticated = %v, want 1", v)
	}
	// A flood that keeps connecting evicts its own connections, never the service's
	// (authenticated, so no longer counted) or the other host's: after the service
	// authenticated, limit-1 are unauthenticated, so the first new one fills the cap
	// and each later one evicts.
	for range 3 * limit {
		dialFrom(t, "127.0.0.2", addr)
	}
	g.waitMetric(`tether_control_rejected_total{reason="too_many_unauthenticated"}`, 3*limit)
	if _, closed := closedWith(other, 10*time.Millisecond); closed {
		t.Fatal("the other host's idle connection was evicted by the flood")
	}
	if _, err := svc.Stats(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("service lost during the flood: %v", err)
	}
}

// MaxServices caps authenticated connections only: the one past it is refused
// SERVER_FULL at AUTH, and a place freed is taken again.
func TestMaxServices(t *testing.T) {
	g := startGateway(t, func(o *Options) { o.MaxServices = 2 })
	mustService := func() *service.Service {
		t.Helper()
		s, err := g.serviceFrom("127.0.0.1", testSecret)
		if err != nil {
			t.Fatalf("service: %v", err)
		}
		return s
	}
	a := mustService()
	mustService()
	_, err := service.Dial(ctxTimeout(t, 5*time.Second), g.port.Addr().String(), service.Options{Secret: testSecret})
	var ce *service.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseServerFull {
		t.Fatalf("third service: %v, want CLOSE SERVER_FULL", err)
	}
	if v := g.metric(`tether_control_rejected_total{reason="too_many_services"}`); v != 1 {
		t.Fatalf("too_many_services = %v, want 1", v)
	}
	a.Close()
	waitFor(t, "a place freed", func() bool { return g.port.services() == 1 })
	mustService()
}

// Failed AUTHs lock their source out with back-off; a service from another address is
// unaffected, the right secret from the locked-out address is refused until the
// lock-out ends and accepted after it.
func TestAuthThrottleLocksOutSource(t *testing.T) {
	const lockout = 2 * time.Second
	g := startGateway(t, func(o *Options) { o.MaxAuthFailures = 3; o.AuthLockout = lockout })
	addr := g.port.Addr().String()
	guess, _ := wire.AppendFrame(nil, OpAuth, 1, &wire.Auth{Secret: "wrong-guess-0123456789"}, nil)
	try := func() protocol.CloseCode {
		t.Helper()
		c := dialFrom(t, "127.0.0.2", addr)
		if _, err := c.Write(guess); err != nil {
			t.Fatal(err)
		}
		code, ok := closedWith(c, 5*time.Second)
		if !ok {
			t.Fatal("guess not answered with CLOSE")
		}
		return code
	}
	for i := range 3 {
		if code := try(); code != protocol.CloseInvalidToken {
			t.Fatalf("guess %d: CLOSE %v, want INVALID_TOKEN", i+1, code)
		}
	}
	locked := time.Now()
	// Locked out: refused before AUTH, the guess not even checked.
	if code := try(); code != protocol.CloseRateLimited {
		t.Fatalf("guess during the lock-out: CLOSE %v, want RATE_LIMITED", code)
	}
	if v := g.metric(`tether_control_auth_failures_total{reason="bad_secret"}`); v != 3 {
		t.Fatalf("bad_secret = %v, want 3 (the locked-out guess must not be checked)", v)
	}
	// Another address is unaffected.
	if _, err := g.serviceFrom("127.0.0.1", testSecret); err != nil {
		t.Fatalf("service from another address: %v", err)
	}
	// The right secret from the locked-out address waits for the lock-out to end.
	_, err := g.serviceFrom("127.0.0.2", testSecret)
	var ce *service.CloseError
	if time.Since(locked) < lockout && (!errors.As(err, &ce) || ce.Code != protocol.CloseRateLimited || ce.Terminal()) {
		t.Fatalf("right secret during the lock-out: %v, want CLOSE RATE_LIMITED (not terminal)", err)
	}
	waitFor(t, "right secret accepted after the lock-out", func() bool {
		_, err := g.serviceFrom("127.0.0.2", testSecret)
		return err == nil
	})
	if time.Since(locked) < lockout {
		t.Fatalf("accepted %v after the lock-out began, before its %v ended", time.Since(locked), lockout)
	}
	if g.metric(`tether_control_rejected_total{reason="auth_locked_out"}`) < 1 {
		t.Fatal("auth_locked_out not counted")
	}
	// The success forgot the source: one more wrong guess is INVALID_TOKEN, not a
	// lock-out.
	if code := try(); code != protocol.CloseInvalidToken {
		t.Fatalf("guess after the success: CLOSE %v, want INVALID_TOKEN", code)
	}
}

// Failed AUTHs are logged a few at a time, then summarised per interval: every failure
// shows up exactly once, as its own line or in a summary's count.
func TestAuthFailureLogRateLimited(t *testing.T) {
	var logs testkit.LockedBuffer
	g := startGateway(t, func(o *Options) {
		o.MaxAuthFailures = -1 // no throttle: this test floods
		o.logInterval = 300 * time.Millisecond
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	const n = 60
	guess, _ := wire.AppendFrame(nil, OpAuth, 1, &wire.Auth{Secret: "wrong"}, nil)
	start := time.Now()
	for range n {
		c, err := net.Dial("tcp", g.port.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(guess)
		closedWith(c, 5*time.Second)
		c.Close()
	}
	elapsed := time.Since(start)
	summaryRE := regexp.MustCompile(`more control AUTH failures.* suppressed=(\d+)`)
	count := func() (lines, summarised int) {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `msg="control AUTH failed"`) {
				lines++
			}
			if m := summaryRE.FindStringSubmatch(l); m != nil {
				k, _ := strconv.Atoi(m[1])
				summarised += k
			}
		}
		return lines, summarised
	}
	waitFor(t, "every failure logged or summarised", func() bool {
		l, s := count()
		return l+s == n
	})
	lines, _ := count()
	intervals := int(elapsed/(300*time.Millisecond)) + 1
	if lines > authLogBurst*intervals || lines >= n {
		t.Fatalf("%d lines for %d failures in %v (%d intervals), want at most %d", lines, n, elapsed, intervals, authLogBurst*intervals)
	}
	if !bytes.Contains([]byte(logs.String()), []byte("suppressed=")) {
		t.Fatal("no summary line")
	}
}
