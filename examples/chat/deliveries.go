package main

import (
	"sort"
	"sync"
	"time"
)

// deliveries maps the QoS1 msg ids the gateway gave a message's recipients
// (PushResult.MsgIDs) back to the chat message, until an "ack" event says a device of
// the recipient processed it: that is the delivery receipt.
//
// An ack event carries a connection's cumulative acknowledgement in the user's
// sequence, so every pending message of that user with an id up to it is delivered.
// Because the PUSH's result and a quick client's ack event travel separately, an ack
// may arrive before the ids are known: the highest id each user acknowledged is kept
// so that add reports such a message delivered at once. Entries older than ttl (the
// gateway's resume window: after it the message can only come from history) are
// dropped, and at most maxPerUser are kept per user. Safe for concurrent use.
type deliveries struct {
	ttl        time.Duration
	maxPerUser int

	mu     sync.Mutex
	byUser map[string]*userDeliveries
	acks   int // ack events seen: every 1024th sweeps idle users
}

type userDeliveries struct {
	acked   uint64    // highest msg id an ack event reported
	ackedAt time.Time // when, to forget idle users
	pending []pending // ascending msgID
}

// pending is one message a recipient has not acknowledged yet.
type pending struct {
	msgID uint64
	conv  string
	seq   int64
	from  string
	at    time.Time
}

func newDeliveries(ttl time.Duration, maxPerUser int) *deliveries {
	return &deliveries{ttl: ttl, maxPerUser: maxPerUser, byUser: make(map[string]*userDeliveries)}
}

// add records that user's copy of p has msg id p.msgID. It returns true when that id
// is already acknowledged (the caller then counts p delivered).
func (d *deliveries) add(user string, p pending) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.byUser[user]
	if u == nil {
		u = &userDeliveries{}
		d.byUser[user] = u
	}
	if p.msgID <= u.acked {
		return true
	}
	i := sort.Search(len(u.pending), func(i int) bool { return u.pending[i].msgID >= p.msgID })
	u.pending = append(u.pending, pending{})
	copy(u.pending[i+1:], u.pending[i:])
	u.pending[i] = p
	d.expire(u, p.at)
	return false
}

// acked records an ack event: user acknowledged up to msgID at now. It returns the
// pending messages that acknowledgement covers, in msg id order.
func (d *deliveries) acked(user string, msgID uint64, now time.Time) []pending {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.byUser[user]
	if u == nil {
		u = &userDeliveries{}
		d.byUser[user] = u
	}
	u.acked = max(u.acked, msgID)
	u.ackedAt = now
	d.expire(u, now)
	n := sort.Search(len(u.pending), func(i int) bool { return u.pending[i].msgID > msgID })
	done := append([]pending(nil), u.pending[:n]...)
	u.pending = append(u.pending[:0], u.pending[n:]...)
	if d.acks++; d.acks%1024 == 0 {
		d.forgetIdle(now)
	}
	return done
}

// expire drops u's entries past ttl or beyond maxPerUser (oldest first); d.mu is held.
func (d *deliveries) expire(u *userDeliveries, now time.Time) {
	drop := 0
	for drop < len(u.pending) && now.Sub(u.pending[drop].at) > d.ttl {
		drop++
	}
	drop = max(drop, len(u.pending)-d.maxPerUser)
	if drop > 0 {
		u.pending = append(u.pending[:0], u.pending[drop:]...)
	}
}

// forgetIdle drops users with nothing pending whose last ack is older than ttl (a new
// epoch restarts their ids anyway); d.mu is held.
func (d *deliveries) forgetIdle(now time.Time) {
	for name, u := range d.byUser {
		if len(u.pending) == 0 && now.Sub(u.ackedAt) > d.ttl {
			delete(d.byUser, name)
		}
	}
}
