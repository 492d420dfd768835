package server

import (
	"net"
	"net/netip"
	"time"

	"github.com/tether-gw/tether/internal/proxyhdr"
	"github.com/tether-gw/tether/protocol"
)

// The PROXY layer (see transport.go for the seam and proxyhdr's doc for the policy). On
// a listener in Options.Proxy.On, a connection from a trusted network is held unadmitted
// until its PROXY header has arrived (within proxyHeaderTimeout of the accept): the
// header's client address replaces the socket's in Conn.ip and link.remote, and only then
// is it admitted by the per-IP limits and flapping ban, under the client's address, not
// the balancer's. A connection from anywhere else is admitted at accept under its own
// address; if its first bytes look like a PROXY header it is refused.

// proxyTrusted reports whether ip may send a PROXY header.
func (s *Server) proxyTrusted(ip netip.Addr) bool { return s.opts.proxyTrusted.Contains(ip) }

// readProxy consumes the PROXY header at the start of the connection's bytes and returns
// the bytes after it ("" while the header is incomplete, or when the connection was
// closed). rmu is held.
func (k *link) readProxy(c *Conn, p []byte) []byte {
	s := c.srv
	buf := p
	if k.pre != nil {
		k.pre = append(k.pre, p...)
		buf = k.pre
	}
	h, n, err := proxyhdr.Parse(buf)
	if err == nil && n == 0 {
		if k.pre == nil {
			k.pre = append(make([]byte, 0, len(p)+64), p...)
		}
		return nil
	}
	if err != nil {
		s.metrics.proxyHeader("refused")
		s.log.Debug("PROXY header refused", "conn", c.id, "transport", k.kind.String(), "remote", c.nc.RemoteAddr().String(), "err", err)
		c.closeSilently(protocol.CloseProtocolError, "bad PROXY header")
		return nil
	}
	rest := buf[n:]
	if k.pre != nil {
		rest = append([]byte(nil), rest...) // pre is dropped below
	}
	k.pre, k.proxyWait = nil, false
	if !h.Local {
		c.ip = h.Source.Addr().Unmap()
		k.remote = net.TCPAddrFromAddrPort(netip.AddrPortFrom(c.ip, h.Source.Port()))
	}
	s.metrics.proxyHeader("ok")
	if code, reason := s.limits.admit(c.ip, s.hub.total.Load(), time.Now()); code != 0 {
		s.metrics.refusedCounter(reason).Inc()
		c.closeWith(code, reason) // a raw TCP client gets the CLOSE; the others are not established
		return nil
	}
	c.setFlag(stAdmitted)
	k.established(c)
	return rest
}

// refuseUnexpectedProxy closes a connection from an untrusted source whose first bytes
// look like a PROXY header; it reports whether it did. rmu is held.
func (k *link) refuseUnexpectedProxy(c *Conn, p []byte) bool {
	if !proxyhdr.Looks(p) {
		return false
	}
	c.srv.metrics.proxyHeader("untrusted")
	c.closeWith(protocol.CloseProtocolError, "PROXY header from an untrusted source")
	return true
}
