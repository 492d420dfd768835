package server

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"

	"github.com/cloudwego/netpoll"

	"github.com/tether-gw/tether/protocol"
)

// The read path. netpoll calls onRequest, one call at a time per connection, on its
// goroutine pool whenever bytes are buffered, and calls it again as long as bytes
// remain, so onRequest always consumes everything: whole frames are decoded in place
// and a frame cut short by the read is carried in the connection's Decoder (the only
// copy). Protocol control (PING/PONG, ACK, CLOSE) is answered here; HELLO, SEND,
// SUBSCRIBE and REFRESH go to the worker pool. Answers produced while decoding one read are batched
// into one write.

// scratchPool holds buffers for batching a read's answers into one write.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// onRequest is netpoll's read callback.
func (s *Server) onRequest(ctx context.Context, nc netpoll.Connection) error {
	r := nc.Reader()
	cc, ok := ctx.(*connCtx)
	if !ok {
		// Refused at accept: its CLOSE is already sent; discard whatever it sends.
		_ = r.Skip(r.Len())
		return r.Release()
	}
	c := cc.c
	n := r.Len()
	if n == 0 {
		return nil
	}
	p, err := r.Next(n)
	if err != nil {
		return err
	}
	if c.link != nil {
		c.link.read(c, p) // transport.go: the layers pass tether bytes up to onBytes
	} else {
		c.onBytes(p)
	}
	return r.Release()
}

// readPass is one pass of the read path over the bytes of one read: it handles each
// frame and batches the answers they produce into one write.
type readPass struct {
	c   *Conn
	out *[]byte
}

// onBytes decodes and handles everything in p, which is valid only during the call.
func (c *Conn) onBytes(p []byte) {
	s := c.srv
	s.metrics.bytesIn.Add(len(p))
	st := c.state()
	if st&stClosing != 0 {
		return
	}
	maxFrame := s.opts.MaxFrame
	if st.phase() != phaseAuthed {
		c.preAuthBytes += len(p)
		if c.preAuthBytes > s.opts.PreAuthBudget {
			s.metrics.protocolErrors.Inc()
			c.closeWith(protocol.CloseProtocolError, "too many bytes before authentication")
			return
		}
		maxFrame = protocol.PreAuthMaxFrame
	} else if st&stGoingAway == 0 {
		// Any inbound byte proves liveness: push the heartbeat deadline out with one CAS.
		c.timer.Touch(s.deadline(s.hbTimeout))
	}

	rd := readPass{c: c}
	err := c.decode(p, maxFrame, rd.frame)
	rd.flush()
	if err != nil && !errors.Is(err, errStopDecoding) {
		s.metrics.protocolErrors.Inc()
		code := protocol.CloseCodeFor(err)
		s.log.Debug("protocol error", "conn", c.id, "transport", c.Transport().String(), "remote", c.remoteAddr().String(), "err", err)
		c.closeWith(code, err.Error())
	}
}

// alive pushes an authenticated connection's heartbeat deadline out: a transport's own
// keep-alive (a WebSocket ping or pong) proves liveness like a tether frame.
func (c *Conn) alive() {
	if st := c.state(); st.phase() == phaseAuthed && st&(stGoingAway|stClosing) == 0 {
		c.timer.Touch(c.srv.deadline(c.srv.hbTimeout))
	}
}

