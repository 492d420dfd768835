package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bytedance/sonic"

	"github.com/tether-gw/tether/protocol"
)

// # QoS1 streams kept by a cluster
//
// On a single node each user's QoS1 stream (stream.go) lives in the hub. In a cluster it
// must outlive any node and be read by every node, so a QoSStore keeps it (the NATS
// broker's is JetStream: server/cluster). The hub's entry of a user then mirrors the
// stored stream for the connections this node holds (user.stored is set), and the
// per-connection machinery of stream.go and inflight.go (windows, ack timers, FlagDup,
// the SLOW_CONSUMER rule against the buffer's bounds) runs on that mirror unchanged:
//
//	push    pushStored appends to the store, outside every lock; the store assigns the
//	        id, so ids and epochs are the store's (one sequence per user for the whole
//	        cluster). A push that cannot be stored is refused (ErrClusterUnavailable):
//	        nothing is delivered that a resume could not find again.
//	live    the store hands every node each stored message, in store order or nearly
//	        (Server.ApplyQoS); a node with a mirror of the user appends it when its id is
//	        the next one and delivers it as a single node would. An id it has is ignored
//	        (it came back twice); one beyond the next is a gap, which the node reads from
//	        the store (Since) and applies in order. So every connection sees the user's
//	        ids in order, whichever nodes appended them.
//	resume  the store decides a HELLO's cursor (Resume, on the pool, before the user
//	        lock is taken); the mirror takes the stored messages the connection needs
//	        that it lacks, and live messages that arrived meanwhile (pending).
//	ack     a device's ACK is written through to the store, asynchronously (ackWriter).
//	touch   the sweeper touches the stored streams of the users connected here, so a
//	        stream does not age out while its user is connected (runSweeper).
//
// Whenever the mirror cannot be made to agree with the store (another epoch, a gap the
// store no longer holds) it is dropped: its connections close with CloseGoingAway and
// resume, which the store decides exactly. While the store cannot be reached, a HELLO is
// served from the mirror (or as a new stream) and QoS1 pushes fail.

// QoSStore keeps users' QoS1 streams where every node of a cluster reads them
// (PROTOCOL.md §11). A Broker that implements QoSBroker provides one. Its methods make
// network requests bounded by ctx and are called without locks held; an error that
// means the store could not be reached wraps ErrClusterUnavailable.
type QoSStore interface {
	// Append gives payload the user's next id and stores it; target says who it is for
	// ("" for every device; see encodeTarget). It returns the message's position.
	Append(ctx context.Context, user string, payload []byte, target string) (epoch, id uint64, err error)
	// AppendMany is Append for each entry of batch (a push to many users), filling in
	// each one's position or error; a user's entries are appended in batch order.
	AppendMany(ctx context.Context, batch []StoreAppend)
	// Resume decides, per §11's table, where a connection of user's device (""
	// for none) with the HELLO cursor (epoch, lastID) starts, and returns the stored
	// messages after that start.
	Resume(ctx context.Context, user, device string, epoch, lastID uint64) (StoredResume, error)
	// Since returns the user's messages after lastID in epoch, whether the cursor was
	// recovered, and the stream's current position.
	Since(ctx context.Context, user string, epoch, lastID uint64) (msgs []StoredMsg, recovered bool, curEpoch, curLast uint64, err error)
	// Ack records that device acknowledged everything up to id in epoch.
	Ack(ctx context.Context, user, device string, epoch, id uint64) error
	// Touch keeps the user's stream from aging out if its newest message is older
	// than olderThan; it reports whether it wrote anything.
	Touch(ctx context.Context, user string, olderThan time.Duration) (bool, error)
}

// QoSBroker is a Broker that also keeps the users' QoS1 streams. Server.Start asks for
// the store after Broker.Start.
type QoSBroker interface {
	Broker
	// QoSStore returns the store; nil keeps the streams per node.
	QoSStore() QoSStore
}

// StoredMsg is one message of a user's stored stream.
type StoredMsg struct {
	// ID is the message id within its epoch.
	ID uint64
	// Payload is the push's payload.
	Payload []byte
	// Target is what Append was given.
	Target string
	// Time is when the store stored it.
	Time time.Time
	// Mark is set for a marker: no message, only the stream's position (ID).
	Mark bool
}

// StoreAppend is one message of a QoSStore.AppendMany batch: User, Payload and Target
// in, the position (Epoch, ID) or Err out.
type StoreAppend struct {
	User    string
	Payload []byte
	Target  string
	Epoch   uint64
	ID      uint64
	Err     error
}

