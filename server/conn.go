package server

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/netpoll"

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/timingwheel"
)

// Conn is one client connection. Its methods are safe for concurrent use. The identity
// accessors (UserID, DeviceID, Platform, ClientVersion) are fixed once OnConnect is called
// and return "" before.
type Conn struct {
	srv *Server
	nc  netpoll.Connection
	// link is the transport state (transport.go), nil for raw TCP.
	link  *link
	fd    int
	id    uint64
	ip    netip.Addr
	timer timingwheel.Timer[Conn]
	// st is the state word (see connState): phase, flags and close code.
	st atomic.Uint32

	// Read side: touched only by netpoll's read callback, which never runs twice at once
	// for one connection. dec exists only while a frame is cut across reads: whole frames
	// are parsed in place, and an idle connection holds no decoder.
	dec          *protocol.Decoder
	preAuthBytes int
	// partial mirrors dec != nil for other goroutines (tests, diagnostics).
	partial atomic.Bool

	// user is the user's hub entry, set by hub.addUser before the phase becomes
	// phaseAuthed.
	user *user
	// qos is the connection's QoS1 in-flight window (inflight.go), nil while it has
	// nothing unacknowledged; guarded by user.mu.
	qos *window
	// who is the identity, published by the auth task before the phase becomes
	// phaseAuthed, nil before; an accepted REFRESH replaces it with a copy carrying the
	// new token's hash and expiry (refresh.go).
	who atomic.Pointer[identity]
	// life is the token-expiry state (refresh.go), nil until the connection has an
	// expiry or sends REFRESH: a connection whose token never expires holds none.
	life atomic.Pointer[tokenLife]

	// Write side, guarded by wmu. While backlog is set a flusher goroutine owns the
	// socket's writes and new frames queue in out; headPartial says out[0] is the rest
	// of a frame a short write began, and flushing that the flusher holds a batch taken
	// from out (so out starts at a frame boundary).
	wmu         sync.Mutex
	backlog     bool
	headPartial bool
	flushing    bool
	out         [][]byte
	outBytes    int

	// Rooms this connection is in, guarded by rmu.
	rmu   sync.Mutex
	rooms []*room

	// Requests for the worker pool, in arrival order, guarded by qmu; running is set
	// while a pool task drains the queue.
	qmu      sync.Mutex
	reqs     []poolTask
	running  bool
	inflight atomic.Int32
}

// identity is who a connection belongs to, fixed at authentication except for the
// token fields, which an accepted REFRESH changes by storing a new identity.
type identity struct {
	userID, deviceID, platform, clientVersion string
	// tokenHash tells a reconnect presenting the same token from a second login.
	tokenHash uint64
	// expiresAt is Identity.ExpiresAt in Unix nanoseconds, 0 if unknown (an int64
	// rather than a time.Time keeps the struct in the 80-byte size class).
	expiresAt int64
}

// noIdentity is what an unauthenticated connection reports.
var noIdentity = &identity{}

// ident returns the connection's identity, empty before authentication.
func (c *Conn) ident() *identity {
	if p := c.who.Load(); p != nil {
		return p
	}
	return noIdentity
}

// connCtx is the context netpoll hands back to the read callback; it carries the Conn
// so the callback finds it without a map look-up.
type connCtx struct {
	context.Context
	c *Conn
}

// ID returns the connection id, unique within this server process and sent to the client
// in AUTH_OK.
func (c *Conn) ID() uint64 { return c.id }

// UserID returns the authenticated user id ("" before authentication).
func (c *Conn) UserID() string { return c.ident().userID }

// DeviceID returns the device id from the token or the HELLO.
func (c *Conn) DeviceID() string { return c.ident().deviceID }

// Platform returns the platform from the token or the HELLO.
func (c *Conn) Platform() string { return c.ident().platform }

// ClientVersion returns the client version from the HELLO.
func (c *Conn) ClientVersion() string { return c.ident().clientVersion }

// RemoteAddr returns the client's address: the one its PROXY header carried when it came
// through a trusted load balancer, else the socket's peer.
func (c *Conn) RemoteAddr() net.Addr { return c.remoteAddr() }

// Authenticated reports whether the connection has completed HELLO/AUTH_OK and no
// close has started.
func (c *Conn) Authenticated() bool {
	st := c.state()
	return st.phase() == phaseAuthed && st&stClosing == 0
}

