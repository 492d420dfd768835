// Package baseline is the design tether is measured against: a conventional
// goroutine-per-connection TCP server speaking tether's protocol.
//
// Each connection gets one goroutine that blocks in reads on a 4 KiB bufio.Reader,
// re-arms a read deadline before every frame to enforce the auth and heartbeat
// timeouts, and answers through a mutex-guarded writer. That is how a hand-rolled
// Go server is usually written, and it is correct and simple; what it trades away is
// memory: every idle connection keeps a goroutine stack, a read buffer and a runtime
// timer alive, which is the cost tether's event-loop design is built to avoid.
//
// The server implements only what the memory comparison needs: HELLO with an
// insecure authenticator (the token is the user id), PING/PONG, SEND echoed back as
// SEND_REPLY, SUBSCRIBE/UNSUBSCRIBE answered OK, ACK ignored and CLOSE. It is not
// meant for production and has no push, room fan-out or metrics.
package baseline

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("baseline: server closed")

// Options configures a Server. The zero value of every field keeps the default given
// in its doc; defaults live in Options.withDefaults.
type Options struct {
	// Heartbeat is the interval announced in AUTH_OK; a connection silent for 1.5x
	// this is closed with CloseHeartbeatTimeout. Default 25s.
	Heartbeat time.Duration
	// AuthTimeout is how long a new connection has to send HELLO. Default 10s.
	AuthTimeout time.Duration
	// WriteTimeout bounds one write to a connection; a peer that does not read is
	// closed when it passes. Default 10s.
	WriteTimeout time.Duration
	// MaxFrame is the largest length field accepted after auth and announced in
	// AUTH_OK. Default protocol.DefaultMaxFrame; at most protocol.MaxFrameLimit.
	MaxFrame int
	// ReadBufferSize is each connection's bufio.Reader size. Frames up to this size
	// are handled in the reader's buffer without copying; larger ones are read into a
	// per-connection buffer. Default 4096.
	ReadBufferSize int
}

// withDefaults returns a copy of o with defaults filled in.
func (o Options) withDefaults() Options {
	if o.Heartbeat <= 0 {
		o.Heartbeat = protocol.DefaultHeartbeatMs * time.Millisecond
	}
	if o.AuthTimeout <= 0 {
		o.AuthTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxFrame <= 0 || o.MaxFrame > protocol.MaxFrameLimit {
		o.MaxFrame = protocol.DefaultMaxFrame
	}
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = 4096
	}
	return o
}

// Stats is a snapshot of a Server's counts.
type Stats struct {
	// Connections is the number of open connections, authenticated or not.
	Connections int64
	// Authenticated is the number of authenticated connections.
	Authenticated int64
}

// Server is a goroutine-per-connection tether protocol server. Create it with New,
// run it with Serve and stop it with Close. Its methods are safe for concurrent use.
type Server struct {
	opts   Options
	nextID atomic.Uint64
	conns  atomic.Int64
	authed atomic.Int64

	mu     sync.Mutex
	ln     []net.Listener
	active map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New returns a server configured by opts. It opens no socket.
func New(opts Options) *Server {
	return &Server{opts: opts.withDefaults(), active: make(map[*conn]struct{})}
}

// Stats returns the current connection counts.
func (s *Server) Stats() Stats {
	return Stats{Connections: s.conns.Load(), Authenticated: s.authed.Load()}
}

// Serve accepts connections on ln and serves each in its own goroutine until Close.
// It always returns a non-nil error: ErrServerClosed after Close, otherwise the
// accept error. Serve takes ownership of ln and closes it.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.ln = append(s.ln, ln)
	s.mu.Unlock()
	defer ln.Close()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			// Out of file descriptors and the like pass; back off like net/http does.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := &conn{srv: s, nc: nc, id: s.nextID.Add(1)}
		if !s.track(c) {
			nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

// isTemporary reports accept errors that pass, such as EMFILE.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers c; it reports false once the server is closed.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.active[c] = struct{}{}
	s.wg.Add(1)
	s.conns.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.active, c)
	s.mu.Unlock()
	s.conns.Add(-1)
	s.wg.Done()
}

