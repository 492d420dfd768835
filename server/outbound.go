package server

import (
	"errors"
	"syscall"

	"github.com/tether-gw/tether/protocol"
)

// The write path. Frames are written straight to the non-blocking socket with write(2)
// or writev(2) by the goroutine that produced them, under the connection's write lock,
// so a push costs one syscall and never waits for the peer. Only when the kernel's send
// buffer is full does the rest go to a flusher goroutine, which hands it to netpoll's
// writer (that waits for the socket to become writable) and keeps the connection in
// backlog mode until everything queued has drained. Bytes queued in backlog mode are
// bounded by Options.MaxOutboundBytes; netpoll's write timeout bounds how long a backlog
// may take. Either limit closes the connection with CloseSlowConsumer.
//
// Holding the write lock across the syscall is also what keeps a write from reaching a
// recycled file descriptor: onClosed marks writes done and takes the lock before netpoll
// closes the socket (the callback order this relies on is in doc.go).
//
// A close puts its last frame (CLOSE, AUTH_FAIL) after whatever was already written or
// is being flushed, never inside a frame: finishWritesLocked writes it at once when the
// socket is not backlogged, and otherwise drops the queued frames that have not started
// and lets the flusher write it, then close. A slow consumer so gets CLOSE 3002 if it
// drains within finalGrace.

// write queues or writes one frame. frame must not be modified afterwards: in backlog
// mode it is kept, not copied (broadcasts share one frame among all members).
func (c *Conn) write(frame []byte) error {
	return c.writeFrames(false, frame)
}

// writeCopy is write for a caller-owned scratch buffer: the bytes are copied if they
// must be queued.
func (c *Conn) writeCopy(b []byte) error {
	return c.writeFrames(true, b)
}

// writeError sends an ERROR frame answering seq.
func (c *Conn) writeError(seq uint32, code protocol.ErrorCode, msg string) error {
	return c.write(c.errorFrame(seq, code, msg))
}

// errorFrame encodes (and counts) an ERROR frame answering seq; the message is cleaned
// to fit a str field (protocol.CleanText).
func (c *Conn) errorFrame(seq uint32, code protocol.ErrorCode, msg string) []byte {
	frame, _ := (&protocol.Error{Code: code, Message: protocol.CleanText(msg)}).AppendFrame(nil, seq, 0)
	c.srv.metrics.framesOut(protocol.OpError, len(frame))
	return frame
}

// writeFrames writes frames in order with one syscall when the socket can take them,
// and queues what it cannot. copyQueued says the caller reuses its buffers.
func (c *Conn) writeFrames(copyQueued bool, frames ...[]byte) error {
	c.wmu.Lock()
	return c.writeFramesLocked(copyQueued, frames)
}

// writeFirst writes AUTH_OK (and any resume replay) and marks the connection ready in
// the same critical section: a push that sees the connection ready waits for the lock
// and lands after AUTH_OK, and a push made after the client saw AUTH_OK sees it ready.
func (c *Conn) writeFirst(frames [][]byte) error {
	c.wmu.Lock()
	c.markReady()
	return c.writeFramesLocked(false, frames)
}

// writeFramesLocked is writeFrames with wmu held; it unlocks wmu.
func (c *Conn) writeFramesLocked(copyQueued bool, frames [][]byte) error {
	if c.writesDone() {
		c.wmu.Unlock()
		return ErrConnClosed
	}
	if c.link != nil {
		frames = c.link.frameLocked(frames) // transport.go: a WebSocket message header
	}
	return c.writeWireLocked(copyQueued, frames)
}

