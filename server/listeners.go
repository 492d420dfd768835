package server

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/cloudwego/netpoll"

	"github.com/tether-gw/tether/internal/netutil"
	"github.com/tether-gw/tether/protocol"
)

// listener is one client listener: its transport, whether it expects PROXY headers, and
// its netpoll listener and event loop. Each listener has its own event loop, all on
// netpoll's shared pollers, and all feed the one hub.
type listener struct {
	s     *Server
	kind  Transport
	addr  string
	proxy bool
	ln    netpoll.Listener
	el    netpoll.EventLoop
}

// listenerSpecs returns the listeners o asks for, raw TCP first.
func (o *Options) listenerSpecs() []*listener {
	var out []*listener
	add := func(kind Transport, addr string) {
		if addr == "" || addr == "-" {
			return
		}
		out = append(out, &listener{kind: kind, addr: addr, proxy: o.Proxy.on(kind)})
	}
	add(TransportTCP, o.Addr)
	add(TransportTLS, o.TLSAddr)
	add(TransportWS, o.WSAddr)
	add(TransportWSS, o.WSSAddr)
	return out
}

// listen opens l's socket and event loop.
func (l *listener) listen() error {
	s := l.s
	ln, err := netpoll.CreateListener("tcp", l.addr)
	if err != nil {
		return fmt.Errorf("server: cannot listen for %s on %s: %w", l.kind, l.addr, err)
	}
	l.ln = s.reserveFD(ln, l.kind) // fdreserve_linux.go: answer SERVER_FULL while out of descriptors
	el, err := netpoll.NewEventLoop(s.onRequest,
		netpoll.WithOnConnect(l.onConnect),
		netpoll.WithWriteTimeout(s.opts.WriteTimeout),
	)
	if err != nil {
		ln.Close()
		return fmt.Errorf("server: cannot create event loop: %w", err)
	}
	l.el = el
	return nil
}

// onConnect is netpoll's accept callback: it admits or refuses the socket and starts its
// deadline (the transport's handshake deadline, or the auth deadline for raw TCP).
// A connection that will send a PROXY header is admitted once the header names the
// client (proxylink.go).
func (l *listener) onConnect(ctx context.Context, nc netpoll.Connection) context.Context {
	s := l.s
	s.metrics.connsTotal.Inc()
	s.metrics.acceptedBy[l.kind].Inc()
	c := &Conn{srv: s, nc: nc, fd: nc.(netpoll.Conn).Fd(), id: s.nextID.Add(1) | uint64(s.nodeID)<<nodeShift, link: newLink(l)}
	c.ip = netutil.AddrIP(nc.RemoteAddr())
	c.timer.SetOwner(c)
	if s.draining.Load() {
		s.refuse(c, protocol.CloseGoingAway, "draining")
		return ctx
	}
	deferAdmit := c.link != nil && c.link.proxyWait && l.s.proxyTrusted(c.ip)
	if !deferAdmit {
		if c.link != nil && c.link.proxyWait {
			// An untrusted source: no header expected, and one is refused (proxylink.go).
			c.link.proxyWait, c.link.proxyCheck = false, true
		}
		if code, reason := s.limits.admit(c.ip, s.hub.total.Load(), time.Now()); code != 0 {
			s.refuse(c, code, reason)
			return ctx
		}
		c.setFlag(stAdmitted)
	}
	s.hub.addConn(c)
	s.transportOpen[l.kind].Add(1)
	if err := nc.AddCloseCallback(c.onClosed); err != nil {
		// Already closed by the peer: undo.
		c.markClosed()
		s.hub.remove(c, false)
		s.transportOpen[l.kind].Add(-1)
		if c.state()&stAdmitted != 0 {
			s.limits.release(c.ip)
		}
		return ctx
	}
	timeout := s.opts.AuthTimeout
	if c.link != nil && c.link.handshaking() {
		timeout = s.opts.HandshakeTimeout
		if c.link.proxyWait && timeout > proxyHeaderTimeout {
			timeout = proxyHeaderTimeout
		}
	}
	s.wheel.Schedule(&c.timer, s.deadline(timeout))
	if c.link != nil {
		c.link.accepted(c)
	}
	return &connCtx{Context: ctx, c: c}
}

// accepted starts what a transport does as soon as a connection is accepted (the TLS
// layer's handshake state).
func (k *link) accepted(c *Conn) {
	if k.tls != nil {
		k.tls.accepted(c)
	}
}

// ListenerAddr returns the address of the listener for transport t, or nil if it is not
// configured or the server is not started.
func (s *Server) ListenerAddr(t Transport) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lns {
		if l.kind == t && l.ln != nil {
			return l.ln.Addr()
		}
	}
	return nil
}
