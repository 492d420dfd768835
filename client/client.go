package client

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// State is a Client's connection state.
type State uint8

// Client states. A client starts in StateConnecting, alternates between
// StateConnected and StateReconnecting/StateConnecting while it reconnects,
// and ends in StateClosed, from which it never leaves.
const (
	// StateConnecting: a connection attempt (dial, HELLO) is under way.
	StateConnecting State = iota
	// StateConnected: AUTH_OK was received; requests are sent at once.
	StateConnected
	// StateReconnecting: the connection was lost; the client is waiting out
	// the backoff or a GOAWAY's retry-after before the next attempt.
	StateReconnecting
	// StateClosed: Close was called, or the server ended the connection with
	// a terminal code, or reconnecting is disabled. Nothing runs any more.
	StateClosed
)

// String returns the state's name, e.g. "connected".
func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Client is a connection to a tether gateway that survives reconnects. Create
// it with Dial and release it with Close. All methods are safe for concurrent
// use.
type Client struct {
	addr string
	opts Options
	log  *slog.Logger

	// ctx is cancelled by Close and when the client ends by itself; it aborts
	// dials, handshakes, backoff sleeps, blocked push deliveries and requests
	// waiting for a connection.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the read goroutine has exited

	seq    atomic.Uint32 // last request seq used
	pushes chan Push     // nil when Options.OnPush is set

	// Read goroutine only (and Dial's, before it starts the read goroutine).
	timer   *time.Timer // backoff sleeps
	upSince time.Time   // when the current connection was attached, by Options.now

	// Counters for logs and white-box tests.
	attempts atomic.Int64 // connection attempts, Dial's included
	pings    atomic.Int64 // heartbeat PINGs sent
	// refreshes counts tokens the server accepted in REFRESH_OK (refresh.go).
	refreshes atomic.Int64

	mu          sync.Mutex
	state       State
	cur         *conn         // the usable connection, nil between connections
	ready       chan struct{} // closed while cur is usable; requests wait on it
	readyClosed bool
	rooms       map[string]struct{} // rooms to (re)join on every connection
	auth        protocol.AuthOK     // the last AUTH_OK
	endErr      error               // why the client closed by itself
	closeOnce   sync.Once

	// cursor is the resume position (PROTOCOL.md §11), kept across
	// connections. Written by the read goroutine, read by Cursor and HELLO.
	cmu          sync.Mutex
	cursorEpoch  uint64
	cursorLastID uint64
}

// Dial connects to the gateway at addr (host:port), sends HELLO and waits
// for AUTH_OK. It returns a *CloseError if the server answered AUTH_FAIL (or
// CLOSE or GOAWAY before AUTH_OK), an error wrapping ErrHandshakeTimeout if
// no answer came within Options.HandshakeTimeout, or the dial error. Nothing
// is left running when Dial fails.
//
// ctx bounds this first attempt only; once Dial has returned, its cancellation
// has no effect. On success the client runs its read goroutine and, unless
// Options.NoReconnect is set, reconnects by itself until Close or a terminal
// code.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		addr:  addr,
		opts:  o,
		log:   o.Logger.With("addr", addr),
		done:  make(chan struct{}),
		ready: make(chan struct{}),
		rooms: make(map[string]struct{}),

		cursorEpoch:  o.ResumeEpoch,
		cursorLastID: o.ResumeLastID,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if o.OnPush == nil {
		c.pushes = make(chan Push, o.PushBuffer)
	}
	c.setState(StateConnecting, nil)
	cn, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		c.setState(StateClosed, err)
		return nil, err
	}
	c.attach(cn)
	go c.run(cn)
	return c, nil
}

// Close sends CLOSE (1000) on the current connection, closes it, and stops
// the read goroutine and its timer; when Close returns nothing of the client
// is running and the Pushes channel is closed. Requests in flight fail with
// ErrDisconnected or ErrClosed. Close is idempotent and always returns nil.
//
// Close must not be called from OnPush or OnStateChange: it waits for the
// goroutine running them. Everything else is safe to call concurrently with
// Close; it returns ErrClosed afterwards.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		// Cancel first: attach checks the context and installs a connection
		// under c.mu, so after this either attach refuses the connection or
		// c.cur below is it.
		c.cancel()
		c.mu.Lock()
		cn := c.cur
		c.mu.Unlock()
		if cn != nil {
			cn.closeWith(protocol.CloseNormal, "client closed")
		}
	})
	<-c.done
	return nil
}

