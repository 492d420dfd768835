package server

import (
	"fmt"

	"github.com/tether-gw/tether/protocol"
	"net"
	"strings"
	"sync"
)

// # The transport seam
//
// A connection is two things. The session (Conn: its state word, identity, rooms,
// queues, QoS1 window and deadline) is written once, in this package's other files, and
// knows nothing of how its bytes travel. The transport says how they do: which bytes in
// are tether stream bytes, how tether frames become bytes on the socket, and what goes on
// the wire when the connection closes. Raw TCP is the identity and has no per-connection
// transport state at all (Conn.link is nil, and the read and write paths test only that
// pointer), so it keeps its cost. Every other transport is a stack of optional layers in
// a link, in this fixed order from the socket up:
//
//	PROXY header (proxylink.go)  consumed once, before anything else; sets the client address
//	TLS (tlslink.go)             handshake by crypto/tls on a bounded handshake goroutine,
//	                             then an own record layer (internal/tlsrec) on the reactor
//	WebSocket (wslink.go)        upgrade request, then RFC 6455 frames (internal/wsproto)
//	session                      Conn.onBytes: the tether frame stream
//
// The seam is four calls, all of this file:
//
//	in      link.read(c, p)            bytes from the socket, on the read path; each layer
//	                                   passes what is above it upwards; the top calls
//	                                   Conn.onBytes with tether stream bytes
//	frame   link.frameLocked(frames)   stateless framing of outgoing tether frames (a
//	                                   WebSocket message header); applied when a write is
//	                                   made, whether it goes out at once or is queued
//	seal    link.sealLocked(bufs)      stateful encoding just before bytes reach the socket
//	                                   (TLS records, in sequence order); applied on the fast
//	                                   path and by the flusher when it takes a batch
//	final   link.finalLocked(frame)    the last bytes: the CLOSE frame framed and sealed,
//	                                   then the transport's own close (WebSocket close
//	                                   frame with the same code, TLS close_notify)
//
// frame and seal run under Conn.wmu, so sealing happens in the order bytes reach the
// socket. A transport that needs bytes of its own on the wire (handshake records, the
// upgrade response, a pong) writes them with Conn.writeTransport, which skips framing.
// Auth, heartbeats, rooms, QoS1 and resume, limits, drain and metrics are the session's
// and so every transport has them; what a transport adds is its handshake, counted in
// tether_transport_handshakes_total{transport,result}, and its label on the connection
// gauges and logs.
//
// A layer's handshake (PROXY header, TLS, upgrade) runs under Options.HandshakeTimeout,
// held by the connection's one timer; when it completes the timer is re-armed with the
// AuthTimeout for HELLO. A connection closed before its transport is established gets no
// frame at all (there is no channel to carry one): the client sees the connection end
// and backs off as after any failed attempt.

// Transport is how a connection's bytes travel. Metrics and logs carry its String as the
// "transport" label.
type Transport uint8

const (
	// TransportTCP is tether frames straight on TCP (Options.Addr).
	TransportTCP Transport = iota
	// TransportTLS is tether frames in TLS (Options.TLSAddr).
	TransportTLS
	// TransportWS is tether frames in binary WebSocket messages (Options.WSAddr).
	TransportWS
	// TransportWSS is WebSocket over TLS (Options.WSSAddr).
	TransportWSS
	numTransports
)

// String returns "tcp", "tls", "ws" or "wss".
func (t Transport) String() string {
	switch t {
	case TransportTCP:
		return "tcp"
	case TransportTLS:
		return "tls"
	case TransportWS:
		return "ws"
	case TransportWSS:
		return "wss"
	}
	return fmt.Sprintf("Transport(%d)", uint8(t))
}

// ParseTransport parses "tcp", "tls", "ws" or "wss".
func ParseTransport(s string) (Transport, error) {
	for t := TransportTCP; t < numTransports; t++ {
		if s == t.String() {
			return t, nil
		}
	}
	return 0, fmt.Errorf("server: unknown transport %q (want tcp, tls, ws or wss)", s)
}

