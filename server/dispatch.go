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

// Pool task kinds.
const (
	taskMessage uint8 = iota
	taskSubscribe
	taskUnsubscribe
	taskConnect
	taskDisconnect
)

// poolTask is one unit of work queued for a connection's worker-pool task: a client
// request (SEND, SUBSCRIBE, UNSUBSCRIBE) or a connect/disconnect notification.
type poolTask struct {
	kind uint8
	seq  uint32
	room string
	msg  *Message
	code protocol.CloseCode
}

// queue appends req to the connection's queue and reports whether the caller must start
// the pool task that drains it (none is running).
func (c *Conn) queue(req poolTask) (start bool) {
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
func (c *Conn) enqueueRequest(req poolTask) {
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
func (c *Conn) enqueueControl(req poolTask) {
	if c.queue(req) {
		c.releaseQueue()
	}
}

// holdQueue queues req and marks the queue as running without starting a pool task,
// so later requests wait behind req until releaseQueue.
func (c *Conn) holdQueue(req poolTask) {
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
	var keep []poolTask
	for _, req := range q {
		if req.kind == taskConnect || req.kind == taskDisconnect {
			keep = append(keep, req)
			continue
		}
		c.srv.metrics.busy.Inc()
		if req.msg != nil {
			_ = req.msg.Fail(protocol.ErrorBusy, "server busy")
		} else {
			c.inflightDone()
			_ = c.writeError(req.seq, protocol.ErrorBusy, "server busy")
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

// Reply batching: the answers a drain pass produces are written together, one writev
// for a burst of pipelined requests instead of one write(2) per reply. An answer waits
// only while the next queued requests run, and never longer than maxReplyDelay, so a
// slow handler does not hold back the answers before it.
const (
	maxReplyBatch = 64
	maxReplyDelay = 200 * time.Microsecond
)

// drain runs the connection's queued requests in order until the queue is empty,
// writing their answers in batches.
func (c *Conn) drain() {
	var arr [maxReplyBatch][]byte
	out := arr[:0]
	var first int64 // when the oldest unwritten answer was produced (monotonic ns)
	flush := func() {
		if len(out) > 0 {
			_ = c.writeFrames(false, out...)
			clear(out)
			out = out[:0]
		}
	}
	now := monotime()
	for {
		c.qmu.Lock()
		if len(c.reqs) == 0 {
			if len(out) > 0 {
				// Write before giving up the queue, then look again: requests that
				// arrived meanwhile are this pass's to run, after these answers.
				c.qmu.Unlock()
				flush()
				continue
			}
			c.running = false
			c.reqs = nil
			c.qmu.Unlock()
			return
		}
		req := c.reqs[0]
		c.reqs[0] = poolTask{}
		c.reqs = c.reqs[1:]
		c.qmu.Unlock()
		if len(out) > 0 && now-first > int64(maxReplyDelay) {
			flush()
		}
		// One clock read per request: its end is the next one's start.
		f, end := c.process(req, now)
		now = end
		if f != nil {
			if len(out) == 0 {
				first = now
			}
			out = append(out, f)
			if len(out) == maxReplyBatch {
				flush()
			}
		}
	}
}

// process runs one request that started at start (monotonic ns), recovering a handler
// panic, and returns the answer frame to write, if any, and when it ended.
func (c *Conn) process(req poolTask, start int64) (answer []byte, end int64) {
	s := c.srv
	h := s.opts.Handler
	defer func() {
		if p := recover(); p != nil {
			s.metrics.handlerPanics.Inc()
			s.log.Error("handler panicked", "conn", c.id, "user", c.UserID(), "panic", fmt.Sprint(p))
			switch req.kind {
			case taskMessage:
				answer, _ = req.msg.failFrame(protocol.ErrorInternal, "internal error")
			case taskSubscribe, taskUnsubscribe:
				c.inflightDone()
				answer = c.errorFrame(req.seq, protocol.ErrorInternal, "internal error")
			}
			end = monotime()
		}
	}()
	switch req.kind {
	case taskConnect:
		h.OnConnect(c)
	case taskDisconnect:
		h.OnDisconnect(c, req.code)
	case taskMessage:
		answer = c.handleMessage(h, req.msg)
	case taskSubscribe:
		answer = c.handleSubscribe(h, req)
	case taskUnsubscribe:
		s.leave(c, req.room)
		h.OnUnsubscribe(c, req.room)
		c.inflightDone()
		answer = c.okFrame(req.seq)
	}
	end = monotime()
	s.metrics.handlerLatency.Observe(float64(end-start) / 1e9)
	return answer, end
}

// monotime returns a monotonic clock reading in nanoseconds.
func monotime() int64 { return int64(time.Since(clockBase)) }

// clockBase anchors monotime.
var clockBase = time.Now()

// handleMessage runs OnMessage and returns its answer, or nil if the handler deferred it.
func (c *Conn) handleMessage(h Handler, m *Message) []byte {
	c.srv.metrics.messagesUp.Inc()
	reply, err := h.OnMessage(m)
	var frame []byte
	switch {
	case err == ErrDeferReply:
	case err != nil:
		code, msg := errorReply(err)
		frame, _ = m.failFrame(code, msg)
	default:
		frame, _ = m.answer(reply)
	}
	return frame
}

// handleSubscribe asks the handler, joins the room and returns OK or ERROR.
func (c *Conn) handleSubscribe(h Handler, req poolTask) []byte {
	defer c.inflightDone()
	if err := h.OnSubscribe(c, req.room); err != nil {
		code, msg := protocol.ErrorDenied, "subscription denied"
		if re, ok := err.(*ReplyError); ok {
			code, msg = re.Code, re.Message
		}
		return c.errorFrame(req.seq, code, msg)
	}
	if err := c.srv.join(c, req.room); err != nil {
		code := protocol.ErrorBadRequest
		if err == ErrTooManyRooms {
			code = protocol.ErrorTooManyRooms
		}
		return c.errorFrame(req.seq, code, err.Error())
	}
	return c.okFrame(req.seq)
}

// okFrame encodes (and counts) an OK answering seq.
func (c *Conn) okFrame(seq uint32) []byte {
	frame := protocol.AppendEmpty(nil, protocol.OpOK, seq)
	c.srv.metrics.framesOut(protocol.OpOK, len(frame))
	return frame
}
