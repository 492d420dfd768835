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
// may take. Either limit closes the connection with CodeSlowConsumer.
//
// Holding the write lock across the syscall is also what keeps a write from reaching a
// recycled file descriptor: onClosed takes the lock and sets wclosed before netpoll
// closes the socket.

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
func (c *Conn) writeError(seq uint32, code protocol.Code, msg string) error {
	return c.write(c.errorFrame(seq, code, msg))
}

// errorFrame encodes (and counts) an ERROR frame answering seq; an over-long message is
// cut to fit the protocol's string limit.
func (c *Conn) errorFrame(seq uint32, code protocol.Code, msg string) []byte {
	if len(msg) > protocol.MaxStringLen {
		msg = msg[:protocol.MaxStringLen]
	}
	frame, _ := (&protocol.Error{Code: code, Message: msg}).AppendFrame(nil, seq, 0)
	c.srv.metrics.framesOut(protocol.OpError, len(frame))
	return frame
}

// writeFinal makes a best-effort attempt to put a last frame (CLOSE, AUTH_FAIL) on the
// wire before the socket closes: written directly if the socket is not backlogged,
// dropped otherwise (a backlogged peer is not reading anyway).
func (c *Conn) writeFinal(frame []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed || c.backlog {
		return
	}
	if _, err := sockWrite(c.fd, frame); err == nil {
		c.srv.metrics.framesOut(protocol.Opcode(frame[5]), len(frame))
	}
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
	c.ready.Store(true)
	return c.writeFramesLocked(false, frames)
}

// writeFramesLocked is writeFrames with wmu held; it unlocks wmu.
func (c *Conn) writeFramesLocked(copyQueued bool, frames [][]byte) error {
	if c.wclosed {
		c.wmu.Unlock()
		return ErrConnClosed
	}
	if c.backlog {
		err := c.queueLocked(copyQueued, frames)
		c.wmu.Unlock()
		return err
	}
	// fast path: the socket takes everything.
	total := 0
	for _, f := range frames {
		total += len(f)
	}
	n, err := sockWritev(c.fd, frames)
	c.srv.metrics.writeCalls.Inc()
	if n == total {
		c.wmu.Unlock()
		return nil
	}
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		c.wmu.Unlock()
		// The peer is gone (EPIPE, ECONNRESET): netpoll's poller will see the hang-up
		// too; closing here only makes it prompt.
		c.closeAsync(protocol.CodeNormal, "", false)
		return ErrConnClosed
	}
	return c.startBacklogLocked(copyQueued, frames, n)
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
	err := c.queueLocked(copyQueued, rest)
	c.wmu.Unlock()
	if err == nil {
		c.srv.metrics.backlogs.Inc()
		go c.flushBacklog()
	}
	return err
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
			c.dropBacklogLocked()
			s.metrics.slowConsumers.Inc()
			c.closeAsync(protocol.CodeSlowConsumer, reason, false)
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

// dropBacklogLocked discards the backlog and stops writes; wmu is held.
func (c *Conn) dropBacklogLocked() {
	c.wclosed = true
	c.srv.backlogBytes.Add(-int64(c.outBytes))
	c.out, c.outBytes = nil, 0
}

// flushBacklog drains the backlog queue through netpoll's writer, whose Flush waits for
// the socket to accept the bytes (bounded by the write timeout). It runs in its own
// goroutine, one per backlogged connection, and returns when the queue is empty.
func (c *Conn) flushBacklog() {
	w := c.nc.Writer()
	for {
		c.wmu.Lock()
		if c.wclosed {
			c.wmu.Unlock()
			return
		}
		if len(c.out) == 0 {
			c.backlog = false
			c.wmu.Unlock()
			return
		}
		batch := c.out
		size := 0
		for _, b := range batch {
			size += len(b)
		}
		c.out = nil
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
		if err != nil {
			c.wmu.Lock()
			c.dropBacklogLocked()
			c.wmu.Unlock()
			if c.nc.IsActive() {
				c.srv.metrics.slowConsumers.Inc()
				c.closeWith(protocol.CodeSlowConsumer, "write timeout", false)
			}
			return
		}
		c.wmu.Lock()
		if !c.wclosed { // a close meanwhile already released every queued byte
			c.outBytes -= size
			c.srv.backlogBytes.Add(-int64(size))
		}
		c.wmu.Unlock()
	}
}
