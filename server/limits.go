package server

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/internal/loglimit"
	"github.com/tether-gw/tether/protocol"
)

// limits admits or refuses new connections: the total cap, the per-source connect rate
// and flapping ban (sources, in flapping.go), the global connect rate and the per-IP
// cap. It is consulted once per accepted socket; the global bucket and the per-IP counts
// share one mutex, the per-source state is locked per set of its table.
type limits struct {
	maxConns int
	perIP    int     // < 0: unlimited
	rate     float64 // tokens per second; < 0: unlimited

	sources *sources // nil: no per-source limit and no ban
	// authLog and banLog rate-limit the "authentication failed" and "source banned"
	// lines (see authFailed and banned), which an attacker triggers at will.
	log     *slog.Logger
	authLog *loglimit.Limiter
	banLog  *loglimit.Limiter
	// bans counts sources banned since start (tether_source_bans_total).
	bans atomic.Uint64

	mu     sync.Mutex
	byIP   map[netip.Addr]int32
	tokens float64
	last   time.Time
}

// newLimits returns the limits of o, which has had its defaults applied.
func newLimits(o *Options) *limits {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	l := &limits{
		maxConns: o.MaxConns,
		perIP:    o.MaxConnsPerIP,
		rate:     o.ConnectRate,
		byIP:     make(map[netip.Addr]int32),
		tokens:   o.ConnectRate,
		sources:  newSources(o),
		log:      log,
		authLog: loglimit.New(log, loglimit.Options{
			Summary: "authentication failures not logged (rate-limited; tether_auth_failures_total counts every one)",
		}),
		banLog: loglimit.New(log, loglimit.Options{
			Summary: "source bans not logged (rate-limited; tether_source_bans_total counts every one)",
		}),
	}
	return l
}

// admit decides on a connection from ip when current connections are open, at time
// now. It returns 0 to admit (and counts ip), or the close code and the refusal's
// metric label. The per-source checks come before the global bucket, so a source over
// its own rate (or banned) spends none of the budget other sources share.
func (l *limits) admit(ip netip.Addr, current int64, now time.Time) (protocol.CloseCode, string) {
	if current >= int64(l.maxConns) {
		return protocol.CloseServerFull, "server_full"
	}
	if l.sources != nil {
		verdict, banned := l.sources.connect(ip, now)
		if banned {
			l.banned(ip, "connect rate")
		}
		if verdict != "" {
			return protocol.CloseRateLimited, verdict
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate >= 0 {
		if !l.last.IsZero() {
			l.tokens += now.Sub(l.last).Seconds() * l.rate
			if l.tokens > l.rate {
				l.tokens = l.rate
			}
		}
		l.last = now
		if l.tokens < 1 {
			return protocol.CloseRateLimited, "connect_rate"
		}
	}
	if l.perIP >= 0 && l.byIP[ip] >= int32(l.perIP) {
		return protocol.CloseRateLimited, "per_ip"
	}
	if l.rate >= 0 {
		l.tokens--
	}
	l.byIP[ip]++
	return 0, ""
}

// release forgets one connection from ip.
func (l *limits) release(ip netip.Addr) {
	l.mu.Lock()
	if n := l.byIP[ip] - 1; n > 0 {
		l.byIP[ip] = n
	} else {
		delete(l.byIP, ip)
	}
	l.mu.Unlock()
}

// close writes the pending summaries of the rate-limited lines (at Shutdown and Close),
// so the last interval's counts are not lost.
func (l *limits) close() {
	l.authLog.Close()
	l.banLog.Close()
}
