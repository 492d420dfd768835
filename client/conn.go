package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// readBufferSize is the size of each connection's read buffer. Frames that
// fit in one read are decoded in place; larger ones are assembled by the
// protocol.Decoder.
const readBufferSize = 16 << 10

// wbufRetain is the largest write buffer a connection keeps between writes,
// so that one big SEND does not pin its buffer for the connection's life.
const wbufRetain = 64 << 10

// errStop ends decoding of a read after a frame that ends the connection.
var errStop = errors.New("client: stop decoding")

// conn is one connection: a connection attempt until AUTH_OK, then the
// connection the client reads and writes until it ends. A conn is never
// reused; each reconnect makes a new one.
type conn struct {
	c    *Client
	nc   net.Conn
	base time.Time // origin of the monotonic readings below (see now)

	// Set by the handshake, fixed afterwards.
	auth     protocol.AuthOK
	authAt   time.Duration
	hb       time.Duration
	maxFrame int // largest length field this side may send

	// Read goroutine only.
	dec      protocol.Decoder
	rbuf     []byte
	authed   bool
	fail     *CloseError      // AUTH_FAIL, CLOSE or GOAWAY before AUTH_OK
	backlog  []protocol.Frame // frames that followed AUTH_OK in the handshake's last read
	end      *ending          // set by a frame that ends the connection
	goaway   *CloseError      // set by GOAWAY; the connection drains until goawayAt
	goawayAt time.Duration
	lastRecv time.Duration
	lastPing time.Duration
	roomHigh map[string]uint64 // highest msg_id delivered per room on this connection

	// Token refresh (refresh.go), read goroutine only except refreshRes and wakes.
	expiresAt  time.Duration // when the token expires, 0 if it does not
	refreshAt  time.Duration // when to start the next refresh, 0 if none is due
	refreshing bool          // a refresh goroutine is running
	refreshRes atomic.Pointer[refreshResult]
	wakes      atomic.Uint64 // bumped by another goroutine that needs tick to run

	lastSent atomic.Int64 // time.Duration of the last successful write
	draining atomic.Bool  // GOAWAY received: no new requests on this connection

	wmu   sync.Mutex
	wbuf  []byte
	wdead bool // a write failed or CLOSE was sent: nothing more may be written

	pmu     sync.Mutex
	pending map[uint32]*call
	dead    bool // the connection ended: pending was failed, register refuses
}

func newConn(c *Client, nc net.Conn) *conn {
	return &conn{
		c:        c,
		nc:       nc,
		base:     time.Now(),
		maxFrame: protocol.PreAuthMaxFrame,
		rbuf:     make([]byte, readBufferSize),
		pending:  make(map[uint32]*call),
	}
}

// now returns the monotonic time since the connection was made; the
// heartbeat arithmetic uses these durations so wall-clock jumps do not matter.
func (cn *conn) now() time.Duration { return time.Since(cn.base) }

// connect makes one connection attempt: token, dial, HELLO, AUTH_OK. ctx
// aborts every step.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	c.attempts.Add(1)
	token := c.opts.Token
	if f := c.opts.TokenFunc; f != nil {
		t, err := f(ctx)
		if err != nil {
			return nil, fmt.Errorf("client: cannot get token: %w", err)
		}
		token = t
	}
	dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	nc, err := c.opts.Dialer(dctx, c.addr)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("client: cannot dial %s: %w", c.addr, err)
	}
	cn := newConn(c, nc)
	epoch, lastID := c.Cursor()
	hello := protocol.Hello{
		Token:         token,
		DeviceID:      c.opts.DeviceID,
		Platform:      c.opts.Platform,
		ClientVersion: c.opts.ClientVersion,
		ResumeEpoch:   epoch,
		ResumeLastID:  lastID,
	}
	if err := cn.handshake(ctx, &hello); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return cn, nil
}

// handshake sends HELLO and reads until AUTH_OK, AUTH_FAIL, CLOSE or GOAWAY,
// within Options.HandshakeTimeout and ctx.
func (cn *conn) handshake(ctx context.Context, hello *protocol.Hello) error {
	if err := cn.nc.SetReadDeadline(time.Now().Add(cn.c.opts.HandshakeTimeout)); err != nil {
		return fmt.Errorf("client: handshake with %s: %w", cn.c.addr, err)
	}
	// A past deadline is how ctx interrupts a blocked Read or Write.
	stop := context.AfterFunc(ctx, func() { _ = cn.nc.SetDeadline(time.Unix(1, 0)) })
	err := cn.exchangeHello(hello)
	if !stop() {
		return fmt.Errorf("client: handshake with %s: %w", cn.c.addr, context.Cause(ctx))
	}
	if err != nil {
		return err
	}
	return cn.nc.SetReadDeadline(time.Time{})
}

