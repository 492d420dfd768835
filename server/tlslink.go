package server

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/internal/tlsrec"
	"github.com/tether-gw/tether/protocol"
)

// The TLS layer (see transport.go for the seam). netpoll has no TLS, and crypto/tls
// wants a goroutine per connection and keeps ~7 KB of buffers per connection after the
// handshake (measured; issue 10's note). So the handshake, and only the handshake, is
// crypto/tls's: it runs on a handshake goroutine over a tlsrec.Feeder that the reactor
// feeds, and once it is done the goroutine returns, crypto/tls's connection is dropped
// and internal/tlsrec's record layer (two AEADs and their sequence numbers, about 1.6 KB)
// decrypts on the reactor and seals under the write lock, like any other layer.
//
// Handshakes are bounded so that a flood of ClientHellos cannot starve established
// connections or lock out legitimate clients:
//   - a connection gets a handshake goroutine only once its whole first record (the
//     ClientHello) has arrived, so a client that connects and stalls holds no goroutine,
//     only its few buffered bytes until the handshake deadline;
//   - at most Options.MaxTLSHandshakes handshake goroutines exist; further ready
//     connections wait in a FIFO of Options.TLSHandshakeQueue and beyond it are closed at
//     once (result "refused");
//   - the CPU-heavy part (from the ClientHello to the server's first flight: key
//     exchange and signature) runs on at most Options.TLSHandshakeCPUs (half the CPUs
//     by default) at once (cpuSlots), so the reactor and the workers keep the rest;
//   - the whole handshake has Options.HandshakeTimeout from the accept.

// tlsLayer is a TLS connection's state.
type tlsLayer struct {
	// hs is the handshake's input while it runs, nil after (atomic: onClosed closes it
	// without rmu).
	hs atomic.Pointer[tlsrec.Feeder]
	// sess is the record layer, set under rmu and wmu when the handshake succeeds.
	sess *tlsrec.Session
	// hello counts the first record's bytes until it is whole: the header's 5 bytes
	// are kept in head to learn its length.
	head    [5]byte
	helloAt int32
	started bool
	// cpu is set while the handshake holds one of the pool's CPU slots.
	cpu atomic.Bool
}

// tlsRecordHeader is the length of a TLS record header.
const tlsRecordHeader = 5

// accepted sets up the handshake's input.
func (t *tlsLayer) accepted(c *Conn) {
	t.hs.Store(tlsrec.NewFeeder(func(b []byte) error {
		c.srv.handshakes.wrote(c)
		return c.writeTransport(b)
	}, c.nc.LocalAddr(), c.remoteAddr()))
}

// readTLS handles bytes from the socket (after any PROXY header) of a TLS connection.
// rmu is held.
func (k *link) readTLS(c *Conn, p []byte) {
	t := k.tls
	if t.sess == nil {
		k.feedHandshake(c, p)
		return
	}
	k.openTLS(c, p)
}

// feedHandshake passes handshake bytes to the handshake goroutine, starting one once the
// ClientHello record is whole. rmu is held.
func (k *link) feedHandshake(c *Conn, p []byte) {
	t := k.tls
	f := t.hs.Load()
	if f == nil {
		return // the handshake failed; the connection is closing
	}
	switch err := f.Feed(p); {
	case errors.Is(err, tlsrec.ErrHandshakeDone):
		// The handshake goroutine is about to install the record layer; it opens
		// these after the bytes it was left with.
		k.pre = append(k.pre, p...)
		return
	case err != nil:
		c.srv.metrics.handshake(k.kind, "failed")
		c.closeSilently(protocol.CloseProtocolError, "TLS handshake: "+err.Error())
		return
	}
	if t.started {
		return
	}
	for _, b := range p {
		if t.helloAt < tlsRecordHeader {
			t.head[t.helloAt] = b
		}
		t.helloAt++
		if t.helloAt >= tlsRecordHeader && int(t.helloAt) >= tlsRecordHeader+int(t.head[3])<<8|int(t.head[4]) {
			t.started = true
			c.srv.handshakes.submit(c)
			return
		}
	}
}

// openTLS decrypts records and passes their plaintext up. rmu is held.
func (k *link) openTLS(c *Conn, p []byte) {
	err := k.tls.sess.Open(p, func(plain []byte) error {
		k.readAboveTLS(c, plain)
		if c.closing() {
			return errStopDecoding
		}
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errStopDecoding):
	case errors.Is(err, tlsrec.ErrCloseNotify):
		c.closeSilently(protocol.CloseNormal, "client closed (close_notify)")
	default:
		c.srv.metrics.protocolErrors.Inc()
		var ae *tlsrec.AlertError
		if errors.As(err, &ae) {
			c.closeSilently(protocol.CloseNormal, "client sent a TLS alert")
			return
		}
		c.closeWith(protocol.CloseProtocolError, "TLS: "+err.Error())
	}
}

// handshake runs on a handshake goroutine: it drives crypto/tls to the end of the
// handshake, then installs the record layer and opens what followed it.
func (k *link) handshake(c *Conn) {
	s := c.srv
	sess, rest, err := tlsrec.Handshake(k.tls.hs.Load(), s.opts.TLS)
	s.handshakes.wrote(c) // a handshake that failed before writing frees its CPU slot here
	k.rmu.Lock()
	defer k.rmu.Unlock()
	if err != nil {
		k.tls.hs.Store(nil)
		if !c.closing() {
			s.metrics.handshake(k.kind, "failed")
			s.log.Debug("TLS handshake failed", "conn", c.id, "transport", k.kind.String(), "remote", c.remoteAddr().String(), "err", err)
			c.closeSilently(protocol.CloseProtocolError, "TLS handshake failed")
		}
		return
	}
	c.wmu.Lock()
	k.tls.sess = sess
	c.wmu.Unlock()
	k.tls.hs.Store(nil)
	s.metrics.handshake(k.kind, "ok")
	k.established(c)
	later := k.pre
	k.pre = nil
	if len(rest) > 0 {
		k.openTLS(c, rest)
	}
	if len(later) > 0 && !c.closing() {
		k.openTLS(c, later)
	}
}