// State returns the client's current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// ConnID returns the server-assigned id of the current connection (from
// AUTH_OK), or 0 while there is none.
func (c *Client) ConnID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return 0
	}
	return c.cur.auth.ConnID
}

// UserID returns the user id the server authenticated, from the last AUTH_OK.
func (c *Client) UserID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.auth.UserID
}

// LastAuth returns the last AUTH_OK received. Applications check its Resume
// field after a reconnect: protocol.ResumeNotRecovered means pushes were
// missed and must be fetched some other way (PROTOCOL.md §11).
func (c *Client) LastAuth() protocol.AuthOK {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.auth
}

// Cursor returns the resume position the next HELLO will carry: the epoch of
// the user's message sequence and the highest msg_id received in it. An
// application may save it when it exits and pass it back in
// Options.ResumeEpoch and Options.ResumeLastID.
func (c *Client) Cursor() (epoch, lastID uint64) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	return c.cursorEpoch, c.cursorLastID
}

// Rooms returns the rooms the client is subscribed to and rejoins on every
// reconnect, sorted.
func (c *Client) Rooms() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	rooms := make([]string, 0, len(c.rooms))
	for r := range c.rooms {
		rooms = append(rooms, r)
	}
	slices.Sort(rooms)
	return rooms
}

// Pushes returns the channel pushes are delivered on, or nil when
// Options.OnPush is set. It buffers Options.PushBuffer pushes; while it is
// full the client stops reading from the socket. It is closed when the client
// reaches StateClosed, so `for p := range c.Pushes()` ends after Close.
func (c *Client) Pushes() <-chan Push { return c.pushes }

// setState records a transition and tells OnStateChange, on the calling
// goroutine.
func (c *Client) setState(s State, err error) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
	if f := c.opts.OnStateChange; f != nil {
		f(s, err)
	}
}

// attach makes cn the current connection: it rejoins the subscribed rooms and
// releases the requests waiting for a connection. The rejoin happens under
// c.mu so that it is atomic with Subscribe/Unsubscribe changing the set and
// precedes every request of the application on cn. It reports false, closing
// cn, if the client is closing.
func (c *Client) attach(cn *conn) bool {
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		cn.closeWith(protocol.CloseNormal, "client closed")
		return false
	}
	for room := range c.rooms {
		cn.rejoin(room)
	}
	c.cur = cn
	c.auth = cn.auth
	c.upSince = c.opts.now() // before StateConnected: tests that see it may move the clock
	if !c.readyClosed {
		close(c.ready)
		c.readyClosed = true
	}
	c.mu.Unlock()
	c.log.Info("connected", "conn", cn.auth.ConnID, "user", cn.auth.UserID,
		"heartbeat_ms", cn.auth.HeartbeatMs, "resume", cn.auth.Resume.String())
	c.setState(StateConnected, nil)
	return true
}

// unready makes new requests wait for the next connection (after GOAWAY or
// when cn has ended).
func (c *Client) unready(cn *conn, ended bool) {
	c.mu.Lock()
	if c.cur == cn && c.readyClosed {
		c.ready = make(chan struct{})
		c.readyClosed = false
	}
	if ended && c.cur == cn {
		c.cur = nil
	}
	c.mu.Unlock()
}

// usable returns the connection requests should use, or a channel that is
// closed when one may be available.
func (c *Client) usable() (*conn, <-chan struct{}, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		if c.endErr != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrClosed, c.endErr)
		}
		return nil, nil, ErrClosed
	}
	if c.cur != nil && c.readyClosed {
		return c.cur, nil, nil
	}
	return nil, c.ready, nil
}

// waitConn returns the usable connection, waiting for the client to
// reconnect if necessary, until ctx is done.
func (c *Client) waitConn(ctx context.Context) (*conn, error) {
	for {
		cn, ready, err := c.usable()
		if err != nil || cn != nil {
			return cn, err
		}
		select {
		case <-ready:
		case <-c.ctx.Done():
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: no connection: %w", ErrDisconnected, context.Cause(ctx))
		}
	}
}

// finish runs when the read goroutine exits: the client is closed for good.
func (c *Client) finish(err error) {
	c.mu.Lock()
	c.endErr = err
	c.cur = nil
	c.mu.Unlock()
	c.cancel()
	if c.timer != nil {
		c.timer.Stop()
	}
	if err != nil {
		c.log.Info("closed", "err", err)
	}
	c.setState(StateClosed, err)
	if c.pushes != nil {
		close(c.pushes)
	}
	close(c.done)
}
