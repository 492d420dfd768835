package server

import (
	"fmt"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// Requests of one connection run on the worker pool strictly in arrival order: a
// connection has at most one pool task at a time, which drains the connection's queue.
// The queue is bounded by Options.MaxInflight (requests beyond it are answered Busy by
// the read path), so no queue grows without bound.

// Request kinds.
const (
	reqMessage uint8 = iota
	reqSubscribe
	reqUnsubscribe
	reqConnect
	reqDisconnect
)

// request is one unit of work for a connection's pool task.
type request struct {
	kind uint8
	seq  uint32
	room string
	msg  *Message
	code protocol.Code
}

// queue appends req to the connection's queue and reports whether the caller must start
// the pool task that drains it (none is running).
func (c *Conn) queue(req request) (start bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	c.reqs = append(c.reqs, req)
	if c.running {
		return false
	}
	c.running = true
	return true
}

// enqueueRequest queues a client request (counted in inflight by the caller); if the
// pool refuses the task, the queued requests are answered Busy.
func (c *Conn) enqueueRequest(req request) {
	if !c.queue(req) {
		return
	}
	if err := c.srv.pool.Submit(c.drain); err != nil {
		c.srv.metrics.poolRejected.Inc()
		c.failQueued()
	}
}

// enqueueControl queues a connect or disconnect notification. They are not counted in
// inflight and are never refused: if the pool is full they run on a goroutine of their
// own.
func (c *Conn) enqueueControl(req request) {
	if c.queue(req) {
		c.releaseQueue()
	}
}

// holdQueue queues req and marks the queue as running without starting a pool task,
// so later requests wait behind req until releaseQueue.
func (c *Conn) holdQueue(req request) {
	c.qmu.Lock()
	c.reqs = append(c.reqs, req)
	c.running = true
	c.qmu.Unlock()
}

// releaseQueue starts the pool task for a queue held by holdQueue.
func (c *Conn) releaseQueue() {
	if err := c.srv.pool.Submit(c.drain); err != nil {
		go c.drain()
	}
}

// failQueued answers Busy to every queued client request after the pool refused the
// connection's task; connect/disconnect notifications still run.
func (c *Conn) failQueued() {
	c.qmu.Lock()
	q := c.reqs
	c.reqs = nil
	var keep []request
	for _, req := range q {
		if req.kind == reqConnect || req.kind == reqDisconnect {
			keep = append(keep, req)
			continue
		}
		c.srv.metrics.busy.Inc()
		if req.msg != nil {
			_ = req.msg.Fail(protocol.CodeBusy, "server busy")
		} else {
			c.inflightDone()
			_ = c.writeError(req.seq, protocol.CodeBusy, "server busy")
		}
	}
	if len(keep) == 0 {
		c.running = false
		c.qmu.Unlock()
		return
	}
	c.reqs = keep
	c.qmu.Unlock()
	go c.drain()
}

// drain runs the connection's queued requests in order until the queue is empty.
func (c *Conn) drain() {
	for {
		c.qmu.Lock()
		if len(c.reqs) == 0 {
			c.running = false
			c.reqs = nil
			c.qmu.Unlock()
			return
		}
		req := c.reqs[0]
		c.reqs[0] = request{}
		c.reqs = c.reqs[1:]
		c.qmu.Unlock()
		c.process(req)
	}
}

// process runs one request, recovering a handler panic.
func (c *Conn) process(req request) {
	s := c.srv
	h := s.opts.Handler
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			s.metrics.handlerPanics.Inc()
			s.log.Error("handler panicked", "conn", c.id, "user", c.UserID(), "panic", fmt.Sprint(p))
			switch req.kind {
			case reqMessage:
				_ = req.msg.Fail(protocol.CodeInternal, "internal error")
			case reqSubscribe, reqUnsubscribe:
				c.inflightDone()
				_ = c.writeError(req.seq, protocol.CodeInternal, "internal error")
			}
		}
	}()
	switch req.kind {
	case reqConnect:
		h.OnConnect(c)
	case reqDisconnect:
		h.OnDisconnect(c, req.code)
	case reqMessage:
		c.handleMessage(h, req.msg)
	case reqSubscribe:
		c.handleSubscribe(h, req)
	case reqUnsubscribe:
		s.leave(c, req.room)
		h.OnUnsubscribe(c, req.room)
		c.inflightDone()
		c.writeOK(req.seq)
	}
	s.metrics.handlerDuration.UpdateDuration(start)
}

// handleMessage runs OnMessage and answers unless the handler deferred the answer.
func (c *Conn) handleMessage(h Handler, m *Message) {
	c.srv.metrics.messagesUp.Inc()
	reply, err := h.OnMessage(m)
	switch {
	case err == ErrDeferReply:
		return
	case err != nil:
		code, msg := errorReply(err)
		_ = m.Fail(code, msg)
	default:
		_ = m.Reply(reply)
	}
}

// handleSubscribe asks the handler, joins the room and answers OK or ERROR.
func (c *Conn) handleSubscribe(h Handler, req request) {
	defer c.inflightDone()
	if err := h.OnSubscribe(c, req.room); err != nil {
		code, msg := protocol.CodeDenied, "subscription denied"
		if re, ok := err.(*ReplyError); ok {
			code, msg = re.Code, re.Message
		}
		_ = c.writeError(req.seq, code, msg)
		return
	}
	if err := c.srv.join(c, req.room); err != nil {
		code := protocol.CodeBadRequest
		if err == ErrTooManyRooms {
			code = protocol.CodeTooManyRooms
		}
		_ = c.writeError(req.seq, code, err.Error())
		return
	}
	c.writeOK(req.seq)
}

// writeOK answers seq with OK.
func (c *Conn) writeOK(seq uint32) {
	frame := protocol.AppendEmpty(nil, protocol.OpOK, seq)
	if c.write(frame) == nil {
		c.srv.metrics.framesOut(protocol.OpOK, len(frame))
	}
}