// StoredResume is a QoSStore's resume decision.
type StoredResume struct {
	// Result is AUTH_OK's resume field.
	Result protocol.ResumeResult
	// Epoch and LastID are AUTH_OK's: the connection is sent its messages after LastID.
	Epoch, LastID uint64
	// Msgs are the stored messages after LastID, oldest first, for every device.
	Msgs []StoredMsg
}

// noConn is a connection id no connection has (ids stay below 2^53).
const noConn = ^uint64(0)

// storeTimeout bounds every store request made on a push, a resume or a fill.
const storeTimeout = 3 * time.Second

// QoSBounds returns the resume buffer's bounds (Options.ResumeBuffer, ResumeWindow),
// which a QoSStore applies to what it keeps.
func (s *Server) QoSBounds() (buffer int, window time.Duration) {
	return s.opts.ResumeBuffer, s.opts.ResumeWindow
}

// wireTarget is a target as stored with a message.
type wireTarget struct {
	Device      string   `json:"d,omitempty"`
	Conn        uint64   `json:"c,omitempty"`
	SkipDevices []string `json:"xd,omitempty"`
	SkipConns   []uint64 `json:"xc,omitempty"`
}

// encodeTarget is t as Append stores it ("" for nil: every device).
func encodeTarget(t *target) (string, error) {
	if t == nil {
		return "", nil
	}
	b, err := sonic.Marshal(wireTarget{Device: t.device, Conn: t.conn, SkipDevices: t.skipDevices, SkipConns: t.skipConns})
	return string(b), err
}

// decodeTarget reads a stored target, resolving the excluded connections this node
// holds to their devices; ok is false for one this package did not write.
func (s *Server) decodeTarget(v string) (t *target, ok bool) {
	if v == "" {
		return nil, true
	}
	var w wireTarget
	if err := sonic.UnmarshalString(v, &w); err != nil {
		return nil, false
	}
	t = &target{device: w.Device, conn: w.Conn, skipDevices: w.SkipDevices, skipConns: w.SkipConns}
	for _, id := range w.SkipConns {
		if c := s.hub.conn(id); c != nil {
			if dev := c.ident().deviceID; dev != "" {
				t.skipDevices = append(t.skipDevices, dev)
			}
		}
	}
	return t, true
}

// pushStored is pushQoS1 in a cluster: it stores the message (the store assigns the id)
// and returns the id and how many of this node's connections it is for; delivery comes
// through ApplyQoS (or at once, when this node's mirror is current). An error means
// nothing was stored (ErrClusterUnavailable when the store was out of reach).
func (s *Server) pushStored(uid string, conn *Conn, payload []byte, ex map[uint64]struct{}) (uint64, int, error) {
	return s.pushStoredTo(uid, s.targetFor(uid, conn, ex), payload)
}

// pushStoredTo is pushStored for the message's target t (nil: every device).
func (s *Server) pushStoredTo(uid string, t *target, payload []byte) (uint64, int, error) {
	ids, ns, err := s.pushStoredMany([]string{uid}, []*target{t}, payload)
	if err != nil {
		return 0, 0, err
	}
	return ids[0], ns[0], nil // one user: stored, or err
}

// pushStoredMany stores payload for each user (targets[i] for users[i]) in one
// AppendMany and returns each one's id and how many of this node's connections it is
// for. An id of 0 is a user whose message could not be stored; err then says why
// (the others were stored and are delivered).
func (s *Server) pushStoredMany(users []string, targets []*target, payload []byte) (ids []uint64, ns []int, err error) {
	if _, err := s.fitFrame((&protocol.Push{MsgID: maxMsgID, Payload: payload}).AppendFrame(nil, 0, protocol.FlagAckRequested)); err != nil {
		return nil, nil, err
	}
	batch := make([]StoreAppend, len(users))
	for i, uid := range users {
		tv, err := encodeTarget(targets[i])
		if err != nil {
			return nil, nil, err
		}
		batch[i] = StoreAppend{User: uid, Payload: payload, Target: tv}
	}
	ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
	s.qstore.AppendMany(ctx, batch)
	cancel()
	ids, ns = make([]uint64, len(users)), make([]int, len(users))
	for i := range batch {
		b := &batch[i]
		if b.Err != nil {
			s.metrics.clusterErrors.Inc()
			if err == nil {
				s.log.Warn("cluster: QoS1 message not stored; push refused", "user", b.User, "err", b.Err)
				err = fmt.Errorf("%w: the QoS1 message could not be stored: %v", ErrClusterUnavailable, b.Err)
			}
			continue
		}
		ids[i], ns[i] = b.ID, s.storedLocally(b, targets[i])
	}
	return ids, ns, err
}

