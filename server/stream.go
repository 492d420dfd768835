package server

import (
	"slices"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// QoS1 delivery and resume (PROTOCOL.md §11). Every user with a recent connection has an
// entry (user.go) holding a message stream: an epoch unique to the entry, increasing
// message ids, and a buffer of the encoded frames bounded by Options.ResumeBuffer
// messages and Options.ResumeWindow of age. A message leaves the buffer early once every
// device that needs it acknowledged it.
//
// Each device (a device id of the user) has a record with its cumulative ACK, which
// survives its connections: a new connection of the device, with or without a cursor,
// is sent what the device has not acknowledged. Each live connection has an in-flight
// window (inflight.go) of at most Options.QoS1Window unacknowledged messages; the rest
// wait in the buffer and go out as ACKs open the window. A message that leaves the
// buffer before a live connection that needs it was sent it and acknowledged it closes
// that connection with CloseSlowConsumer, so its resume says "not recovered": nothing is
// dropped silently.
//
// The entry's mutex serializes everything: QoS1 pushes, ACKs, ack timeouts, and a
// connection joining the user, getting AUTH_OK and its replay, so no message is missed
// or reordered in between.

// queued is one buffered QoS1 message.
type queued struct {
	id    uint64
	at    int64   // unix ns
	to    *target // nil: every connection of the user
	frame []byte  // the PUSH without FlagDup
}

// target narrows who a buffered message is for.
type target struct {
	// device is the one device the message is for (a QoS1 push to a connection that
	// has a device id); conn the one connection (a push to a connection without one).
	device string
	conn   uint64
	// skipDevices and skipConns are excluded: devices for the excluded connections
	// that have a device id, connections for those that have none.
	skipDevices []string
	skipConns   []uint64
}

// forConn reports whether q is for connection c of device dev ("" for none).
func (q *queued) forConn(c *Conn, dev string) bool {
	t := q.to
	switch {
	case t == nil:
		return true
	case t.conn != 0:
		return t.conn == c.id
	case t.device != "":
		return t.device == dev
	}
	if dev != "" {
		return !slices.Contains(t.skipDevices, dev)
	}
	return !slices.Contains(t.skipConns, c.id)
}

// forDevice reports whether q is for device dev (non-empty) on any of its connections.
func (q *queued) forDevice(dev string) bool {
	t := q.to
	switch {
	case t == nil:
		return true
	case t.conn != 0:
		return false
	case t.device != "":
		return t.device == dev
	}
	return !slices.Contains(t.skipDevices, dev)
}

// search returns the index of the first buffered message with an id above id.
func (u *user) search(id uint64) int {
	i, _ := slices.BinarySearchFunc(u.buf, id+1, func(q queued, id uint64) int {
		switch {
		case q.id < id:
			return -1
		case q.id > id:
			return 1
		}
		return 0
	})
	return i
}

// evictLocked drops buffered messages past the count or age bound, and closes the live
// connections that still needed one of them. u.mu is held.
func (s *Server) evictLocked(u *user, now int64) {
	drop := 0
	over := len(u.buf) - s.opts.ResumeBuffer
	oldest := now - int64(s.opts.ResumeWindow)
	for drop < len(u.buf) && (drop < over || u.buf[drop].at < oldest) {
		drop++
	}
	if drop == 0 {
		return
	}
	gone := u.buf[:drop]
	buf := connSlices.Get().(*[]*Conn)
	cs := s.hub.userConns(u.id, (*buf)[:0])
	for _, c := range cs {
		q := c.qos
		if q == nil {
			continue // caught up and acknowledged
		}
		dev := c.ident().deviceID
		for i := range gone {
			if gone[i].id > q.acked && gone[i].forConn(c, dev) && !c.closing() {
				s.metrics.lostCloses.Inc()
				c.closeWith(protocol.CloseSlowConsumer, "unacknowledged QoS1 messages left the resume buffer") // under u.mu: allowed (doc.go)
				break
			}
		}
	}
	clear(cs)
	*buf = cs[:0]
	connSlices.Put(buf)
	u.lost = gone[drop-1].id
	u.dropped = u.lost
	u.dropFront(drop)
}

// dropFront removes the first n buffered messages.
func (u *user) dropFront(n int) {
	clear(u.buf[:n])
	u.buf = u.buf[n:]
	if len(u.buf) == 0 {
		u.buf = nil
	}
}

// trimLocked drops the buffered messages at the front that every device needing them
// acknowledged. u.mu is held.
func (u *user) trimLocked() {
	if u.noTrim {
		return
	}
	n := 0
	for n < len(u.buf) && u.ackedByAll(&u.buf[n]) {
		n++
	}
	if n > 0 {
		u.dropped = u.buf[n-1].id
		u.dropFront(n)
	}
}

// ackedByAll reports whether every device record that q is for acknowledged it.
func (u *user) ackedByAll(q *queued) bool {
	if q.to != nil && q.to.conn != 0 {
		return false // for a connection without a device id; noTrim is set anyway
	}
	for _, d := range u.devices {
		if d.acked < q.id && q.forDevice(d.id) {
			return false
		}
	}
	return true
}

// pushQoS1 assigns the user's next message id, buffers the frame and sends it to the
// user's ready connections it is for (only to the connection conn, and its device, when
// conn is not nil), within each one's in-flight window. It returns the id and the
// connections the message was sent or queued to; ok is false if the user has no entry
// (offline, nothing kept).
func (s *Server) pushQoS1(uid string, conn *Conn, payload []byte, ex map[uint64]struct{}) (id uint64, n int, ok bool, err error) {
	u := s.lockUser(uid, false)
	if u == nil {
		return 0, 0, false, nil
	}
	defer u.mu.Unlock()
	if u.lastID >= maxMsgID {
		s.renewLocked(u)
	}
	id = u.lastID + 1
	frame, err := s.fitFrame((&protocol.Push{MsgID: id, Payload: payload}).AppendFrame(nil, 0, protocol.FlagAckRequested))
	if err != nil {
		return 0, 0, true, err
	}
	q := queued{id: id, at: time.Now().UnixNano(), frame: frame}

	q.to = s.targetFor(uid, conn, ex)
	return id, s.appendLocked(u, q), true, nil
}

// targetFor returns who a QoS1 message of user uid is for: only the connection conn
// (its device, when it has one) if conn is not nil; else every connection of the user
// but those in ex (their devices, for those that have one). nil is everyone. An
// excluded connection of another node (in a cluster) is kept by id: the node holding it
// tells its device (resolveTarget).
func (s *Server) targetFor(uid string, conn *Conn, ex map[uint64]struct{}) *target {
	if conn != nil {
		if dev := conn.ident().deviceID; dev != "" {
			return &target{device: dev}
		}
		return &target{conn: conn.id}
	}
	if len(ex) == 0 {
		return nil
	}
	t := &target{}
	for _, c := range s.hub.userConns(uid, nil) {
		if _, skip := ex[c.id]; skip {
			if dev := c.ident().deviceID; dev != "" {
				t.skipDevices = append(t.skipDevices, dev)
			} else {
				t.skipConns = append(t.skipConns, c.id)
			}
		}
	}
	if s.qstore != nil {
		for id := range ex {
			if !s.isLocal(id) {
				t.skipConns = append(t.skipConns, id)
			}
		}
	}
	if len(t.skipDevices)+len(t.skipConns) == 0 {
		return nil
	}
	return t
}

// appendLocked adds q, the user's next message (q.id is u.lastID+1), to the buffer and
// sends it to the user's ready connections it is for, within each one's in-flight
// window, and returns how many connections it was sent or queued to. u.mu is held.
func (s *Server) appendLocked(u *user, q queued) (n int) {
	id := q.id
	u.lastID = id
	u.buf = append(u.buf, q)
	s.metrics.qos1Buffered.Inc()

	buf := connSlices.Get().(*[]*Conn)
	cs := s.hub.userConns(u.id, (*buf)[:0])
	var out [1][]byte
	for _, c := range cs {
		if !c.pushable() {
			continue
		}
		dev := c.ident().deviceID
		if !q.forConn(c, dev) {
			if c.qos != nil && c.qos.sent == id-1 {
				c.qos.sent = id // caught up: nothing to send, nothing to skip later
			}
			continue
		}
		n++
		w := c.inflightLocked(u, id-1)
		f := s.pumpLocked(u, c, w, out[:0])
		if len(f) > 0 && c.writeFrames(false, f...) == nil {
			s.countPushes(f)
		}
		if w.sent < id {
			s.metrics.windowFull.Inc() // waits for an ACK to open the window
		}
	}
	clear(cs)
	*buf = cs[:0]
	connSlices.Put(buf)
	s.evictLocked(u, q.at)
	return n
}

// resumeLocked decides where the delivery of the user's stream to c starts after the
// AUTH_OK answering a HELLO with cursor (epoch, last): the id after which c is sent the
// messages for it, and the resume outcome AUTH_OK reports (PROTOCOL.md §11). u.mu is
// held.
func (s *Server) resumeLocked(u *user, c *Conn, epoch, last uint64) (protocol.ResumeResult, uint64) {
	s.evictLocked(u, time.Now().UnixNano())
	var d *device
	known := false
	if dev := c.ident().deviceID; dev != "" {
		d, known = u.deviceLocked(dev)
	} else {
		u.noTrim = true
	}
	res, start := protocol.ResumeNone, u.lastID
	cursor := epoch != 0 || last != 0
	switch {
	case cursor && (epoch != u.epoch || last > u.lastID):
		res = protocol.ResumeNotRecovered
	case cursor:
		// The cursor says what the client has; the device's ACKs may say more. A device
		// seen before in this epoch only needs what the bounds did not evict; anyone
		// else also what acknowledgements trimmed.
		start, floor := last, u.dropped
		if known {
			start, floor = max(last, d.acked), u.lost
		}
		if start < floor {
			res, start = protocol.ResumeNotRecovered, u.lastID
		} else {
			res = protocol.ResumeRecovered
		}
		return s.resumed(res, start, d)
	case known:
		// No cursor, a known device: send what it has not acknowledged.
		start = d.acked
		if start < u.lost {
			res, start = protocol.ResumeNotRecovered, u.lastID
		}
	}
	return s.resumed(res, start, d)
}

// resumed records a resume decision: counts it and moves the device's position to start
// (everything up to it is the client's, or given up as not recovered).
func (s *Server) resumed(res protocol.ResumeResult, start uint64, d *device) (protocol.ResumeResult, uint64) {
	switch res {
	case protocol.ResumeRecovered:
		s.metrics.resumeRecovered.Inc()
	case protocol.ResumeNotRecovered:
		s.metrics.resumeFailed.Inc()
	}
	if d != nil {
		d.acked = max(d.acked, start)
	}
	return res, start
}

// renewLocked starts a new epoch for a stream whose ids are exhausted (2^53-1 messages:
// never in practice, but ids must stay exact as JSON numbers). The user's connections
// are closed with a reconnect code; their resume names the old epoch and is not
// recovered. u.mu is held.
func (s *Server) renewLocked(u *user) {
	s.dropStreamLocked(u, nil, "message ids exhausted: the stream starts a new epoch")
	u.epoch = s.hub.nextEpoch()
}

// dropStreamLocked empties the user's stream: the connections of the user but keep are
// closed with CloseGoingAway (a reconnect code) and reason, and the buffer, the device
// records and the position are forgotten. u.mu is held.
func (s *Server) dropStreamLocked(u *user, keep *Conn, reason string) {
	for _, c := range s.hub.userConns(u.id, nil) {
		if c == keep {
			continue
		}
		if q := c.qos; q != nil {
			s.wheel.Cancel(&q.timer)
			c.qos = nil
		}
		c.closeWith(protocol.CloseGoingAway, reason) // under u.mu: allowed (doc.go)
	}
	clear(u.buf)
	u.buf, u.devices, u.noTrim, u.stored = nil, nil, false, false
	u.lastID, u.lost, u.dropped = 0, 0, 0
}

// sweep drops the entries of users who have had no connection for the resume window,
// and ages out buffered messages of the rest. It runs periodically on one goroutine.
func (s *Server) sweep(now int64) {
	horizon := now - int64(s.opts.ResumeWindow)
	var idle []*user
	for i := range s.hub.users {
		sh := &s.hub.users[i]
		sh.mu.RLock()
		for _, u := range sh.m {
			if u.left != 0 && u.left < horizon {
				idle = append(idle, u)
			}
		}
		sh.mu.RUnlock()
		for _, u := range idle {
			u.mu.Lock()
			sh.mu.Lock()
			if len(u.conns) == 0 && u.left != 0 && u.left < horizon && sh.m[u.id] == u {
				delete(sh.m, u.id)
				u.dead = true
			}
			sh.mu.Unlock()
			if !u.dead {
				s.evictLocked(u, now)
			}
			u.mu.Unlock()
		}
		idle = idle[:0]
	}
}

// runSweeper calls sweep every quarter of the resume window until the server stops.
func (s *Server) runSweeper() {
	every := s.opts.ResumeWindow / 4
	if every < time.Second {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.sweep(now.UnixNano())
			if s.qstore != nil {
				s.touchStreams()
			}
		}
	}
}
