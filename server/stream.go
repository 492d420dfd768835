package server

import (
	"sync"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// QoS1 delivery and resume. Every user with a recent connection has an entry holding a
// message stream: an epoch unique to the entry and, for QoS1 pushes, monotonically
// increasing message ids and a buffer of the encoded frames, bounded by
// Options.ResumeBuffer messages and Options.ResumeWindow of age. A client reconnecting
// with the (epoch, last id) it last saw gets exactly the buffered messages after that id,
// in order, right after AUTH_OK; if the buffer no longer reaches back that far, or the
// epoch is not the entry's (the process restarted, or the entry was swept), AUTH_OK says
// "not recovered" and the app re-syncs from its backend.
//
// The entry's mutex serializes QoS1 pushes with resuming connections: a connection joins
// the user's connections, gets AUTH_OK and its replay under the same lock a QoS1 push
// takes to assign an id and write, so no message is missed or reordered in between.
// Entries outlive their last connection by the resume window, then the sweeper drops
// them.

// user is one user's hub entry.
type user struct {
	id string
	// conns are the user's authenticated connections; guarded by the user shard lock,
	// like left.
	conns []*Conn
	// left is when the last connection closed (unix ns), 0 while connected.
	left int64

	// mu guards the stream and dead.
	mu     sync.Mutex
	dead   bool // swept: look the entry up again
	epoch  uint64
	lastID uint64
	floor  uint64 // the highest id no longer buffered (evicted or never kept)
	buf    []queued
}

// queued is one buffered QoS1 message.
type queued struct {
	id    uint64
	at    int64 // unix ns
	conn  uint64
	frame []byte
}

// PushOptions modifies a push to users or connections.
type PushOptions struct {
	// QoS1 requests at-least-once delivery: each targeted user's message gets the user's
	// next message id, is kept in the user's resume buffer, and is sent with the
	// ACK_REQUESTED flag. A client that reconnects within the resume window receives
	// what it missed. Users with no recent connection are counted offline and get nothing.
	QoS1 bool
	// Exclude lists connection ids that must not receive the push.
	Exclude []uint64
}

// PushResult says what a push reached.
type PushResult struct {
	// Delivered counts connections the frame was written or queued to.
	Delivered int
	// Offline counts targeted users (or connections) with no live connection.
	Offline int
	// MsgIDs holds, for a QoS1 push, the message id each reachable user got.
	MsgIDs map[string]uint64
}

// Epoch of a user's stream, with the latest message id: what AUTH_OK announces.
func (u *user) cursor() (epoch, last uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.epoch, u.lastID
}

// lockUser returns the user's live entry, locked. With create unset it returns nil when
// the user has none.
func (s *Server) lockUser(uid string, create bool) *user {
	for {
		u := s.hub.user(uid, create)
		if u == nil {
			return nil
		}
		u.mu.Lock()
		if !u.dead {
			return u
		}
		u.mu.Unlock()
	}
}

// evictLocked drops buffered messages past the count or age bound. u.mu is held.
func (s *Server) evictLocked(u *user, now int64) {
	drop := 0
	over := len(u.buf) - s.opts.ResumeBuffer
	oldest := now - int64(s.opts.ResumeWindow)
	for drop < len(u.buf) && (drop < over || u.buf[drop].at < oldest) {
		u.floor = u.buf[drop].id
		u.buf[drop] = queued{}
		drop++
	}
	if drop > 0 {
		u.buf = append(u.buf[:0], u.buf[drop:]...)
		if len(u.buf) == 0 {
			u.buf = nil
		}
	}
}

// pushQoS1 assigns the user's next message id, buffers the frame and writes it to the
// user's ready connections (or only to conn, when not 0). It returns the id and the
// connections reached; ok is false if the user has no entry (offline, nothing kept).
func (s *Server) pushQoS1(uid string, conn uint64, payload []byte, ex map[uint64]struct{}) (id uint64, n int, ok bool, err error) {
	u := s.lockUser(uid, false)
	if u == nil {
		return 0, 0, false, nil
	}
	defer u.mu.Unlock()
	frame, err := (&protocol.Push{MsgID: u.lastID + 1, Payload: payload}).AppendFrame(nil, 0, protocol.FlagAckRequested)
	if err != nil {
		return 0, 0, true, err
	}
	if len(frame)-protocol.LengthSize > s.opts.MaxFrame {
		return 0, 0, true, ErrPayloadTooLarge
	}
	u.lastID++
	now := time.Now().UnixNano()
	u.buf = append(u.buf, queued{id: u.lastID, at: now, conn: conn, frame: frame})
	s.evictLocked(u, now)
	s.metrics.qos1Buffered.Inc()

	buf := connSlices.Get().(*[]*Conn)
	cs := s.hub.userConns(uid, (*buf)[:0])
	if conn != 0 {
		kept := cs[:0]
		for _, c := range cs {
			if c.id == conn {
				kept = append(kept, c)
			}
		}
		cs = kept
	}
	n = s.fanOut(cs, frame, ex)
	clear(cs)
	*buf = cs[:0]
	connSlices.Put(buf)
	return u.lastID, n, true, nil
}

// resumeLocked decides a resuming connection's result and returns the frames to replay
// after AUTH_OK. u.mu is held.
func (s *Server) resumeLocked(u *user, epoch, last uint64) (protocol.ResumeResult, [][]byte) {
	if epoch == 0 && last == 0 {
		return protocol.ResumeNone, nil
	}
	s.evictLocked(u, time.Now().UnixNano())
	if epoch != u.epoch || last > u.lastID || last < u.floor {
		s.metrics.resumeFailed.Inc()
		return protocol.ResumeNotRecovered, nil
	}
	var frames [][]byte
	for _, q := range u.buf {
		// Messages aimed at one connection are not replayed to another.
		if q.id > last && q.conn == 0 {
			frames = append(frames, q.frame)
		}
	}
	s.metrics.resumeRecovered.Inc()
	s.metrics.resumeReplayed.Add(len(frames))
	return protocol.ResumeRecovered, frames
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
		}
	}
}