// ParseTransports parses a comma-separated list of transports ("tcp,ws"); "" is none.
func ParseTransports(list string) ([]Transport, error) {
	var out []Transport
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		t, err := ParseTransport(f)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (t Transport) secure() bool    { return t == TransportTLS || t == TransportWSS }
func (t Transport) websocket() bool { return t == TransportWS || t == TransportWSS }

// Transport returns how the connection's bytes travel.
func (c *Conn) Transport() Transport {
	if c.link == nil {
		return TransportTCP
	}
	return c.link.kind
}

// link is a connection's transport state (see the seam above); nil for raw TCP
// without PROXY. Its layers are set up at accept and dropped as they finish (the PROXY
// and handshake state), so an established connection keeps only what it needs: the
// record layer for TLS, the frame decoder's few bytes for WebSocket.
type link struct {
	kind Transport
	lst  *listener
	// remote is the client's address carried by a PROXY header; nil: the socket's.
	remote net.Addr

	// rmu serialises the read side: the reactor's read callback and, for TLS, the
	// handshake goroutine handing over the bytes that followed the handshake. It is
	// taken only on the read path and by the handshake goroutine, never under another
	// lock of ours (doc.go's table: above userShard.mu with the read path's locks).
	rmu sync.Mutex
	// pre holds bytes of a unit that must be whole before it is parsed: a PROXY header,
	// an HTTP upgrade request. nil otherwise.
	pre []byte
	// proxyWait is set while the PROXY header of a trusted source is awaited;
	// proxyCheck while the first bytes of an untrusted source on a PROXY listener are,
	// to refuse a header it has no right to send.
	proxyWait, proxyCheck bool

	tls *tlsLayer // nil unless kind.secure()
	ws  *wsLayer  // nil unless kind.websocket()

	// sealedTail is how many entries at the end of Conn.out are already sealed (a
	// closing connection's final bytes), which the flusher must not seal again; guarded
	// by wmu.
	sealedTail int
}

// newLink returns the transport state of a connection accepted on l, or nil when it
// needs none (raw TCP without PROXY).
func newLink(l *listener) *link {
	if l.kind == TransportTCP && !l.proxy {
		return nil
	}
	k := &link{kind: l.kind, lst: l, proxyWait: l.proxy}
	if l.kind.secure() {
		k.tls = &tlsLayer{}
	}
	if l.kind.websocket() {
		k.ws = &wsLayer{}
	}
	return k
}

// handshaking reports whether a layer still has its handshake to finish; read under rmu
// or wmu (each layer's established flag is set under both).
func (k *link) handshaking() bool {
	return k.proxyWait || (k.tls != nil && k.tls.sess == nil) || (k.ws != nil && !k.ws.up)
}

// read is the in call of the seam: p came from the socket.
func (k *link) read(c *Conn, p []byte) {
	k.rmu.Lock()
	defer k.rmu.Unlock()
	if k.proxyWait {
		if p = k.readProxy(c, p); len(p) == 0 {
			return
		}
	} else if k.proxyCheck {
		k.proxyCheck = false
		if k.refuseUnexpectedProxy(c, p) {
			return
		}
	}
	if k.tls != nil {
		k.readTLS(c, p)
		return
	}
	k.readAboveTLS(c, p)
}

// readAboveTLS passes plaintext up: through the WebSocket layer if there is one, else to
// the session.
func (k *link) readAboveTLS(c *Conn, p []byte) {
	if k.ws != nil {
		k.readWS(c, p)
		return
	}
	c.onBytes(p)
}

// established is called by a layer that finished its handshake: once every layer has,
// the connection's timer moves from the handshake deadline to the auth deadline.
func (k *link) established(c *Conn) {
	if k.handshaking() {
		return
	}
	s := c.srv
	if !c.closing() {
		s.wheel.Schedule(&c.timer, s.deadline(s.opts.AuthTimeout))
	}
}

// handshakeExpired closes a connection whose transport handshake did not finish by the
// handshake deadline, counting it by layer, and reports whether it did; false means the
// transport is established and the deadline was the auth deadline. It runs on the
// wheel's dispatcher, which holds no lock of ours.
func (k *link) handshakeExpired(c *Conn) bool {
	k.rmu.Lock()
	defer k.rmu.Unlock()
	m := c.srv.metrics
	switch {
	case k.proxyWait:
		m.proxyHeader("refused")
		c.closeSilently(protocol.CloseProtocolError, "no PROXY header within the deadline")
	case k.tls != nil && k.tls.sess == nil, k.ws != nil && !k.ws.up:
		m.handshake(k.kind, "timeout")
		c.closeSilently(protocol.CloseAuthTimeout, "transport handshake deadline passed")
	default:
		return false
	}
	return true
}

// frameLocked is the frame call of the seam: it wraps tether frames for the transport
// (a WebSocket binary message header in front). wmu is held.
func (k *link) frameLocked(frames [][]byte) [][]byte {
	if k.ws == nil {
		return frames
	}
	return wsFrame(frames)
}

// sealLocked is the seal call of the seam: it encodes bufs just before they reach the
// socket (TLS records). wmu is held; the result is owned by the caller.
func (k *link) sealLocked(bufs [][]byte) [][]byte {
	if k.tls == nil || k.tls.sess == nil {
		return bufs
	}
	return [][]byte{k.tls.sess.Seal(nil, bufs...)}
}

// sealBatchLocked seals a batch the flusher took from the queue: every entry but the
// rest of bytes a short write began (the head, when headPartial) and the closing bytes
// finalLocked sealed already (sealedTail). wmu is held.
func (k *link) sealBatchLocked(batch [][]byte, headPartial bool) [][]byte {
	lead, tail := 0, k.sealedTail
	k.sealedTail = 0
	if headPartial {
		lead = 1
	}
	if k.tls == nil || k.tls.sess == nil || lead+tail >= len(batch) {
		return batch
	}
	out := make([][]byte, 0, lead+1+tail)
	out = append(out, batch[:lead]...)
	out = append(out, k.tls.sess.Seal(nil, batch[lead:len(batch)-tail]...))
	return append(out, batch[len(batch)-tail:]...)
}

// markSealedTail records that the entry just queued last is a closing connection's
// final bytes, sealed already. wmu is held.
func (c *Conn) markSealedTail() {
	if c.link != nil {
		c.link.sealedTail = 1
	}
}

// finalLocked is the final call of the seam: the bytes that end the connection on the
// wire, in one buffer (nil for none): frame (a CLOSE or AUTH_FAIL, or nil) framed and
// sealed, then the transport's own close. A connection whose transport is not
// established gets nothing. wmu is held.
func (k *link) finalLocked(c *Conn, frame []byte) []byte {
	if k.handshaking() {
		return nil
	}
	var bufs [][]byte
	if frame != nil {
		bufs = k.frameLocked([][]byte{frame})
	}
	if k.ws != nil {
		bufs = append(bufs, k.ws.closeFrame(c))
	}
	if k.tls != nil {
		out := k.tls.sess.Seal(nil, bufs...)
		return k.tls.sess.Alert(out, 0) // close_notify
	}
	return concat(bufs)
}

// concat joins bufs into one new buffer (nil if they are empty).
func concat(bufs [][]byte) []byte {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	if n == 0 {
		return nil
	}
	out := make([]byte, 0, n)
	for _, b := range bufs {
		out = append(out, b...)
	}
	return out
}

// remoteAddr is the client's address: the one a PROXY header carried, else the socket's.
func (c *Conn) remoteAddr() net.Addr {
	if c.link != nil && c.link.remote != nil {
		return c.link.remote
	}
	return c.nc.RemoteAddr()
}