// Close stops every Serve call, sends CLOSE GoingAway to every connection, closes
// them and waits for their goroutines to return. Closing twice is a no-op.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	lns := s.ln
	conns := make([]*conn, 0, len(s.active))
	for c := range s.active {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		c.close(protocol.CloseGoingAway, "server shutting down")
	}
	s.wg.Wait()
	return nil
}

// conn is one client connection. The read side belongs to its serve goroutine; the
// write side is guarded by wmu so that any goroutine may answer.
type conn struct {
	srv    *Server
	nc     net.Conn
	id     uint64
	authed bool
	rooms  map[string]struct{}
	big    []byte // frames larger than the bufio.Reader are read here

	wmu     sync.Mutex
	wbuf    []byte
	wclosed bool
}

// serve is the connection's goroutine: it reads and answers frames until the peer
// leaves, breaks the protocol or falls silent.
func (c *conn) serve() {
	s := c.srv
	defer s.untrack(c)
	defer c.finishAuthed()
	defer c.nc.Close()
	br := bufio.NewReaderSize(c.nc, s.opts.ReadBufferSize)
	for {
		limit, timeout := s.opts.MaxFrame, s.opts.Heartbeat*3/2
		if !c.authed {
			limit, timeout = protocol.PreAuthMaxFrame, s.opts.AuthTimeout
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
		f, consumed, err := c.readFrame(br, limit)
		if err != nil {
			c.readFailed(err)
			return
		}
		keep := c.handle(f)
		_, _ = br.Discard(consumed)
		if !keep {
			return
		}
	}
}

// readFrame reads one frame. A frame that fits the bufio.Reader is returned in place:
// it is valid until the caller discards the consumed bytes from br. A larger one is
// read into c.big (consumed is then 0) and is valid until the next call.
func (c *conn) readFrame(br *bufio.Reader, limit int) (f protocol.Frame, consumed int, err error) {
	head, err := br.Peek(protocol.Overhead)
	if err != nil {
		return f, 0, err
	}
	// Parse validates the length and version from these 12 bytes, before the body is
	// waited for; n > 0 means the frame has an empty body and is complete.
	if f, n, err := protocol.Parse(head, limit); err != nil || n > 0 {
		return f, n, err
	}
	size := protocol.LengthSize + int(binary.BigEndian.Uint32(head))
	if size <= br.Size() {
		b, err := br.Peek(size)
		if err != nil {
			return f, 0, err
		}
		f, _, err := protocol.Parse(b, limit)
		return f, size, err
	}
	if cap(c.big) < size {
		c.big = make([]byte, size)
	}
	b := c.big[:size]
	if _, err := io.ReadFull(br, b); err != nil {
		return f, 0, err
	}
	f, _, err = protocol.Parse(b, limit)
	return f, 0, err
}

// readFailed closes the connection after a read error with the code the protocol asks
// for: a timeout, a framing error, or just the peer leaving.
func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		if c.authed {
			c.close(protocol.CloseHeartbeatTimeout, "no frame within 1.5 heartbeat intervals")
		} else {
			c.close(protocol.CloseAuthTimeout, "authentication deadline passed")
		}
	case errors.Is(err, protocol.ErrFrameTooShort), errors.Is(err, protocol.ErrFrameTooLarge),
		errors.Is(err, protocol.ErrUnsupportedVersion):
		c.close(protocol.CloseCodeFor(err), err.Error())
	default:
		c.closeSilently()
	}
}

