package control

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// The throttle's rules, on a made-up clock: limit failures lock a source out for base,
// each further failure doubles the lock-out up to max, other sources are unaffected, a
// success forgets the source, and so do authForget minutes of quiet.
func TestAuthThrottleRules(t *testing.T) {
	th := newAuthThrottle(3, time.Second, 8*time.Second)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	t0 := time.Unix(1_000_000, 0)
	locked := func(src netip.Addr, at time.Time) bool {
		_, l := th.lockedOut(src, at)
		return l
	}
	// Two failures: no lock-out yet.
	for i := range 2 {
		if d := th.failed(a, t0); d != 0 {
			t.Fatalf("failure %d locked out for %v", i+1, d)
		}
	}
	if locked(a, t0) {
		t.Fatal("locked out below the limit")
	}
	// The third locks a out for 1s; b is free.
	if d := th.failed(a, t0); d != time.Second {
		t.Fatalf("third failure: lock-out %v, want 1s", d)
	}
	if !locked(a, t0.Add(999*time.Millisecond)) || locked(a, t0.Add(time.Second)) || locked(b, t0) {
		t.Fatal("lock-out window wrong, or b affected")
	}
	// A failure during the lock-out (in flight when it began) does not extend it.
	if d := th.failed(a, t0.Add(500*time.Millisecond)); d != 0 || locked(a, t0.Add(time.Second)) {
		t.Fatalf("failure during the lock-out extended it (%v)", d)
	}
	// After it, each failure doubles the lock-out: 4 failures so far, then 5, 6, 7.
	now := t0.Add(time.Second)
	for _, want := range []time.Duration{4 * time.Second, 8 * time.Second, 8 * time.Second} {
		d := th.failed(a, now)
		if d != want {
			t.Fatalf("lock-out %v, want %v", d, want)
		}
		now = now.Add(d)
	}
	// A success forgets a: the next failure starts counting from one.
	th.succeeded(a)
	if d := th.failed(a, now); d != 0 {
		t.Fatalf("failure after a success locked out for %v", d)
	}
	// Quiet for longer than authForget forgets the count too.
	th.failed(b, now)
	th.failed(b, now)
	if d := th.failed(b, now.Add(authForget+time.Second)); d != 0 {
		t.Fatalf("failure after a quiet period locked out for %v", d)
	}
	// Disabled throttle.
	off := newAuthThrottle(-1, time.Second, time.Second)
	for range 10 {
		off.failed(a, t0)
	}
	if _, l := off.lockedOut(a, t0); l {
		t.Fatal("disabled throttle locked out")
	}
}

// The table stays bounded: when full, forgotten entries go first, then the one whose
// lock-out ends first; a locked-out source survives a flood of new sources as long as
// others end sooner.
func TestAuthThrottleBounded(t *testing.T) {
	th := newAuthThrottle(1, time.Second, time.Hour)
	th.capacity = 4
	t0 := time.Unix(1_000_000, 0)
	long := netip.MustParseAddr("10.9.9.9")
	now := t0
	for i := range 5 { // 1, 2, 4, 8, then 16s from now
		if d := th.failed(long, now); i < 4 {
			now = now.Add(d)
		}
	}
	for i := range 100 {
		th.failed(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now) // 1s each
		if len(th.sources) > th.capacity {
			t.Fatalf("table grew to %d", len(th.sources))
		}
	}
	if _, l := th.lockedOut(long, now.Add(10*time.Second)); !l {
		t.Fatal("the longest lock-out was evicted first")
	}
}

// Sources are IPv4 addresses and IPv6 /64s; a pipe has none.
func TestSourceKey(t *testing.T) {
	f := func(addr net.Addr, want string) {
		t.Helper()
		k, ok := sourceKey(addr)
		if got := k.String(); ok != (want != "") || (ok && got != want) {
			t.Fatalf("sourceKey(%v) = %s, %v; want %q", addr, got, ok, want)
		}
	}
	f(&net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 1}, "127.0.0.2")
	f(&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 1}, "10.1.2.3")
	f(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 1}, "2001:db8:1:2::")
	f(&net.UnixAddr{Name: "x"}, "")
}