// writeWireLocked writes bufs, framed for the transport, with one syscall when the
// socket can take them, and queues what it cannot. With a transport link they are
// sealed first (link.sealLocked; queued bytes are sealed by the flusher when it takes
// them), and the rest of a short write is queued as one buffer that stays at the head of
// the queue (headPartial): it must neither be sealed again nor dropped. It unlocks wmu.
func (c *Conn) writeWireLocked(copyQueued bool, bufs [][]byte) error {
	if c.backlog {
		err := c.queueLocked(copyQueued, bufs)
		c.wmu.Unlock()
		return err
	}
	wire := bufs
	if c.link != nil {
		wire = c.link.sealLocked(bufs)
	}
	// fast path: the socket takes everything.
	total := 0
	for _, b := range wire {
		total += len(b)
	}
	n, err := sockWritev(c.fd, wire)
	c.srv.metrics.writeCalls.Inc()
	if n == total {
		c.wmu.Unlock()
		return nil
	}
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		c.wmu.Unlock()
		// The peer is gone (EPIPE, ECONNRESET): netpoll's poller will see the hang-up
		// too; closing here only makes it prompt.
		if !c.closing() {
			go c.closeSilently(protocol.CloseNormal, "peer gone")
		}
		return ErrConnClosed
	}
	if c.link != nil {
		rest := concat(wire)[n:] // a copy: wire may be the caller's buffers
		c.backlog, c.headPartial = true, true
		return c.startFlusherLocked(c.queueLocked(false, [][]byte{rest}))
	}
	return c.startBacklogLocked(copyQueued, wire, n)
}

// startBacklogLocked queues what a short write left over and starts the flusher. It
// unlocks wmu.
func (c *Conn) startBacklogLocked(copyQueued bool, frames [][]byte, written int) error {
	for len(frames) > 0 && written >= len(frames[0]) {
		written -= len(frames[0])
		frames = frames[1:]
	}
	rest := make([][]byte, 0, len(frames))
	if len(frames) > 0 {
		rest = append(rest, frames[0][written:])
		rest = append(rest, frames[1:]...)
	}
	c.backlog = true
	c.headPartial = written > 0
	return c.startFlusherLocked(c.queueLocked(copyQueued, rest))
}

// startFlusherLocked starts the flusher for what the backlog holds, after a short
// write queued it (err is queueLocked's). It unlocks wmu.
func (c *Conn) startFlusherLocked(err error) error {
	start := len(c.out) > 0 // a slow-consumer close may have queued its CLOSE
	if !start {
		c.backlog = false
	}
	c.wmu.Unlock()
	if start {
		c.srv.metrics.backlogs.Inc()
		go c.flushBacklog()
	}
	return err
}

// writeTransport writes bytes a transport layer puts on the wire itself (handshake
// records, the upgrade response, WebSocket control frames): sealed if the layers below
// are established, never framed. b may be reused once it returns.
func (c *Conn) writeTransport(b []byte) error {
	c.wmu.Lock()
	if c.writesDone() {
		c.wmu.Unlock()
		return ErrConnClosed
	}
	return c.writeWireLocked(true, [][]byte{b})
}

// queueLocked appends frames to the backlog queue, closing the connection as a slow
// consumer if that passes its own byte bound or the server-wide one.
func (c *Conn) queueLocked(copyQueued bool, frames [][]byte) error {
	s := c.srv
	for _, f := range frames {
		reason := ""
		switch {
		case c.outBytes+len(f) > s.opts.MaxOutboundBytes:
			reason = "outbound queue full"
		case s.backlogBytes.Add(int64(len(f))) > s.opts.MaxTotalOutbound:
			s.backlogBytes.Add(-int64(len(f)))
			reason = "server outbound budget exhausted"
		}
		if reason != "" {
			c.slowConsumerLocked(reason)
			return ErrConnClosed
		}
		if copyQueued {
			f = append([]byte(nil), f...)
		}
		c.out = append(c.out, f)
		c.outBytes += len(f)
	}
	return nil
}

// slowConsumerLocked closes a backlogged connection whose queue passed a budget: the
// queued frames go, CLOSE 3002 takes their place behind what the flusher is writing, and
// the flusher closes the socket once it is out (or finalGrace passes). wmu is held.
func (c *Conn) slowConsumerLocked(reason string) {
	if !c.markClosing(protocol.CloseSlowConsumer) {
		return
	}
	c.srv.metrics.slowConsumers.Inc()
	c.logClose(protocol.CloseSlowConsumer, reason)
	if c.finishWritesLocked(protocol.AppendClose(nil, protocol.CloseSlowConsumer, reason)) {
		c.srv.wheel.Schedule(&c.timer, c.srv.deadline(finalGrace))
		return
	}
	go c.nc.Close() // not under wmu: the close callback takes it
}