// handle answers one frame and reports whether the connection stays open. f.Body is
// valid only during the call.
func (c *conn) handle(f protocol.Frame) bool {
	if f.Op == protocol.OpPing {
		return c.writeEmpty(protocol.OpPong, f.Seq)
	}
	if !c.authed {
		if f.Op != protocol.OpHello {
			c.close(protocol.CloseProtocolError, "expected HELLO before anything else")
			return false
		}
		return c.hello(f)
	}
	switch f.Op {
	case protocol.OpPong, protocol.OpAck:
		return true
	case protocol.OpSend:
		var m protocol.Send
		if err := m.Decode(f.Body); err != nil {
			return c.writeMsg(&protocol.Error{Code: protocol.ErrorBadRequest, Message: err.Error()}, f.Seq)
		}
		if f.Flags.Has(protocol.FlagNoReply) {
			return true
		}
		return c.writeMsg(&protocol.SendReply{Payload: m.Payload}, f.Seq)
	case protocol.OpSubscribe, protocol.OpUnsubscribe:
		var m protocol.Subscribe
		if err := m.Decode(f.Body); err != nil {
			return c.writeMsg(&protocol.Error{Code: protocol.ErrorBadRequest, Message: err.Error()}, f.Seq)
		}
		if f.Op == protocol.OpSubscribe {
			if c.rooms == nil {
				c.rooms = make(map[string]struct{})
			}
			c.rooms[m.Room] = struct{}{}
		} else {
			delete(c.rooms, m.Room)
		}
		return c.writeEmpty(protocol.OpOK, f.Seq)
	case protocol.OpClose:
		c.closeSilently()
		return false
	}
	if f.Op.IsKnown() {
		c.close(protocol.CloseProtocolError, "unexpected "+f.Op.String()+" from client")
		return false
	}
	return c.writeMsg(&protocol.Error{Code: protocol.ErrorUnknownOpcode, Message: "unknown opcode"}, f.Seq)
}

// hello authenticates insecurely (the token is the user id) and answers AUTH_OK.
func (c *conn) hello(f protocol.Frame) bool {
	var h protocol.Hello
	if err := h.Decode(f.Body); err != nil {
		c.close(protocol.CloseProtocolError, err.Error())
		return false
	}
	user := h.Token
	if user == "" {
		user = "anonymous"
	}
	c.authed = true
	c.srv.authed.Add(1)
	return c.writeMsg(&protocol.AuthOK{
		ConnID:       c.id,
		HeartbeatMs:  uint32(c.srv.opts.Heartbeat / time.Millisecond),
		MaxFrame:     uint32(c.srv.opts.MaxFrame),
		ServerTimeMs: time.Now().UnixMilli(),
		UserID:       user,
	}, f.Seq)
}

// writeEmpty sends a frame with an empty body; it reports whether the write succeeded.
func (c *conn) writeEmpty(op protocol.Opcode, seq uint32) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = protocol.AppendEmpty(c.wbuf[:0], op, seq)
	return c.flushLocked()
}

// writeMsg sends m; it reports whether the write succeeded.
func (c *conn) writeMsg(m protocol.Message, seq uint32) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, err := m.AppendFrame(c.wbuf[:0], seq, 0)
	if err != nil {
		return true // an answer too large to encode is dropped, like an unroutable one
	}
	c.wbuf = b
	return c.flushLocked()
}

// flushLocked writes c.wbuf under a write deadline. A failed write closes the socket,
// which also ends the blocked read.
func (c *conn) flushLocked() bool {
	if c.wclosed {
		return false
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteTimeout))
	if _, err := c.nc.Write(c.wbuf); err != nil {
		c.wclosed = true
		c.nc.Close()
		return false
	}
	return true
}

// close sends a best-effort CLOSE with code and closes the socket. It may be called
// from any goroutine, more than once.
func (c *conn) close(code protocol.CloseCode, reason string) {
	c.wmu.Lock()
	if !c.wclosed {
		if b, err := (&protocol.Close{Code: code, Reason: reason}).AppendFrame(c.wbuf[:0], 0, 0); err == nil {
			c.wbuf = b
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.nc.Write(b)
		}
		c.wclosed = true
	}
	c.wmu.Unlock()
	c.nc.Close()
}

// closeSilently closes the socket without a CLOSE frame (the peer left or asked).
func (c *conn) closeSilently() {
	c.wmu.Lock()
	c.wclosed = true
	c.wmu.Unlock()
	c.nc.Close()
}

// finishAuthed keeps the authenticated count right when a connection ends.
func (c *conn) finishAuthed() {
	if c.authed {
		c.srv.authed.Add(-1)
	}
}