func (cn *conn) exchangeHello(hello *protocol.Hello) error {
	// PROTOCOL.md §4: a client accepts up to 64 KiB before AUTH_OK.
	cn.dec.MaxFrame = protocol.DefaultMaxFrame
	cn.dec.Retain = true // one stream per client: keep the straddle buffer
	if err := cn.writeMsg(hello, cn.c.nextSeq(), 0); err != nil {
		return err
	}
	for !cn.authed {
		n, err := cn.nc.Read(cn.rbuf)
		if n > 0 {
			if derr := cn.dec.Decode(cn.rbuf[:n], cn.onHandshakeFrame); derr != nil {
				if cn.fail != nil {
					return cn.fail
				}
				if errors.Is(derr, ErrDisconnected) {
					return derr
				}
				return cn.protocolFailure(derr).err
			}
		}
		if cn.authed {
			break
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w after %v (%s)", ErrHandshakeTimeout, cn.c.opts.HandshakeTimeout, cn.c.addr)
		}
		if err != nil {
			return fmt.Errorf("client: handshake with %s: %w", cn.c.addr, err)
		}
	}
	return nil
}

// onHandshakeFrame handles a frame before AUTH_OK, and keeps the frames that
// follow AUTH_OK in the same read for serve.
func (cn *conn) onHandshakeFrame(f protocol.Frame) error {
	if cn.authed {
		cn.backlog = append(cn.backlog, f.Clone())
		return nil
	}
	switch f.Op {
	case protocol.OpPing:
		return cn.writeEmpty(protocol.OpPong, f.Seq)
	case protocol.OpAuthOK:
		var m protocol.AuthOK
		if err := m.Decode(f.Body); err != nil {
			return err
		}
		cn.setAuth(&m)
	case protocol.OpAuthFail:
		var m protocol.AuthFail
		if err := m.Decode(f.Body); err != nil {
			return err
		}
		cn.fail = &CloseError{Op: f.Op, Code: m.Code, Reason: m.Reason}
		return errStop
	case protocol.OpClose:
		var m protocol.Close
		if err := m.Decode(f.Body); err != nil {
			return err
		}
		cn.fail = &CloseError{Op: f.Op, Code: m.Code, Reason: m.Reason}
		return errStop
	case protocol.OpGoAway:
		var m protocol.GoAway
		if err := m.Decode(f.Body); err != nil {
			return err
		}
		cn.fail = goAwayError(&m)
		return errStop
	default:
		cn.c.log.Debug("ignoring frame before AUTH_OK", "op", f.Op.String())
	}
	return nil
}

func goAwayError(m *protocol.GoAway) *CloseError {
	return &CloseError{Op: protocol.OpGoAway, Code: m.Code, Reason: m.Reason,
		RetryAfter: time.Duration(m.RetryAfterMs) * time.Millisecond}
}

// setAuth applies AUTH_OK: the connection's limits and heartbeat, and the
// resume cursor rule of PROTOCOL.md §11.
func (cn *conn) setAuth(m *protocol.AuthOK) {
	cn.auth = *m
	cn.authed = true
	cn.authAt = cn.now()
	cn.lastRecv = cn.authAt
	hbMs := m.HeartbeatMs
	if hbMs == 0 {
		hbMs = protocol.DefaultHeartbeatMs
	}
	cn.hb = time.Duration(hbMs) * time.Millisecond
	cn.maxFrame = int(m.MaxFrame)
	if cn.maxFrame <= 0 {
		cn.maxFrame = protocol.DefaultMaxFrame
	}
	cn.maxFrame = min(cn.maxFrame, protocol.MaxFrameLimit)
	// Frames the server sends are bounded by the same limit. The Decoder reads
	// MaxFrame once per Decode call, so frames in the read that carried
	// AUTH_OK are still held to the pre-auth limit.
	cn.dec.MaxFrame = cn.maxFrame
	cn.roomHigh = make(map[string]uint64)
	cn.setExpiry(m.TokenExpiresMs, cn.authAt) // refresh.go
	if m.Resume != protocol.ResumeRecovered {
		cn.c.cmu.Lock()
		cn.c.cursorEpoch, cn.c.cursorLastID = m.Epoch, m.LastID
		cn.c.cmu.Unlock()
	}
}