// decode calls fn for every frame in p. Frames wholly inside p are parsed in place; a
// frame cut short goes to a Decoder that exists only until the frame completes.
func (c *Conn) decode(p []byte, maxFrame int, fn func(protocol.Frame) error) error {
	defer func() { c.partial.Store(c.dec != nil) }()
	if c.dec != nil {
		// slow path: a frame from an earlier read is pending.
		c.dec.MaxFrame = maxFrame
		err := c.dec.Decode(p, fn)
		if err == nil && c.dec.Buffered() == 0 {
			c.dec = nil
		}
		return err
	}
	for len(p) > 0 {
		f, n, err := protocol.Parse(p, maxFrame)
		if err != nil {
			return err
		}
		if n == 0 {
			c.dec = &protocol.Decoder{MaxFrame: maxFrame}
			return c.dec.Decode(p, fn)
		}
		if err := fn(f); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// errEmptyRoute answers a SEND whose route is empty: no handler route may be empty.
var errEmptyRoute = errors.New("server: empty route")

// errStopDecoding ends decoding of the current read after the connection was closed.
var errStopDecoding = errors.New("server: stop decoding")

// reply appends an answer frame to the batch.
func (rd *readPass) reply(op protocol.Opcode, build func(dst []byte) []byte) {
	if rd.out == nil {
		rd.out = scratchPool.Get().(*[]byte)
	}
	before := len(*rd.out)
	*rd.out = build(*rd.out)
	rd.c.srv.metrics.framesOut(op, len(*rd.out)-before)
}

// frame handles one decoded frame; f.Body is valid only during the call.
func (rd *readPass) frame(f protocol.Frame) error {
	c := rd.c
	s := c.srv
	s.metrics.framesIn(f.Op, protocol.Overhead+len(f.Body))
	st := c.state()
	if st&stClosing != 0 {
		return errStopDecoding
	}
	if f.Op == protocol.OpPing {
		rd.reply(protocol.OpPong, func(dst []byte) []byte { return protocol.AppendEmpty(dst, protocol.OpPong, f.Seq) })
		return nil
	}
	if f.Op == protocol.OpClose {
		// In any state: nobody answers a CLOSE (PROTOCOL.md §6.10).
		c.closeSilently(protocol.CloseNormal, "client closed")
		return errStopDecoding
	}
	switch st.phase() {
	case phaseNew:
		if f.Op != protocol.OpHello {
			return rd.violation("expected HELLO before anything else")
		}
		var h protocol.Hello
		if err := h.Decode(f.Body); err != nil {
			return err
		}
		if !c.beginAuth() {
			return errStopDecoding
		}
		c.startAuth(&h, f.Seq)
		return nil
	case phaseAuthenticating:
		return rd.violation("frame before AUTH_OK")
	}
	return rd.authed(f)
}

// flush writes the answers batched so far, so that they precede a CLOSE.
func (rd *readPass) flush() {
	if rd.out == nil {
		return
	}
	if len(*rd.out) > 0 {
		_ = rd.c.writeCopy(*rd.out)
	}
	*rd.out = (*rd.out)[:0]
	scratchPool.Put(rd.out)
	rd.out = nil
}

// violation closes the connection for a frame not allowed in its state, after the
// answers to the frames before it.
func (rd *readPass) violation(reason string) error {
	rd.flush()
	rd.c.srv.metrics.protocolErrors.Inc()
	rd.c.closeWith(protocol.CloseProtocolError, reason)
	return errStopDecoding
}

// authed handles a frame of an authenticated connection.
func (rd *readPass) authed(f protocol.Frame) error {
	c := rd.c
	switch f.Op {
	case protocol.OpPong:
		return nil
	case protocol.OpSend:
		var m protocol.Send
		err := m.Decode(f.Body)
		if err == nil && m.Route == "" {
			err = errEmptyRoute
		}
		if err != nil {
			if f.Flags&protocol.FlagNoReply != 0 {
				// No answer at all, not even an error, so that it cannot be taken for
				// the answer to a later request reusing the seq (PROTOCOL.md §6.4).
				c.srv.metrics.protocolErrors.Inc()
				return nil
			}
			rd.badRequest(f.Seq, err)
			return nil
		}
		msg := &Message{
			Conn:    c,
			Seq:     f.Seq,
			Route:   m.Route,
			Payload: append([]byte(nil), m.Payload...),
			NoReply: f.Flags&protocol.FlagNoReply != 0,
		}
		rd.enqueue(poolTask{kind: taskMessage, msg: msg})
	case protocol.OpSubscribe, protocol.OpUnsubscribe:
		var m protocol.Subscribe
		if err := m.Decode(f.Body); err != nil {
			rd.badRequest(f.Seq, err)
			return nil
		}
		if m.Room == "" || len(m.Room) > maxRoomName {
			// Refused here for both, so SUBSCRIBE and UNSUBSCRIBE answer alike.
			rd.badRequest(f.Seq, ErrInvalidRoom)
			return nil
		}
		kind := taskSubscribe
		if f.Op == protocol.OpUnsubscribe {
			kind = taskUnsubscribe
		}
		rd.enqueue(poolTask{kind: kind, seq: f.Seq, room: m.Room})
	case protocol.OpAck:
		var m protocol.Ack
		if err := m.Decode(f.Body); err != nil {
			rd.badRequest(f.Seq, err)
			return nil
		}
		c.srv.onAck(c, m.MsgID)
	case protocol.OpRefresh:
		var m protocol.Refresh
		err := m.Decode(f.Body)
		if err == nil && (m.Token == "" || len(m.Token) > protocol.MaxRefreshToken) {
			err = errBadToken
		}
		if err != nil {
			rd.badRequest(f.Seq, err)
			return nil
		}
		rd.startRefresh(m.Token, f.Seq) // refresh.go
	case protocol.OpHello, protocol.OpAuthOK, protocol.OpAuthFail, protocol.OpSendReply,
		protocol.OpPush, protocol.OpOK, protocol.OpGoAway, protocol.OpError, protocol.OpRefreshOK:
		return rd.violation("unexpected " + f.Op.String() + " from client")
	default:
		rd.reply(protocol.OpError, func(dst []byte) []byte {
			b, _ := (&protocol.Error{Code: protocol.ErrorUnknownOpcode, Message: "unknown opcode"}).AppendFrame(dst, f.Seq, 0)
			return b
		})
	}
	return nil
}

// badRequest answers a frame whose body did not decode; the framing is intact, so the
// connection stays.
func (rd *readPass) badRequest(seq uint32, err error) {
	rd.c.srv.metrics.protocolErrors.Inc()
	msg := err.Error()
	rd.reply(protocol.OpError, func(dst []byte) []byte {
		b, _ := (&protocol.Error{Code: protocol.ErrorBadRequest, Message: msg}).AppendFrame(dst, seq, 0)
		return b
	})
}

// enqueue hands a request to the pool in connection order, or answers Busy when the
// connection already has MaxInflight requests outstanding.
func (rd *readPass) enqueue(req poolTask) {
	c := rd.c
	if c.inflight.Add(1) > int32(c.srv.opts.MaxInflight) {
		c.inflight.Add(-1)
		c.srv.metrics.busy.Inc()
		seq := req.seq
		if req.msg != nil {
			if req.msg.NoReply {
				return
			}
			seq = req.msg.Seq
		}
		rd.reply(protocol.OpError, func(dst []byte) []byte {
			b, _ := (&protocol.Error{Code: protocol.ErrorBusy, Message: "too many requests in flight"}).AppendFrame(dst, seq, 0)
			return b
		})
		return
	}
	c.enqueueRequest(req)
}

// tokenSeed keys token hashes, which let the hub tell a reconnect presenting the same
// token from a second login without keeping the token.
var tokenSeed = maphash.MakeSeed()

func hashToken(tok string) uint64 { return maphash.String(tokenSeed, tok) }