// storedLocally counts this node's ready connections of b's user that stored message b
// is for, and delivers it at once if this node's mirror of the user is at the message
// before (its live copy is then ignored); otherwise the live feed brings it in order.
func (s *Server) storedLocally(b *StoreAppend, t *target) int {
	u := s.lockUser(b.User, false)
	if u == nil {
		return 0
	}
	defer u.mu.Unlock()
	n := 0
	q := queued{to: t}
	for _, c := range s.hub.userConns(b.User, nil) {
		if c.pushable() && q.forConn(c, c.ident().deviceID) {
			n++
		}
	}
	if u.stored && u.epoch == b.Epoch && u.lastID == b.ID-1 {
		s.ingestLocked(u, b.Epoch, StoredMsg{ID: b.ID, Payload: b.Payload, Target: b.Target})
	}
	return n
}

// ApplyQoS takes a message the store stored for user (the QoSBroker calls it for every
// stored message, in store order, from one goroutine).
func (s *Server) ApplyQoS(uid string, epoch uint64, m StoredMsg) {
	s.pending.note(uid, epoch, m)
	u := s.lockUser(uid, false)
	if u == nil {
		return
	}
	if !u.stored {
		s.unfollowedLocked(u)
		u.mu.Unlock()
		return
	}
	gap := s.ingestLocked(u, epoch, m)
	u.mu.Unlock()
	if gap {
		s.fill(uid)
	}
}

// ingestLocked applies stored message m of epoch to u's mirror and reports a gap: m is
// beyond the next id, so the messages in between must be read first. u.mu is held and
// u.stored set.
func (s *Server) ingestLocked(u *user, epoch uint64, m StoredMsg) (gap bool) {
	switch {
	case epoch != u.epoch:
		s.dropStreamLocked(u, nil, "the QoS1 stream started a new epoch")
		return false
	case m.ID <= u.lastID:
		return false // had it
	case m.Mark || m.ID > u.lastID+1:
		return true
	}
	s.appendLocked(u, s.storedQueued(u.id, m))
	return false
}

// storedQueued is stored message m of user uid as the buffer holds it: its PUSH frame
// and target. One this node cannot deliver (too large for its MaxFrame, or a target it
// cannot read) keeps its id but is for no connection, and is logged.
func (s *Server) storedQueued(uid string, m StoredMsg) queued {
	frame, err := s.fitFrame((&protocol.Push{MsgID: m.ID, Payload: m.Payload}).AppendFrame(nil, 0, protocol.FlagAckRequested))
	t, ok := s.decodeTarget(m.Target)
	if err != nil || !ok {
		s.log.Error("cluster: stored QoS1 message cannot be delivered", "user", uid, "id", m.ID, "err", err)
		return queued{id: m.ID, at: time.Now().UnixNano(), to: &target{conn: noConn}}
	}
	return queued{id: m.ID, at: time.Now().UnixNano(), to: t, frame: frame}
}

// unfollowedLocked closes, with GOING_AWAY, the connections of a user whose entry does
// not follow the stored stream (they connected while the store was out of reach), so
// that they resume from it. u.mu is held.
func (s *Server) unfollowedLocked(u *user) {
	if len(s.hub.userConns(u.id, nil)) > 0 {
		s.dropStreamLocked(u, nil, "the QoS1 stream is reachable again: resume from it")
	}
}

// fill reads from the store what u's mirror misses and applies it; a mirror the store
// can no longer complete is dropped.
func (s *Server) fill(uid string) {
	for range 4 {
		u := s.lockUser(uid, false)
		if u == nil {
			return
		}
		if !u.stored {
			s.unfollowedLocked(u)
			u.mu.Unlock()
			return
		}
		epoch, last := u.epoch, u.lastID
		u.mu.Unlock()
		ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
		msgs, ok, curEpoch, curLast, err := s.qstore.Since(ctx, uid, epoch, last)
		cancel()
		if err != nil {
			s.metrics.clusterErrors.Inc()
			s.log.Warn("cluster: cannot read the QoS1 stream", "user", uid, "err", err)
			return
		}
		if u = s.lockUser(uid, false); u == nil {
			return
		}
		done := true
		switch {
		case !u.stored || u.epoch != epoch || curEpoch == 0:
			// Dropped meanwhile, or everything aged out: the next message starts anew.
		case curEpoch != epoch || !ok:
			s.dropStreamLocked(u, nil, "QoS1 messages this node missed are no longer stored")
		default:
			for _, m := range msgs {
				if s.ingestLocked(u, epoch, m) {
					break
				}
			}
			done = u.lastID >= curLast || u.epoch != epoch || !u.stored
		}
		u.mu.Unlock()
		if done {
			return
		}
	}
}

