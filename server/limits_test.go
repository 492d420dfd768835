package server

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// TestPerIPLimit: the connection over the per-IP cap is refused with RateLimited; once
// one leaves, a new one is admitted.
func TestPerIPLimit(t *testing.T) {
	s := startServer(t, func(o *Options) { o.MaxConnsPerIP = 2 })
	a := dialRaw(t, s)
	a.hello("u1", "a", "ios")
	b := dialRaw(t, s)
	b.hello("u2", "b", "ios")
	c := dialRaw(t, s)
	c.expectClosed(protocol.OpClose, protocol.CodeRateLimited)
	a.c.Close()
	waitFor(t, "slot freed", func() bool { return s.Stats().Connections == 1 })
	d := dialRaw(t, s)
	d.hello("u3", "d", "ios")
}

// TestMaxConns: the connection over the server cap is refused with ServerFull.
func TestMaxConns(t *testing.T) {
	s := startServer(t, func(o *Options) { o.MaxConns = 1 })
	a := dialRaw(t, s)
	a.hello("u1", "a", "ios")
	b := dialRaw(t, s)
	b.expectClosed(protocol.OpClose, protocol.CodeServerFull)
}

// TestConnectRateLimiter drives the token bucket with an explicit clock.
func TestConnectRateLimiter(t *testing.T) {
	l := newLimits(&Options{MaxConns: 100, MaxConnsPerIP: -1, ConnectRate: 2})
	ip := netip.MustParseAddr("10.0.0.1")
	t0 := time.Unix(1000, 0)
	check := func(at time.Duration, want protocol.Code) {
		t.Helper()
		if got, _ := l.admit(ip, 0, t0.Add(at)); got != want {
			t.Fatalf("admit at %v = %v, want %v", at, got, want)
		}
	}
	check(0, 0)                                           // burst of 2
	check(0, 0)                                           //
	check(0, protocol.CodeRateLimited)                    // bucket empty
	check(400*time.Millisecond, protocol.CodeRateLimited) // 0.8 tokens
	check(500*time.Millisecond, 0)                        // 1.0 token
	check(10*time.Second, 0)                              // refilled, capped at burst 2
	check(10*time.Second, 0)                              //
	check(10*time.Second, protocol.CodeRateLimited)
}

// TestConnectRateOverSocket: with a rate of 1/s, the second immediate connection is
// refused with RateLimited.
func TestConnectRateOverSocket(t *testing.T) {
	s := startServer(t, func(o *Options) { o.ConnectRate = 1 })
	a := dialRaw(t, s)
	a.hello("u1", "a", "ios")
	b := dialRaw(t, s)
	b.expectClosed(protocol.OpClose, protocol.CodeRateLimited)
}

// TestOptionsValidation: bad options are refused with a clear error.
func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no authenticator", Options{}},
		{"negative duration", Options{Authenticator: InsecureAuthenticator{}, Heartbeat: -1}},
		{"heartbeat under two ticks", Options{Authenticator: InsecureAuthenticator{}, Heartbeat: time.Millisecond, Tick: time.Millisecond}},
		{"frame too large", Options{Authenticator: InsecureAuthenticator{}, MaxFrame: protocol.MaxFrameLimit + 1}},
		{"bad policy", Options{Authenticator: InsecureAuthenticator{}, DevicePolicy: 9}},
	} {
		if _, err := tc.o.withDefaults(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	o, err := Options{Authenticator: InsecureAuthenticator{}}.withDefaults()
	if err != nil || o.Addr != ":7000" || o.Heartbeat != 25*time.Second || o.MaxFrame != protocol.DefaultMaxFrame {
		t.Fatalf("defaults = %+v, %v", o, err)
	}
}
