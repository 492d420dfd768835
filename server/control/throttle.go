package control

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tether-gw/tether/internal/netutil"
)

// authThrottle slows down secret guessing: it counts failed AUTHs per source address
// and, from the limit-th failure on, locks the source out for a time that doubles with
// every further failure, up to a maximum. A locked-out source's connections are refused
// before AUTH, so its guesses are not even checked; a success (after the lock-out)
// forgets the source. Other sources are unaffected. IPv6 sources are grouped by /64,
// which is what one host usually holds.
//
// The table is bounded (maxAuthSources entries): when it is full, entries whose lock-out
// has ended and whose last failure is older than authForget are dropped first, then the
// entry locked out the least. The core takes now explicitly, so tests drive it with
// made-up times. Safe for concurrent use.
type authThrottle struct {
	limit    int           // failures before the first lock-out; 0 disables the throttle
	base     time.Duration // first lock-out
	max      time.Duration // longest lock-out
	capacity int

	mu      sync.Mutex
	sources map[netip.Addr]*authSource
}

// authSource is one source address's failure record.
type authSource struct {
	fails int
	last  time.Time // last failure
	until time.Time // locked out before this time
}

const (
	// maxAuthSources bounds the throttle's table (about 100 bytes per entry).
	maxAuthSources = 4096
	// authForget is how long after its last failure, with no lock-out running, a
	// source's record is forgotten.
	authForget = 15 * time.Minute
)

func newAuthThrottle(limit int, base, max time.Duration) *authThrottle {
	return &authThrottle{limit: limit, base: base, max: max, capacity: maxAuthSources, sources: make(map[netip.Addr]*authSource)}
}

// sourceKey returns the throttle's key for a remote address (netutil.SourceKey: the
// IPv4 address, or the /64 of an IPv6 address). ok is false for an address that is not
// IP (a test pipe).
func sourceKey(remote net.Addr) (key netip.Addr, ok bool) {
	ip := netutil.AddrIP(remote)
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	return netutil.SourceKey(ip), true
}

// lockedOut reports whether source may not try a secret at now, and until when.
func (t *authThrottle) lockedOut(source netip.Addr, now time.Time) (until time.Time, locked bool) {
	if t.limit <= 0 {
		return time.Time{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sources[source]
	if s == nil || !now.Before(s.until) {
		return time.Time{}, false
	}
	return s.until, true
}

// failed records a failed AUTH from source at now and returns the lock-out it starts
// (0 while below the limit).
func (t *authThrottle) failed(source netip.Addr, now time.Time) time.Duration {
	if t.limit <= 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sources[source]
	if s != nil && now.Before(s.until) {
		// Already locked out (an AUTH that was in flight when the lock-out began):
		// counted, but it does not extend the lock-out again.
		s.fails++
		s.last = now
		return 0
	}
	if s != nil && now.Sub(s.last) > authForget {
		s.fails = 0
	}
	if s == nil {
		if len(t.sources) >= t.capacity {
			t.evict(now)
		}
		s = &authSource{}
		t.sources[source] = s
	}
	s.fails++
	s.last = now
	if s.fails < t.limit {
		return 0
	}
	d := t.base
	for i := s.fails - t.limit; i > 0 && d < t.max; i-- {
		d *= 2
	}
	d = min(d, t.max)
	s.until = now.Add(d)
	return d
}

// succeeded forgets source after a successful AUTH.
func (t *authThrottle) succeeded(source netip.Addr) {
	if t.limit <= 0 {
		return
	}
	t.mu.Lock()
	delete(t.sources, source)
	t.mu.Unlock()
}

// evict makes room for one entry; t.mu is held. It drops every forgotten entry, and if
// none was, the entry whose lock-out ends first.
func (t *authThrottle) evict(now time.Time) {
	var (
		victim netip.Addr
		first  time.Time
	)
	for k, s := range t.sources {
		if !now.Before(s.until) && now.Sub(s.last) > authForget {
			delete(t.sources, k)
			continue
		}
		if first.IsZero() || s.until.Before(first) {
			victim, first = k, s.until
		}
	}
	if len(t.sources) >= t.capacity {
		delete(t.sources, victim)
	}
}

// Throttle is the AUTH throttle's lock-out rules for another front end that checks a
// shared credential (the HTTP API's key, package server/httpapi), so both lock out
// guessers alike. Sources are IP addresses, grouped as the control port groups them
// (netutil.SourceKey). Safe for concurrent use.
type Throttle struct{ t *authThrottle }

// NewThrottle returns a throttle locking a source out for lockout after limit
// failures, doubling per further failure up to lockoutMax; limit 0 or less disables it.
func NewThrottle(limit int, lockout, lockoutMax time.Duration) *Throttle {
	return &Throttle{t: newAuthThrottle(limit, lockout, lockoutMax)}
}

// LockedOut reports whether ip may not try a credential at now, and until when.
func (t *Throttle) LockedOut(ip netip.Addr, now time.Time) (until time.Time, locked bool) {
	return t.t.lockedOut(netutil.SourceKey(ip), now)
}

// Failed records a failed check from ip at now and returns the lock-out it starts (0
// while below the limit).
func (t *Throttle) Failed(ip netip.Addr, now time.Time) time.Duration {
	return t.t.failed(netutil.SourceKey(ip), now)
}

// Succeeded forgets ip after a successful check.
func (t *Throttle) Succeeded(ip netip.Addr) { t.t.succeeded(netutil.SourceKey(ip)) }