// TokenExpiry returns when the connection's credential expires (Identity.ExpiresAt of
// the HELLO's token, or of the token its last accepted REFRESH presented), or the zero
// time if the Authenticator gave none. Past it, plus Options.TokenGrace, the server
// closes the connection with CloseSessionExpired.
func (c *Conn) TokenExpiry() time.Time {
	if ns := c.ident().expiresAt; ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Rooms returns a copy of the names of the rooms the connection is in.
func (c *Conn) Rooms() []string {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	names := make([]string, len(c.rooms))
	for i, r := range c.rooms {
		names[i] = r.name
	}
	return names
}

// Push sends payload to this connection as a PUSH on the direct channel (no message id,
// no ack). It returns ErrNotReady before AUTH_OK was sent (OnConnect runs after it),
// ErrConnClosed if the connection is closing and ErrPayloadTooLarge if the frame would
// exceed Options.MaxFrame.
func (c *Conn) Push(payload []byte) error {
	if err := c.pushErr(); err != nil {
		return err
	}
	frame, err := c.srv.encodePush("", payload)
	if err != nil {
		return err
	}
	if err := c.write(frame); err != nil {
		return err
	}
	c.srv.metrics.framesOut(protocol.OpPush, len(frame))
	return nil
}

// GoAway tells the client to reconnect, to this node or another, after retryAfter: it
// sends GOAWAY and, if the client has not left after grace, closes the connection with
// CloseGoingAway; inbound frames no longer extend its deadline. Operators use it to move
// load off a node; Shutdown calls it for every connection. It returns ErrNotReady before
// AUTH_OK and ErrConnClosed once closing.
func (c *Conn) GoAway(retryAfter, grace time.Duration, reason string) error {
	if err := c.pushErr(); err != nil {
		return err
	}
	frame, err := (&protocol.GoAway{Code: protocol.CloseGoingAway, RetryAfterMs: uint32(retryAfter / time.Millisecond), Reason: protocol.CleanText(reason)}).AppendFrame(nil, 0, 0)
	if err != nil {
		return err
	}
	c.markGoingAway()
	if err := c.write(frame); err != nil {
		return err
	}
	c.srv.metrics.framesOut(protocol.OpGoAway, len(frame))
	if !c.closing() {
		c.srv.wheel.Schedule(&c.timer, c.srv.deadline(grace))
	}
	return nil
}

// Close sends CLOSE with code and reason, then closes the connection. Use a terminal code
// (e.g. protocol.CloseKicked) to keep the client from reconnecting. Closing twice is a
// no-op.
func (c *Conn) Close(code protocol.CloseCode, reason string) {
	c.closeWith(code, reason)
}

// closeWith closes the connection with code, sending CLOSE first when the socket can take
// it: every server-initiated close with a CLOSE frame goes through here.
func (c *Conn) closeWith(code protocol.CloseCode, reason string) {
	if c.closing() {
		return
	}
	c.closeAfter(code, reason, protocol.AppendClose(nil, code, reason))
}

// closeSilently closes the connection with code and no frame (the peer closed, or is
// gone).
func (c *Conn) closeSilently(code protocol.CloseCode, reason string) { c.closeAfter(code, reason, nil) }

// closeAfter closes the connection once: the first caller records code, puts final (a
// CLOSE or AUTH_FAIL frame, or nil) on the wire after what was already written, and
// closes the socket. If the socket cannot take final at once (it is backlogged, or only
// part fit), the flusher writes it and closes the socket when done; the timer bounds the
// wait by finalGrace. The cleanup runs in onClosed, from netpoll's close callback, which
// may run in this call: callers must not hold the locks it takes (see doc.go).
func (c *Conn) closeAfter(code protocol.CloseCode, reason string, final []byte) {
	if !c.markClosing(code) {
		return
	}
	c.logClose(code, reason)
	c.wmu.Lock()
	pending := c.finishWritesLocked(final)
	if pending {
		// Armed under wmu, so before the flusher can close the socket and onClosed
		// cancel the timer.
		c.srv.wheel.Schedule(&c.timer, c.srv.deadline(finalGrace))
	}
	c.wmu.Unlock()
	if !pending {
		_ = c.nc.Close()
	}
}

// logClose writes the debug line of a close the server started.
func (c *Conn) logClose(code protocol.CloseCode, reason string) {
	c.srv.log.Debug("closing connection", "conn", c.id, "transport", c.Transport().String(), "user", c.UserID(), "code", code.String(), "reason", reason)
}

// finalGrace bounds how long a closing connection waits for the socket to take its last
// frame (a backlogged peer may never read again).
const finalGrace = time.Second

// onClosed runs once, from netpoll's close callback, before netpoll closes the socket:
// it stops writes, cancels the deadline, and removes the connection from the hub and its
// rooms.
func (c *Conn) onClosed(netpoll.Connection) error {
	prev, ok := c.markClosed()
	if !ok {
		return nil
	}
	// markClosed stopped writes; taking wmu waits out a write in progress, so none
	// reaches the descriptor after this callback returns and netpoll closes it.
	c.wmu.Lock()
	c.dropBacklogLocked()
	c.wmu.Unlock()

	s := c.srv
	s.wheel.Cancel(&c.timer)
	if l := c.life.Load(); l != nil {
		s.wheel.Cancel(&l.timer)
	}
	wasAuthed := prev.phase() == phaseAuthed
	s.hub.remove(c, wasAuthed)
	s.transportOpen[c.Transport()].Add(-1)
	c.leaveAll()
	if prev&stAdmitted != 0 {
		s.limits.release(c.ip)
	}
	if c.link != nil {
		c.link.closed()
	}
	code := c.closeCode()
	s.metrics.closed(code)
	if wasAuthed {
		c.enqueueControl(poolTask{kind: taskDisconnect, code: code})
	}
	return nil
}

// inflightDone marks one pool request of this connection as finished.
func (c *Conn) inflightDone() { c.inflight.Add(-1) }
