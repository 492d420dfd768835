package server

import (
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/timingwheel"
)

// The in-flight window of one connection (PROTOCOL.md §11). A connection with QoS1
// traffic it has not acknowledged has a window, allocated on the first such message and
// freed once everything sent is acknowledged and the connection is caught up with the
// stream, so an idle connection carries only a nil pointer. All of it is guarded by the
// user entry's mutex.
//
// The window sends the stream's messages for the connection in id order, at most
// Options.QoS1Window unacknowledged at once; the next go out as cumulative ACKs open the
// window. When no ACK advances for Options.AckTimeout, everything unacknowledged is sent
// again with FlagDup. The ack timer is a second timer of the connection on the server's
// wheel, told apart from the connection's deadline timer in onExpire.

// window is a connection's QoS1 delivery state.
type window struct {
	// sent: every message of the stream for the connection with an id up to it was
	// written to it (ids of messages not for it count as passed).
	sent uint64
	// acked is the connection's cumulative ACK, at most sent.
	acked uint64
	// n counts the buffered messages for the connection in (acked, sent].
	n int
	// dev is the connection's device record, nil without a device id.
	dev *device
	// timer is the ack timer; due is the wheel time it is armed for, 0 when not armed.
	timer timingwheel.Timer[Conn]
	due   int64
}

// inflightLocked returns c's window, allocating one positioned at id at (everything up to
// it sent and acknowledged) if c has none. u.mu is held.
func (c *Conn) inflightLocked(u *user, at uint64) *window {
	if c.qos != nil {
		return c.qos
	}
	w := &window{sent: at, acked: at}
	w.timer.SetOwner(c)
	if dev := c.ident().deviceID; dev != "" {
		w.dev, _ = u.deviceLocked(dev)
	}
	c.qos = w
	return w
}

// pumpLocked appends to dst the frames of the messages for c after w.sent that the window
// has room for, advancing w, and arms the ack timer if they are the first in flight.
// The caller writes them, in order, before it unlocks u.mu.
func (s *Server) pumpLocked(u *user, c *Conn, w *window, dst [][]byte) [][]byte {
	dev := c.ident().deviceID
	for i := u.search(w.sent); i < len(u.buf) && w.n < s.opts.QoS1Window; i++ {
		q := &u.buf[i]
		w.sent = q.id
		if !q.forConn(c, dev) {
			continue
		}
		frame := q.frame
		if w.dev != nil {
			if q.id <= w.dev.sent {
				frame = dupFrame(frame)
				s.metrics.redeliveredReconnect.Inc()
			} else {
				w.dev.sent = q.id
			}
		}
		dst = append(dst, frame)
		w.n++
	}
	if w.n == 0 {
		// Nothing for c in the rest of the buffer (the window has room): caught up.
		w.sent = u.lastID
	}
	if w.n > 0 && w.due == 0 {
		s.armAckTimer(w)
	}
	return dst
}

// armAckTimer (re)arms w's ack timer for one AckTimeout from now, unless redelivery on a
// live connection is off.
func (s *Server) armAckTimer(w *window) {
	if s.opts.AckTimeout < 0 {
		return
	}
	w.due = s.wheel.Clock() + int64(s.opts.AckTimeout)
	s.wheel.Schedule(&w.timer, w.due)
}

// eachInFlight calls fn for every buffered message in flight to c: for c, with an id in
// (w.acked, w.sent]. u.mu is held.
func (u *user) eachInFlight(c *Conn, w *window, fn func(q *queued)) {
	dev := c.ident().deviceID
	for i := u.search(w.acked); i < len(u.buf) && u.buf[i].id <= w.sent; i++ {
		if u.buf[i].forConn(c, dev) {
			fn(&u.buf[i])
		}
	}
}

// dupFrame returns a copy of a PUSH frame with FlagDup set.
func dupFrame(frame []byte) []byte {
	f := append([]byte(nil), frame...)
	f[protocol.LengthSize+2] |= byte(protocol.FlagDup)
	return f
}

