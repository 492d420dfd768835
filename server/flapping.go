package server

import (
	"hash/maphash"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/tether-gw/tether/internal/netutil"
	"github.com/tether-gw/tether/protocol"
)

// Per-source admission and the flapping ban, in the manner of EMQX's flapping
// detection: each source address (netutil.SourceKey: an IPv4 address, or the /64 of an
// IPv6 one) has a connect-rate token bucket
// (Options.SourceConnectRate) and a strike count: a failed authentication or a connect
// refused by the source's bucket is a strike, and more than Options.FlapThreshold
// strikes within Options.FlapWindow ban the source for Options.FlapBan. While banned,
// its connections are refused at accept with CloseRateLimited (metric reason "banned");
// connections it already has are left alone, and refused connects are not strikes, so
// a ban ends on time.
//
// The state lives in a fixed-size set-associative table allocated by New: a source
// hashes (with a per-process random seed, so an attacker cannot aim at one set) to a set
// of sourceWays entries, each set with its own mutex. Buckets refill lazily from the
// last connect's timestamp, so no goroutine or timer exists per source. When a set is
// full, the least recently seen entry that is not banned is forgotten (a banned one only
// if all are). The trade-off: an attacker with more addresses than the table holds can
// push sources out of it and so reset their counts; the global Options.ConnectRate
// still bounds what all of them together get.

// sourceWays is the table's associativity.
const sourceWays = 4

// sourceEntry is one source's state; times are nanoseconds since sources.base.
type sourceEntry struct {
	key      netip.Addr // the zero Addr marks a free entry
	last     int64      // last connect or strike: bucket refill and eviction
	tokens   float64
	winStart int64 // start of the strike window
	strikes  int32
	banUntil int64 // math.MinInt64: not banned
}

// sourceSet is one set of the table.
type sourceSet struct {
	mu sync.Mutex
	e  [sourceWays]sourceEntry
}

// sources is the per-source table. Its methods are safe for concurrent use.
type sources struct {
	seed      maphash.Seed
	base      time.Time
	sets      []sourceSet
	rate      float64 // tokens per second, burst of one second's worth; < 0: unlimited
	threshold int32   // < 0: no ban
	window    int64
	ban       int64
}

// newSources returns the table for o, or nil when o disables both the per-source rate
// and the ban.
func newSources(o *Options) *sources {
	if o.SourceConnectRate < 0 && o.FlapThreshold < 0 {
		return nil
	}
	n := (o.SourceTableSize + sourceWays - 1) / sourceWays
	if n < 1 {
		n = 1
	}
	return &sources{
		seed:      maphash.MakeSeed(),
		base:      time.Now(),
		sets:      make([]sourceSet, n),
		rate:      o.SourceConnectRate,
		threshold: int32(min(o.FlapThreshold, math.MaxInt32)),
		window:    int64(o.FlapWindow),
		ban:       int64(o.FlapBan),
	}
}

// entry returns ip's entry in set, taking over a free or the least recently seen entry
// if ip has none. The caller holds set.mu.
func (s *sources) entry(set *sourceSet, key netip.Addr, now int64) *sourceEntry {
	victim := 0
	for i := range set.e {
		e := &set.e[i]
		if e.key == key {
			return e
		}
		if evictBefore(e, &set.e[victim], now) {
			victim = i
		}
	}
	set.e[victim] = sourceEntry{key: key, last: now, tokens: s.rate, banUntil: math.MinInt64}
	return &set.e[victim]
}

// evictBefore reports whether a should be taken over before b: free entries first,
// then unbanned before banned, then the least recently seen.
func evictBefore(a, b *sourceEntry, now int64) bool {
	if af, bf := !a.key.IsValid(), !b.key.IsValid(); af != bf {
		return af
	}
	if ab, bb := a.banUntil > now, b.banUntil > now; ab != bb {
		return bb
	}
	return a.last < b.last
}

// lock finds key's set and locks it.
func (s *sources) lock(key netip.Addr) *sourceSet {
	set := &s.sets[maphash.Comparable(s.seed, key)%uint64(len(s.sets))]
	set.mu.Lock()
	return set
}

// connect takes a connect from ip at now. It returns the refusal's metric label
// ("banned", "source_rate") or "" to go on, and whether this connect got the source
// banned.
func (s *sources) connect(ip netip.Addr, now time.Time) (refusal string, banned bool) {
	if !ip.IsValid() {
		return "", false // not an IP socket: nothing to count it under
	}
	key := netutil.SourceKey(ip)
	t := int64(now.Sub(s.base))
	set := s.lock(key)
	defer set.mu.Unlock()
	e := s.entry(set, key, t)
	if e.banUntil > t {
		return "banned", false
	}
	if s.rate < 0 {
		e.last = t
		return "", false
	}
	s.refillLocked(e, t)
	e.last = t
	if e.tokens < 1 {
		return "source_rate", s.strikeLocked(e, t)
	}
	e.tokens--
	return "", false
}

// strike counts a failed authentication from ip at now and reports whether it got the
// source banned.
func (s *sources) strike(ip netip.Addr, now time.Time) bool {
	if !ip.IsValid() {
		return false
	}
	key := netutil.SourceKey(ip)
	t := int64(now.Sub(s.base))
	set := s.lock(key)
	defer set.mu.Unlock()
	e := s.entry(set, key, t)
	if s.rate >= 0 {
		s.refillLocked(e, t) // before last moves, so the refill is not lost
	}
	e.last = t
	return s.strikeLocked(e, t)
}

// refillLocked brings e's bucket up to t (since e.last), capped at one second's worth.
func (s *sources) refillLocked(e *sourceEntry, t int64) {
	e.tokens = min(s.rate, e.tokens+float64(t-e.last)/float64(time.Second)*s.rate)
}

// strikeLocked counts one strike at t and bans the source when it passes the
// threshold; the count starts over after a ban.
func (s *sources) strikeLocked(e *sourceEntry, t int64) bool {
	if s.threshold < 0 || e.banUntil > t {
		return false
	}
	if e.strikes == 0 || t-e.winStart >= s.window {
		e.winStart, e.strikes = t, 0
	}
	e.strikes++
	if e.strikes <= s.threshold {
		return false
	}
	e.banUntil, e.strikes = t+s.ban, 0
	return true
}

// authFailed records a failed authentication of c (an Authenticator refusal, not a busy
// pool): a rate-limited log line, and a strike against its source that may ban it.
func (s *Server) authFailed(c *Conn, code protocol.CloseCode, err error) {
	l := s.limits
	if l.authLog.Allow(code.String()) {
		s.log.Info("authentication failed", "conn", c.id, "transport", c.Transport().String(), "remote", c.remoteAddr().String(), "code", code.String(), "err", err)
	}
	if l.sources != nil && l.sources.strike(c.ip, time.Now()) {
		l.banned(c.ip, "authentication failures")
	}
}

// banned counts and logs (rate-limited) a new ban of ip's source.
func (l *limits) banned(ip netip.Addr, why string) {
	l.bans.Add(1)
	if l.banLog.Allow("banned") {
		l.log.Warn("source banned for flapping: its new connections are refused with RATE_LIMITED",
			"source", netutil.SourceKey(ip).String(), "cause", why, "ban", time.Duration(l.sources.ban),
			"threshold", l.sources.threshold, "window", time.Duration(l.sources.window))
	}
}