// resumeStoredLocked is resumeLocked in a cluster: it makes u's mirror agree with the
// store's decision r for c (err: the store could not decide, and the mirror does) and
// returns AUTH_OK's resume and the id after which c is sent its messages. pend are the
// live messages that arrived while the store decided. u.mu is held.
func (s *Server) resumeStoredLocked(u *user, c *Conn, r StoredResume, err error, pend []pendingMsg, epoch, last uint64) (res protocol.ResumeResult, start uint64, gap bool) {
	if err != nil {
		s.metrics.clusterErrors.Inc()
		s.log.Warn("cluster: QoS1 stream out of reach; resuming from this node's copy", "user", u.id, "err", err)
		res, start = s.resumeLocked(u, c, epoch, last)
		return res, start, false
	}
	head := r.LastID
	if n := len(r.Msgs); n > 0 {
		head = r.Msgs[n-1].ID
	}
	if !u.stored || u.epoch != r.Epoch {
		// The user's other connections here were served another epoch: they resume.
		s.dropStreamLocked(u, c, "the QoS1 stream started a new epoch")
		u.epoch, u.lastID, u.lost, u.dropped = r.Epoch, r.LastID, r.LastID, r.LastID
		u.stored, u.noTrim = true, true
		for _, m := range r.Msgs {
			if gap = s.ingestLocked(u, r.Epoch, m); gap {
				break
			}
		}
	} else {
		// The older messages c needs that the mirror no longer holds go in front.
		first := u.lastID + 1
		if len(u.buf) > 0 {
			first = u.buf[0].id
		}
		if r.LastID+1 < first {
			var pre []queued
			for _, m := range r.Msgs {
				if m.ID >= first {
					break
				}
				pre = append(pre, s.storedQueued(u.id, m))
			}
			if len(pre) == 0 || pre[0].id != r.LastID+1 || pre[len(pre)-1].id != first-1 {
				// Cannot happen but for a store that skips ids: serve from now on.
				s.log.Error("cluster: stored QoS1 messages do not join this node's copy", "user", u.id, "from", r.LastID, "first", first)
				res, start = s.resumed(protocol.ResumeNotRecovered, u.lastID, nil)
				return res, start, false
			}
			u.buf = append(pre, u.buf...)
		}
		// The newer ones are the live feed's, arrived early.
		if head > u.lastID {
			for _, m := range r.Msgs {
				if gap = s.ingestLocked(u, r.Epoch, m); gap {
					break
				}
			}
		}
	}
	for _, p := range pend {
		if !gap && u.stored && u.epoch == p.epoch {
			gap = s.ingestLocked(u, p.epoch, p.msg)
		}
	}
	var d *device
	if dev := c.ident().deviceID; dev != "" {
		d, _ = u.deviceLocked(dev)
	}
	res, start = s.resumed(r.Result, r.LastID, d)
	return res, start, gap
}

// pendingLive holds, for each user whose resume the store is deciding on this node,
// the live messages that arrive meanwhile, so none falls between the store's answer
// and the mirror taking it. Its mutex is a leaf.
type pendingLive struct {
	mu   sync.Mutex
	m    map[string]*pendingSet
	size int // bound per user (Options.ResumeBuffer)
	// resumes counts the resumes under way, so that note, called for every live
	// message, takes no lock when there are none.
	resumes atomic.Int64
}

type pendingSet struct {
	refs int
	msgs []pendingMsg
	over bool // more arrived than the bound: a fill completes the mirror
}

type pendingMsg struct {
	epoch uint64
	msg   StoredMsg
}

// begin starts collecting uid's live messages.
func (p *pendingLive) begin(uid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*pendingSet{}
	}
	ps := p.m[uid]
	if ps == nil {
		ps = &pendingSet{}
		p.m[uid] = ps
	}
	ps.refs++
	p.resumes.Add(1)
}