// tlsInfo describes the connection's TLS session for the Authenticator, nil for a
// transport without TLS. The record layer is installed before HELLO is read, and what it
// knows of the handshake never changes.
func (c *Conn) tlsInfo() *TLSInfo {
	if c.link == nil || c.link.tls == nil || c.link.tls.sess == nil {
		return nil
	}
	in := c.link.tls.sess.Info()
	return &TLSInfo{Version: in.Version, CipherSuite: in.CipherSuite, ServerName: in.ServerName,
		NegotiatedProtocol: in.NegotiatedProtocol, PeerCertificates: in.PeerCertificates}
}

// runTLSIdle drops, every Options.TLSIdleAfter, the cipher state (about 1.5 KB with
// AES-GCM) of the TLS connections that carried nothing since the previous pass; each
// direction's cipher is rebuilt from its key when it next carries a record
// (tlsrec.Session.Idle). A heartbeating client is idle most of each heartbeat interval,
// so it holds its keys rather than its ciphers; a busy one keeps them.
func (s *Server) runTLSIdle() {
	t := time.NewTicker(s.opts.TLSIdleAfter)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.hub.each(func(c *Conn) {
				if c.link != nil && c.link.tls != nil {
					c.link.idleTLS(c)
				}
			})
		}
	}
}

// idleTLS is runTLSIdle's pass over one connection: it holds off the read side (rmu)
// and the write side (wmu) while the record layer drops what it can.
func (k *link) idleTLS(c *Conn) {
	k.rmu.Lock()
	c.wmu.Lock()
	if k.tls.sess != nil {
		k.tls.sess.Idle()
	}
	c.wmu.Unlock()
	k.rmu.Unlock()
}

// closed releases what the link holds when the connection closes: a running handshake
// is woken (its Feeder closed) so its goroutine returns. It must not take rmu (onClosed
// may run on the handshake goroutine, under it).
func (k *link) closed() {
	if k.tls != nil {
		if f := k.tls.hs.Load(); f != nil {
			_ = f.Close()
		}
	}
}

// handshakePool bounds the TLS handshakes (see the top of this file).
type handshakePool struct {
	s        *Server
	slots    chan struct{} // one per running handshake goroutine
	cpuSlots chan struct{} // one per handshake in its CPU-heavy part
	queue    chan *Conn
	done     chan struct{}
	stopOnce sync.Once
	// queued counts connections waiting in queue (tether_tls_handshakes_queued).
	queued atomic.Int64
}

// newHandshakePool returns the pool for s, nil without a TLS or WSS listener.
func newHandshakePool(s *Server) *handshakePool {
	if s.opts.TLSAddr == "" && s.opts.WSSAddr == "" {
		return nil
	}
	return &handshakePool{
		s:        s,
		slots:    make(chan struct{}, s.opts.MaxTLSHandshakes),
		cpuSlots: make(chan struct{}, s.opts.TLSHandshakeCPUs),
		queue:    make(chan *Conn, s.opts.TLSHandshakeQueue),
		done:     make(chan struct{}),
	}
}

// submit gives c, whose ClientHello is whole, a handshake goroutine or a place in the
// queue, or closes it when the queue is full.
func (p *handshakePool) submit(c *Conn) {
	select {
	case p.slots <- struct{}{}:
		go p.run(c)
		return
	default:
	}
	select {
	case p.queue <- c:
		p.queued.Add(1)
	default:
		p.s.metrics.handshake(c.link.kind, "refused")
		c.closeSilently(protocol.CloseServerBusy, "TLS handshake queue full")
		return
	}
	// A goroutine may have finished between the two selects and found the queue empty.
	select {
	case p.slots <- struct{}{}:
		go p.run(nil)
	default:
	}
}

// run handshakes c (if not nil), then whatever waits in the queue, then frees its slot.
func (p *handshakePool) run(c *Conn) {
	for {
		if c != nil {
			p.handshakeOne(c)
		}
		select {
		case c = <-p.queue:
			p.queued.Add(-1)
			continue
		case <-p.done:
		default:
		}
		<-p.slots
		// Re-check: a submit may have queued after the select above and failed to
		// get the slot this goroutine still held.
		if len(p.queue) == 0 {
			return
		}
		select {
		case p.slots <- struct{}{}:
			c = nil
		default:
			return
		}
	}
}

// handshakeOne takes a CPU slot and runs c's handshake; the slot is released when the
// server's first flight is written (wrote), or when the handshake ends.
func (p *handshakePool) handshakeOne(c *Conn) {
	if c.closing() {
		return
	}
	select {
	case p.cpuSlots <- struct{}{}:
	case <-p.done:
		return
	}
	c.link.tls.cpu.Store(true)
	c.link.handshake(c)
}

// wrote releases c's CPU slot if it holds one: its handshake has written its flight and
// waits for the client.
func (p *handshakePool) wrote(c *Conn) {
	if c.link.tls.cpu.CompareAndSwap(true, false) {
		<-p.cpuSlots
	}
}

// stop wakes goroutines waiting for a CPU slot; running handshakes end as their
// connections are closed.
func (p *handshakePool) stop() {
	if p == nil {
		return
	}
	p.stopOnce.Do(func() { close(p.done) })
}
