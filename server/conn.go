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

// Connection states. A connection moves only forward through them.
const (
	stateNew            int32 = iota // accepted, no HELLO yet
	stateAuthenticating              // HELLO received, Authenticator running
	stateAuthed                      // AUTH_OK sent
	stateClosed                      // close callback ran
)

// Conn is one client connection. Its methods are safe for concurrent use. The identity
// accessors (UserID, DeviceID, Platform, ClientVersion) are fixed once OnConnect is called
// and return "" before.
type Conn struct {
	srv   *Server
	nc    netpoll.Connection
	fd    int
	id    uint64
	ip    netip.Addr
	timer timingwheel.Timer[Conn]
	state atomic.Int32
	// closeCode is the code the connection was closed with (0 while open).
	closeCode atomic.Uint32

	// Read side: touched only by netpoll's read callback, which never runs twice at once
	// for one connection. dec exists only while a frame is cut across reads: whole frames
	// are parsed in place, and an idle connection holds no decoder.
	dec          *protocol.Decoder
	preAuthBytes int
	// partial mirrors dec != nil for other goroutines (tests, diagnostics).
	partial atomic.Bool

	// ready is set once AUTH_OK (and any resume replay) is written: pushes skip the
	// connection before, so nothing reaches the client ahead of AUTH_OK.
	ready atomic.Bool
	// user is the user's hub entry, set when the connection joins it.
	user *user
	// qos is the connection's QoS1 in-flight window (inflight.go), nil while it has
	// nothing unacknowledged; guarded by user.mu.
	qos *window
	// goingAway is set once GOAWAY was sent: the timer then holds the grace deadline,
	// which inbound frames no longer extend, and its expiry closes with CodeGoingAway.
	goingAway atomic.Bool

	// who is the identity, published once by the auth task before the state becomes
	// stateAuthed; nil before.
	who atomic.Pointer[identity]

	// Write side, guarded by wmu. While backlog is set a flusher goroutine owns the
	// socket's writes and new frames queue in out.
	wmu      sync.Mutex
	wclosed  bool
	backlog  bool
	out      [][]byte
	outBytes int

	// Rooms this connection is in, guarded by rmu.
	rmu   sync.Mutex
	rooms []*room

	// Requests for the worker pool, in arrival order, guarded by qmu; running is set
	// while a pool task drains the queue.
	qmu      sync.Mutex
	reqs     []request
	running  bool
	inflight atomic.Int32
}

// identity is who a connection belongs to, fixed at authentication.
type identity struct {
	userID, deviceID, platform, clientVersion string
	// tokenHash tells a reconnect presenting the same token from a second login.
	tokenHash uint64
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

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Authenticated reports whether the connection has completed HELLO/AUTH_OK and is not
// closed.
func (c *Conn) Authenticated() bool { return c.state.Load() == stateAuthed }

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
	if !c.ready.Load() {
		return ErrNotReady
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
// CodeGoingAway. Operators use it to move load off a node; Shutdown does the same for
// every connection. It returns ErrNotReady before AUTH_OK and ErrConnClosed once closed.
func (c *Conn) GoAway(retryAfter, grace time.Duration, reason string) error {
	if !c.ready.Load() {
		return ErrNotReady
	}
	frame, err := (&protocol.GoAway{Code: protocol.CodeGoingAway, RetryAfterMs: uint32(retryAfter / time.Millisecond), Reason: reason}).AppendFrame(nil, 0, 0)
	if err != nil {
		return err
	}
	if err := c.write(frame); err != nil {
		return err
	}
	c.srv.metrics.framesOut(protocol.OpGoAway, len(frame))
	c.goingAway.Store(true)
	if c.state.Load() == stateAuthed {
		c.srv.wheel.Schedule(&c.timer, c.srv.wheel.Clock()+int64(grace)+int64(c.srv.opts.Tick))
	}
	return nil
}

// Close sends CLOSE with code and reason, then closes the connection. Use a terminal code
// (e.g. protocol.CodeKicked) to keep the client from reconnecting. Closing twice is a
// no-op.
func (c *Conn) Close(code protocol.Code, reason string) {
	c.closeWith(code, reason, true)
}

// closeWith closes the connection once: the first caller records code, sends a CLOSE
// frame if sendFrame is set and the socket can take it, and closes the socket. The
// cleanup runs in onClosed, from netpoll's close callback.
func (c *Conn) closeWith(code protocol.Code, reason string, sendFrame bool) {
	if !c.closeCode.CompareAndSwap(0, uint32(code)) {
		return
	}
	if sendFrame {
		if frame, err := (&protocol.Close{Code: code, Reason: reason}).AppendFrame(nil, 0, 0); err == nil {
			c.writeFinal(frame)
		}
	}
	c.srv.log.Debug("closing connection", "conn", c.id, "user", c.UserID(), "code", code.String(), "reason", reason)
	_ = c.nc.Close()
}

// closeAsync closes the connection from a new goroutine, for callers that hold locks
// the close callback takes (room and write locks).
func (c *Conn) closeAsync(code protocol.Code, reason string, sendFrame bool) {
	if c.closeCode.Load() != 0 {
		return
	}
	go c.closeWith(code, reason, sendFrame)
}

// onClosed runs once, from netpoll's close callback, before netpoll closes the socket:
// it stops writes, cancels the deadline, and removes the connection from the hub and its
// rooms.
func (c *Conn) onClosed(netpoll.Connection) error {
	// A close the server did not start is the peer going away.
	c.closeCode.CompareAndSwap(0, uint32(protocol.CodeNormal))
	prev := c.state.Swap(stateClosed)
	if prev == stateClosed {
		return nil
	}
	c.wmu.Lock()
	c.dropBacklogLocked()
	c.wmu.Unlock()

	s := c.srv
	s.wheel.Cancel(&c.timer)
	s.hub.remove(c, prev == stateAuthed)
	c.leaveAll()
	s.limits.release(c.ip)
	code := protocol.Code(c.closeCode.Load())
	s.metrics.closed(code)
	if prev == stateAuthed {
		c.enqueueControl(request{kind: reqDisconnect, code: code})
	}
	return nil
}

// inflightDone marks one pool request of this connection as finished.
func (c *Conn) inflightDone() { c.inflight.Add(-1) }