// serve reads the authenticated connection until it ends, keeping the
// heartbeat, and returns why it ended. It closes the socket before returning.
func (cn *conn) serve() ending {
	defer cn.nc.Close()
	for _, f := range cn.backlog {
		if e, done := cn.handled(cn.onFrame(f)); done {
			return e
		}
	}
	cn.backlog = nil
	for {
		wakes := cn.wakes.Load()
		if e, done := cn.tick(); done {
			return e
		}
		_ = cn.nc.SetReadDeadline(cn.base.Add(cn.nextWake()))
		if cn.wakes.Load() != wakes {
			continue // woken between tick and the deadline, which it may have overwritten
		}
		n, err := cn.nc.Read(cn.rbuf)
		if n > 0 {
			derr := cn.dec.Decode(cn.rbuf[:n], cn.onFrame)
			// Measured after delivery: time spent blocked on the application
			// is not the server's silence.
			cn.lastRecv = cn.now()
			if e, done := cn.handled(derr); done {
				return e
			}
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			if cn.goaway != nil {
				return cn.goAwayEnding()
			}
			return ending{err: fmt.Errorf("%w: %w", ErrDisconnected, err)}
		}
	}
}

// handled turns the result of handling frames into an ending, if any.
func (cn *conn) handled(err error) (ending, bool) {
	switch {
	case cn.end != nil:
		return *cn.end, true
	case err == nil:
		return ending{}, false
	case cn.c.ctx.Err() != nil:
		return ending{err: ErrClosed}, true
	case errors.Is(err, ErrDisconnected):
		return ending{err: err}, true
	}
	return cn.protocolFailure(err), true
}

// protocolFailure closes the connection after the server sent a frame the
// client cannot accept (PROTOCOL.md §3 and §6), with the code the protocol
// package assigns; those codes are terminal.
func (cn *conn) protocolFailure(err error) ending {
	code := protocol.CloseCodeFor(err)
	cn.c.log.Warn("protocol error from server", "err", err, "code", code.String())
	cn.closeWith(code, err.Error())
	ce := &CloseError{Op: protocol.OpClose, Local: true, Code: code, Reason: err.Error()}
	return ending{err: ce, terminal: ce.Terminal()}
}

// tick runs the heartbeat and GOAWAY clocks: it reports the connection as
// ended when the server has been silent for 2 × heartbeat or a GOAWAY drain
// is over, and sends a PING when one is due.
//
// A PING is due when nothing was sent for a heartbeat interval (PROTOCOL.md
// §9), and also when nothing was received for one and no PING is
// outstanding: an application that only sends fire-and-forget SENDs would
// otherwise never give the server a reason to answer, and the connection
// would be declared dead at 2 × heartbeat although the server is fine.
func (cn *conn) tick() (ending, bool) {
	if cn.c.ctx.Err() != nil {
		return ending{err: ErrClosed}, true
	}
	now := cn.now()
	if cn.goaway != nil && (now >= cn.goawayAt || cn.pendingLen() == 0) {
		return cn.goAwayEnding(), true
	}
	if now-cn.lastRecv >= 2*cn.hb {
		return ending{err: ErrHeartbeatTimeout}, true
	}
	if cn.goaway == nil && now >= cn.pingAt() {
		if err := cn.writeEmpty(protocol.OpPing, cn.c.nextSeq()); err != nil {
			return ending{err: err}, true
		}
		cn.lastPing = now
		cn.c.pings.Add(1)
	}
	cn.refreshTick(now) // refresh.go
	return ending{}, false
}

// pingAt returns when the next PING is due.
func (cn *conn) pingAt() time.Duration {
	at := time.Duration(cn.lastSent.Load()) + cn.hb
	if cn.lastPing <= cn.lastRecv {
		at = min(at, cn.lastRecv+cn.hb)
	}
	return at
}

// nextWake returns when tick has something to do, as the read deadline.
func (cn *conn) nextWake() time.Duration {
	at := cn.lastRecv + 2*cn.hb
	if cn.goaway != nil {
		return min(at, cn.goawayAt)
	}
	if cn.refreshAt != 0 {
		at = min(at, cn.refreshAt)
	}
	return min(at, cn.pingAt())
}

// onGoAway starts draining: no new requests, answers to pending ones are
// awaited until the retry-after has passed (PROTOCOL.md §6.9).
func (cn *conn) onGoAway(m *protocol.GoAway) error {
	ce := goAwayError(m)
	if ce.Terminal() {
		cn.end = &ending{err: ce, terminal: true}
		return errStop
	}
	cn.c.log.Info("GOAWAY", "code", m.Code.String(), "retry_after", ce.RetryAfter, "reason", m.Reason)
	cn.goaway = ce
	cn.goawayAt = cn.now() + ce.RetryAfter
	cn.draining.Store(true)
	cn.c.unready(cn, false)
	return nil
}