// finishWritesLocked stops writes and puts final (nil for none) on the wire after what
// was already written. It reports whether the flusher will write final and close the
// socket; if false the caller closes it now. wmu is held; a close was marked.
func (c *Conn) finishWritesLocked(final []byte) (pending bool) {
	if c.writesDone() {
		return false
	}
	c.markWritesDone()
	// The frame's metrics are counted for the frame, not for the bytes a transport
	// turns it into.
	countFinal := func() {}
	if final != nil {
		op, size := protocol.Opcode(final[protocol.LengthSize+1]), len(final)
		countFinal = func() { c.srv.metrics.framesOut(op, size) }
	}
	if c.link != nil {
		// Sealed now: every frame queued behind what the flusher holds is dropped
		// below, so nothing is sealed between the flusher's batch and this.
		final = c.link.finalLocked(c, final)
	}
	if !c.backlog {
		if final == nil {
			return false
		}
		n, err := sockWrite(c.fd, final)
		if n == len(final) {
			countFinal()
			return false
		}
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			return false // the peer is gone
		}
		c.backlog, c.headPartial = true, n > 0
		c.out = append(c.out[:0], final[n:])
		c.markSealedTail()
		c.outBytes += len(final) - n
		c.srv.backlogBytes.Add(int64(len(final) - n))
		c.srv.metrics.backlogs.Inc()
		go c.flushBacklog()
		return true
	}
	// Backlogged: a flusher is running. Drop the frames it has not started, except the
	// rest of a frame a short write began, and queue final behind them.
	keep := 0
	if c.headPartial && !c.flushing {
		if len(c.out) == 0 {
			// The rest of a frame the socket began was never queued (it passed a
			// budget): a frame now would land inside it.
			final = nil
		} else {
			keep = 1
		}
	}
	dropped := 0
	for i := keep; i < len(c.out); i++ {
		dropped += len(c.out[i])
		c.out[i] = nil
	}
	c.out = c.out[:keep]
	c.outBytes -= dropped
	c.srv.backlogBytes.Add(-int64(dropped))
	if final == nil {
		return false
	}
	c.out = append(c.out, final)
	c.markSealedTail()
	c.outBytes += len(final)
	c.srv.backlogBytes.Add(int64(len(final)))
	countFinal()
	return true
}

// dropBacklogLocked discards the backlog and stops writes; wmu is held.
func (c *Conn) dropBacklogLocked() {
	c.markWritesDone()
	c.srv.backlogBytes.Add(-int64(c.outBytes))
	c.out, c.outBytes = nil, 0
}

// flushBacklog drains the backlog queue through netpoll's writer, whose Flush waits for
// the socket to accept the bytes (bounded by the write timeout). It runs in its own
// goroutine, one per backlogged connection, and returns when the queue is empty; if a
// close queued its last frame, it closes the socket once that is written.
func (c *Conn) flushBacklog() {
	w := c.nc.Writer()
	for {
		c.wmu.Lock()
		if c.state()&stClosed != 0 {
			c.wmu.Unlock()
			return // onClosed released the queue
		}
		if len(c.out) == 0 {
			c.backlog = false
			done := c.writesDone()
			c.wmu.Unlock()
			if done {
				_ = c.nc.Close() // the closing frame, if any, is out
			}
			return
		}
		batch := c.out
		size := 0
		for _, b := range batch {
			size += len(b)
		}
		if c.link != nil {
			batch = c.link.sealBatchLocked(batch, c.headPartial)
		}
		c.out, c.headPartial, c.flushing = nil, false, true
		c.wmu.Unlock()

		var err error
		for _, b := range batch {
			if _, err = w.WriteBinary(b); err != nil {
				break
			}
		}
		if err == nil {
			err = w.Flush()
		}
		c.wmu.Lock()
		c.flushing = false
		if err != nil {
			c.dropBacklogLocked()
			c.wmu.Unlock()
			if c.nc.IsActive() && c.markClosing(protocol.CloseSlowConsumer) {
				c.srv.metrics.slowConsumers.Inc()
				c.logClose(protocol.CloseSlowConsumer, "write timeout")
			}
			_ = c.nc.Close()
			return
		}
		if c.state()&stClosed == 0 { // a close meanwhile already released every queued byte
			c.outBytes -= size
			c.srv.backlogBytes.Add(-int64(size))
		}
		c.wmu.Unlock()
	}
}
