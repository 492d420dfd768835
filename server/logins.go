package server

import (
	"sync"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// The device policy across the nodes of a cluster. A login is told to the nodes holding
// connections of its user, or, when no other node is known to hold any, to every node:
// a connection made on another node within the count flush is not counted yet, and two
// logins of one device on two nodes at once must not both stay. A node receiving a
// login closes its connections of the user that the policy says the login replaces,
// unless its own connection is the newer one: then the other node closes its
// connection when this node's login reaches it. "Newer" compares authentication times
// (each node's wall clock; ties by connection id), which a node keeps only for its
// logins of the last loginMemory: a connection older than that is older than any login
// still in flight.

// loginMemory is how long a node remembers when its connections authenticated.
const loginMemory = 2 * time.Second

// maxRecentLogins bounds that memory; beyond it the oldest are forgotten early.
const maxRecentLogins = 1 << 16

// recentLogins remembers this node's logins of the last loginMemory. Its mutex is a
// leaf.
type recentLogins struct {
	mu  sync.Mutex
	at  map[uint64]int64 // connection id -> authenticated, Unix ns
	ids []uint64         // in authentication order
}

// add records that connection id authenticated at now, forgetting what is older than
// loginMemory.
func (r *recentLogins) add(id uint64, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = map[uint64]int64{}
	}
	r.forgetLocked(now)
	if len(r.ids) >= maxRecentLogins {
		delete(r.at, r.ids[0])
		r.ids = r.ids[1:]
	}
	r.at[id] = now
	r.ids = append(r.ids, id)
}

// when returns when connection id authenticated, if that was within loginMemory.
func (r *recentLogins) when(id uint64, now int64) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetLocked(now)
	at, ok := r.at[id]
	return at, ok
}

func (r *recentLogins) forgetLocked(now int64) {
	n := 0
	for n < len(r.ids) && now-r.at[r.ids[n]] > int64(loginMemory) {
		delete(r.at, r.ids[n])
		n++
	}
	if n > 0 {
		r.ids = append(r.ids[:0:0], r.ids[n:]...)
	}
}

// announceLogin tells the other nodes of a cluster that c logged in as who.
func (s *Server) announceLogin(c *Conn, who *identity) {
	if s.broker == nil {
		return
	}
	now := time.Now().UnixNano()
	s.logins.add(c.id, now)
	_ = s.publish(&ClusterMessage{Kind: ClusterLogin, All: s.remoteCount(CountUser, who.userID) == 0,
		Login: LoginIdentity{UserID: who.userID, DeviceID: who.deviceID, Platform: who.platform,
			TokenHash: who.tokenHash, ConnID: c.id, At: now}})
}

// applyRemoteLogin closes this node's connections of the user that the remote login l
// replaces under the device policy, with CloseReplaced, exactly as a local login would,
// but for a connection of this node that authenticated after l (see above).
func (s *Server) applyRemoteLogin(l LoginIdentity) {
	me := &identity{userID: l.UserID, deviceID: l.DeviceID, platform: l.Platform, tokenHash: l.TokenHash}
	now := time.Now().UnixNano()
	for _, o := range s.hub.userConns(l.UserID, nil) {
		reason, ok := replaces(s.opts.DevicePolicy, me, o.ident())
		if !ok {
			continue
		}
		if at, recent := s.logins.when(o.id, now); recent && (at > l.At || at == l.At && o.id > l.ConnID) {
			continue // ours is the newer login: the other node closes its connection
		}
		o.closeWith(protocol.CloseReplaced, reason)
	}
}