// goAwayEnding ends a drained connection: reconnect once the rest of the
// GOAWAY's retry-after has passed.
func (cn *conn) goAwayEnding() ending {
	return ending{err: cn.goaway, goaway: true, retryAfter: max(0, cn.goawayAt-cn.now())}
}

// onFrame handles one frame of an authenticated connection. f.Body is valid
// only during the call.
func (cn *conn) onFrame(f protocol.Frame) error {
	switch f.Op {
	case protocol.OpPing:
		return cn.writeEmpty(protocol.OpPong, f.Seq)
	case protocol.OpPong, protocol.OpOK, protocol.OpSendReply, protocol.OpRefreshOK:
		cn.complete(f.Seq, f.Op, f.Body, nil)
	case protocol.OpError:
		var m protocol.Error
		if err := m.Decode(f.Body); err != nil {
			return err
		}
		se := &ServerError{Code: m.Code, Message: m.Message}
		if !cn.complete(f.Seq, f.Op, nil, se) {
			cn.c.log.Warn("ERROR from server", "seq", f.Seq, "code", m.Code.String(), "message", m.Message)
		}
	case protocol.OpPush:
		return cn.onPush(f)
	case protocol.OpGoAway:
		var m protocol.GoAway
		if err := m.Decode(f.Body); err != nil {
			return err
		}
		return cn.onGoAway(&m)
	case protocol.OpClose:
		var m protocol.Close
		if err := m.Decode(f.Body); err != nil {
			return err
		}
		ce := &CloseError{Op: f.Op, Code: m.Code, Reason: m.Reason}
		cn.end = &ending{err: ce, terminal: ce.Terminal()}
		return errStop
	default:
		// PROTOCOL.md §8: a client ignores opcodes it does not know, and
		// there is nothing to do with a stray AUTH_OK either.
		cn.c.log.Debug("ignoring frame", "op", f.Op.String(), "seq", f.Seq)
	}
	return nil
}

// writeMsg encodes m into the connection's write buffer and writes it.
func (cn *conn) writeMsg(m protocol.Message, seq uint32, flags protocol.Flags) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	b, err := m.AppendFrame(cn.wbuf[:0], seq, flags)
	if err != nil {
		return fmt.Errorf("client: cannot encode %s: %w", m.Opcode(), err)
	}
	if cap(b) <= wbufRetain {
		cn.wbuf = b
	}
	if n := len(b) - protocol.LengthSize; n > cn.maxFrame {
		return fmt.Errorf("client: %s frame of %d bytes exceeds the limit of %d: %w",
			m.Opcode(), n, cn.maxFrame, protocol.ErrFrameTooLarge)
	}
	return cn.writeLocked(b)
}

// writeEmpty writes a frame with an empty body (PING, PONG).
func (cn *conn) writeEmpty(op protocol.Opcode, seq uint32) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	cn.wbuf = protocol.AppendEmpty(cn.wbuf[:0], op, seq)
	return cn.writeLocked(cn.wbuf)
}

// writeLocked writes one whole frame with a deadline. A failed write closes
// the socket: part of the frame may be on the wire, so the stream is lost.
func (cn *conn) writeLocked(b []byte) error {
	if cn.wdead {
		return ErrDisconnected
	}
	_ = cn.nc.SetWriteDeadline(time.Now().Add(cn.c.opts.WriteTimeout))
	if _, err := cn.nc.Write(b); err != nil {
		cn.wdead = true
		_ = cn.nc.Close()
		return fmt.Errorf("%w: write: %w", ErrDisconnected, err)
	}
	cn.lastSent.Store(int64(cn.now()))
	return nil
}

// closeWith sends CLOSE with code, if no other write is in progress (a
// blocked write must not delay Close), and closes the socket, which ends the
// read goroutine's Read.
func (cn *conn) closeWith(code protocol.CloseCode, reason string) {
	if cn.wmu.TryLock() {
		if !cn.wdead {
			if b, err := (&protocol.Close{Code: code, Reason: reason}).AppendFrame(cn.wbuf[:0], 0, 0); err == nil {
				_ = cn.writeLocked(b)
			}
			cn.wdead = true
		}
		cn.wmu.Unlock()
	}
	_ = cn.nc.Close()
}
