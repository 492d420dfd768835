package server

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// limits admits or refuses new connections: the total cap, the per-IP cap and the
// connect rate. It is consulted once per accepted socket, so one mutex is enough.
type limits struct {
	maxConns int
	perIP    int     // < 0: unlimited
	rate     float64 // tokens per second; < 0: unlimited

	mu     sync.Mutex
	byIP   map[netip.Addr]int32
	tokens float64
	last   time.Time
}

func newLimits(o *Options) *limits {
	return &limits{
		maxConns: o.MaxConns,
		perIP:    o.MaxConnsPerIP,
		rate:     o.ConnectRate,
		byIP:     make(map[netip.Addr]int32),
		tokens:   o.ConnectRate,
	}
}

// admit decides on a connection from ip when current connections are open, at time
// now. It returns 0 to admit (and counts ip), or the close code and the refusal's
// metric label.
func (l *limits) admit(ip netip.Addr, current int64, now time.Time) (protocol.Code, string) {
	if current >= int64(l.maxConns) {
		return protocol.CodeServerFull, "server_full"
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
			return protocol.CodeRateLimited, "connect_rate"
		}
	}
	if l.perIP >= 0 && l.byIP[ip] >= int32(l.perIP) {
		return protocol.CodeRateLimited, "per_ip"
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

// addrIP extracts the IP of a connection's remote address (the zero Addr if it has none).
func addrIP(a net.Addr) netip.Addr {
	type ipAddr interface{ AddrPort() netip.AddrPort }
	switch v := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case ipAddr:
		return v.AddrPort().Addr().Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