// countPushes counts PUSH frames written to one connection.
func (s *Server) countPushes(frames [][]byte) {
	for _, f := range frames {
		s.metrics.framesOut(protocol.OpPush, len(f))
	}
	s.metrics.pushed.Add(len(frames))
}

// onAck applies a client's cumulative ACK: it acknowledges every message sent to this
// connection with an id up to msgID (an id beyond what was sent counts as what was
// sent), advances the device's acknowledgement, sends what the opened window lets
// through, and trims what every device acknowledged. An ACK that advances nothing is
// ignored.
func (s *Server) onAck(c *Conn, msgID uint64) {
	s.metrics.acks.Inc()
	if !c.pushable() {
		return // nothing was sent yet; and c.user is published before the connection is pushable
	}
	if acked := s.applyAck(c, msgID); acked != 0 {
		if h, ok := s.opts.Handler.(AckHandler); ok {
			h.OnAck(c, acked)
		}
	}
}

// applyAck is onAck under the user's lock; it returns the connection's new cumulative
// acknowledgement, or 0 if the ACK advanced nothing.
func (s *Server) applyAck(c *Conn, msgID uint64) uint64 {
	u := c.user
	u.mu.Lock()
	defer u.mu.Unlock()
	w := c.qos
	if u.dead || w == nil {
		return 0
	}
	msgID = min(msgID, w.sent)
	if msgID <= w.acked {
		return 0
	}
	w.acked = msgID
	w.n = 0 // recounted: messages in flight may have been trimmed meanwhile
	u.eachInFlight(c, w, func(*queued) { w.n++ })
	if w.dev != nil {
		w.dev.acked = max(w.dev.acked, msgID)
		if u.stored {
			s.noteAck(u.id, w.dev.id, u.epoch, w.dev.acked) // written through (qosstore.go)
		}
	}
	var out [8][]byte
	frames := s.pumpLocked(u, c, w, out[:0])
	if len(frames) > 0 && c.writeFrames(false, frames...) == nil {
		s.countPushes(frames)
	}
	if w.n > 0 {
		s.armAckTimer(w) // progress: the timeout counts from this ACK
	} else {
		s.settleLocked(u, c, w)
	}
	u.trimLocked()
	return msgID
}

// settleLocked frees c's window w once nothing is in flight and c is caught up with the
// stream, so an idle connection holds no window. A timer that already fired finds
// nothing in flight, or no window. u.mu is held.
func (s *Server) settleLocked(u *user, c *Conn, w *window) {
	if w.n > 0 {
		return
	}
	s.wheel.Cancel(&w.timer)
	w.due = 0
	if w.sent == u.lastID {
		c.qos = nil
	}
}

// onAckTimeout runs on the wheel's dispatcher when c's ack timer fires: if no ACK
// advanced for AckTimeout and messages are still in flight, it sends them all again,
// with FlagDup, in id order, and rearms the timer.
func (s *Server) onAckTimeout(c *Conn) {
	u := c.user
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	w := c.qos
	if u.dead || w == nil || w.n == 0 || w.due == 0 || s.wheel.Clock() < w.due || !c.pushable() {
		return // rearmed, answered or freed since it fired
	}
	var frames [][]byte
	u.eachInFlight(c, w, func(q *queued) { frames = append(frames, dupFrame(q.frame)) })
	if len(frames) == 0 {
		// What was in flight left the buffer (acknowledged by another connection of
		// the device, or evicted, which closed this one).
		w.n = 0
		s.settleLocked(u, c, w)
		return
	}
	if c.writeFrames(false, frames...) != nil {
		w.due = 0 // closed: stop the timer
		return
	}
	s.countPushes(frames)
	s.metrics.redeliveredTimeout.Add(len(frames))
	s.armAckTimer(w)
}