// end stops collecting for one resume and reports whether more arrived than were kept.
func (p *pendingLive) end(uid string) (over bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.m[uid]
	if ps == nil {
		return false
	}
	over = ps.over
	p.resumes.Add(-1)
	if ps.refs--; ps.refs == 0 {
		delete(p.m, uid)
	}
	return over
}

// peek returns what was collected for uid so far.
func (p *pendingLive) peek(uid string) (msgs []pendingMsg, over bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ps := p.m[uid]; ps != nil {
		return append([]pendingMsg(nil), ps.msgs...), ps.over
	}
	return nil, false
}

// note keeps m if uid's resume is under way.
func (p *pendingLive) note(uid string, epoch uint64, m StoredMsg) {
	if p.resumes.Load() == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.m[uid]
	if ps == nil {
		return
	}
	if len(ps.msgs) >= p.size {
		ps.over = true
		return
	}
	m.Payload = append([]byte(nil), m.Payload...)
	ps.msgs = append(ps.msgs, pendingMsg{epoch: epoch, msg: m})
}

// ackWriter writes devices' acknowledgements through to the store on one goroutine,
// keeping only the latest of each device while a write is under way, so ACKs never wait
// on the network and a burst costs one write per device. Its mutex is a leaf.
type ackWriter struct {
	mu      sync.Mutex
	pending map[ackKey]ackPos
	wake    chan struct{}
}

type ackKey struct{ user, device string }

type ackPos struct{ epoch, id uint64 }

// maxPendingAcks bounds the acknowledgements waiting to be written; beyond it one is
// dropped (counted): the device's resume then names its cursor, or is sent again what
// it acknowledged, never less.
const maxPendingAcks = 1 << 16

// noteAck queues device's acknowledgement up to id in epoch.
func (s *Server) noteAck(user, device string, epoch, id uint64) {
	a := &s.acks
	a.mu.Lock()
	k := ackKey{user, device}
	cur, ok := a.pending[k]
	switch {
	case !ok && len(a.pending) >= maxPendingAcks:
		a.mu.Unlock()
		s.metrics.clusterErrors.Inc()
		return
	case !ok || cur.epoch != epoch || cur.id < id:
		a.pending[k] = ackPos{epoch, id}
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// runAckWriter writes the queued acknowledgements until the server stops, at most one
// batch per ackFlushEvery, so a device acknowledging a stream of messages costs at
// most a few writes a second.
func (s *Server) runAckWriter() {
	a := &s.acks
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-a.wake:
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(ackFlushEvery)
		a.mu.Lock()
		batch := a.pending
		a.pending = make(map[ackKey]ackPos, len(batch))
		a.mu.Unlock()
		work := make(chan ackKey)
		var wg sync.WaitGroup
		for range min(ackWriters, len(batch)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range work {
					p := batch[k]
					ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
					err := s.qstore.Ack(ctx, k.user, k.device, p.epoch, p.id)
					cancel()
					if err != nil {
						s.metrics.clusterErrors.Inc()
					}
				}
			}()
		}
		for k := range batch {
			work <- k
		}
		close(work)
		wg.Wait()
	}
}

// ackWriters is how many acknowledgements runAckWriter writes at once (each is a read
// and a compare-and-set of the user's record: two round trips); ackFlushEvery is the
// least time between two batches.
const (
	ackWriters    = 8
	ackFlushEvery = 250 * time.Millisecond
)

// touchStreams keeps the stored streams of the users connected to this node from aging
// out (runSweeper calls it every quarter of the resume window).
func (s *Server) touchStreams() {
	for _, uid := range s.connectedUsers() {
		if s.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
		_, err := s.qstore.Touch(ctx, uid, s.opts.ResumeWindow/2)
		cancel()
		if err != nil {
			s.metrics.clusterErrors.Inc()
		}
	}
}

// ResyncQoS reads from the store what this node's mirrors missed (the QoSBroker calls
// it after a reconnect, or after it had to drop live messages).
func (s *Server) ResyncQoS() {
	if s.qstore == nil {
		return
	}
	for _, uid := range s.connectedUsers() {
		s.fill(uid)
	}
}

// connectedUsers returns the users with a connection on this node.
func (s *Server) connectedUsers() []string {
	var uids []string
	for i := range s.hub.users {
		sh := &s.hub.users[i]
		sh.mu.RLock()
		for uid, u := range sh.m {
			if len(u.conns) > 0 {
				uids = append(uids, uid)
			}
		}
		sh.mu.RUnlock()
	}
	return uids
}
