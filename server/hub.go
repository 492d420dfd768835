package server

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// hubShards is the number of lock shards of each hub index. A power of two; 64 keeps
// contention negligible on the machines we target while costing a few KB.
const hubShards = 64

// hub indexes live connections: every accepted connection by id, and authenticated ones
// by user. Each index is sharded by hash so no global lock sits on the accept, auth or
// push path. Where its shard locks sit in the lock order: doc.go.
type hub struct {
	conns  [hubShards]connShard
	users  [hubShards]userShard
	seed   maphash.Seed
	total  atomic.Int64 // accepted and not yet closed
	authed atomic.Int64 // authenticated and not yet closed

	// epochBase and epochs make each user entry's epoch unique within the process and
	// unlikely to repeat across restarts.
	epochBase uint64
	epochs    atomic.Uint64
}

type connShard struct {
	mu sync.RWMutex
	m  map[uint64]*Conn
}

type userShard struct {
	mu sync.RWMutex
	m  map[string]*user
}

// victim is a connection displaced by a newer login; it is closed with CLOSE
// CloseReplaced and reason.
type victim struct {
	c      *Conn
	reason string
}

// Why a victim was replaced (the CLOSE reason).
const (
	replacedSameDevice = "replaced by a newer login of the same device"
	replacedSameToken  = "replaced by a newer login with the same token"
	replacedByPolicy   = "replaced by a newer login (device policy)"
)

func newHub() *hub {
	h := &hub{seed: maphash.MakeSeed(), epochBase: uint64(time.Now().UnixMicro())}
	for i := range h.conns {
		h.conns[i].m = make(map[uint64]*Conn)
		h.users[i].m = make(map[string]*user)
	}
	return h
}

func (h *hub) connShard(id uint64) *connShard { return &h.conns[id&(hubShards-1)] }

func (h *hub) userShard(uid string) *userShard {
	return &h.users[maphash.String(h.seed, uid)&(hubShards-1)]
}

// addConn indexes a newly accepted connection.
func (h *hub) addConn(c *Conn) {
	sh := h.connShard(c.id)
	sh.mu.Lock()
	sh.m[c.id] = c
	sh.mu.Unlock()
	h.total.Add(1)
}

// conn returns the live connection with id, or nil.
func (h *hub) conn(id uint64) *Conn {
	sh := h.connShard(id)
	sh.mu.RLock()
	c := sh.m[id]
	sh.mu.RUnlock()
	return c
}

// user returns the user's entry, creating it if create is set (nil otherwise when
// there is none). The entry may be swept once the user has had no connection for the
// resume window; callers that lock u.mu must check u.dead.
func (h *hub) user(uid string, create bool) *user {
	sh := h.userShard(uid)
	sh.mu.RLock()
	u := sh.m[uid]
	sh.mu.RUnlock()
	if u != nil || !create {
		return u
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if u = sh.m[uid]; u == nil {
		u = &user{id: uid, epoch: h.nextEpoch()}
		sh.m[uid] = u
	}
	return u
}

// addUser moves c to phaseAuthed and adds it to its user's entry u, returning the
// connections the device policy displaces, which it takes out of u at once. It reports
// false, adding nothing, if c's close started meanwhile.
//
// The phase change happens under the user shard's lock, which remove also takes after
// marking the connection closed, and c.user is set before it: a close that sees
// phaseAuthed therefore finds c.user and waits for this function, so a connection is
// never left indexed (nor counted in authed) after its close. (remove once read c.user
// before addUser set it and skipped the decrement: the "authenticated" gauge drifted.)
func (h *hub) addUser(c *Conn, u *user) ([]victim, bool) {
	me := c.ident()
	sh := h.userShard(me.userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c.user = u
	if !c.markAuthed() {
		return nil, false
	}
	policy := c.srv.opts.DevicePolicy
	var victims []victim
	kept := u.conns[:0:0]
	for _, o := range u.conns {
		if reason, ok := replaces(policy, me, o.ident()); ok {
			victims = append(victims, victim{c: o, reason: reason})
		} else {
			kept = append(kept, o)
		}
	}
	u.conns = append(kept, c)
	u.left = 0
	// authed counts the connections in the users' lists: the victims left them here,
	// so their own remove finds nothing to take out.
	h.authed.Add(1 - int64(len(victims)))
	c.srv.count(CountUser, u.id, len(u.conns))
	return victims, true
}

// replaces reports whether a new login me displaces the user's connection other under
// policy, and why. A login on another node of a cluster is judged the same way
// (Server.applyRemoteLogin).
func replaces(policy DevicePolicy, me, other *identity) (string, bool) {
	conflict := policy == DevicesOnePerUser ||
		policy == DevicesOnePerPlatform && other.platform == me.platform
	switch {
	case me.deviceID != "" && other.deviceID == me.deviceID:
		// The same device logging in again: one device holds one connection.
		return replacedSameDevice, true
	case conflict && other.tokenHash == me.tokenHash && (me.deviceID == "" || other.deviceID == ""):
		// The same token without device ids to tell them apart.
		return replacedSameToken, true
	case conflict:
		return replacedByPolicy, true
	}
	return "", false
}

// remove drops a closed connection from both indexes.
func (h *hub) remove(c *Conn, wasAuthed bool) {
	cs := h.connShard(c.id)
	cs.mu.Lock()
	if cs.m[c.id] == c {
		delete(cs.m, c.id)
		h.total.Add(-1)
	}
	cs.mu.Unlock()
	if !wasAuthed {
		return
	}
	u := c.user
	if u == nil {
		return
	}
	us := h.userShard(u.id)
	us.mu.Lock()
	for i, o := range u.conns {
		if o == c {
			last := len(u.conns) - 1
			u.conns[i] = u.conns[last]
			u.conns[last] = nil
			u.conns = u.conns[:last]
			h.authed.Add(-1)
			break
		}
	}
	if len(u.conns) == 0 {
		u.conns = nil
		u.left = time.Now().UnixNano()
	}
	c.srv.count(CountUser, u.id, len(u.conns))
	us.mu.Unlock()
}

// userConns appends the user's authenticated connections to dst.
func (h *hub) userConns(uid string, dst []*Conn) []*Conn {
	sh := h.userShard(uid)
	sh.mu.RLock()
	if u := sh.m[uid]; u != nil {
		dst = append(dst, u.conns...)
	}
	sh.mu.RUnlock()
	return dst
}

// userCount returns how many users have at least one authenticated connection.
func (h *hub) userCount() int {
	n := 0
	for i := range h.users {
		sh := &h.users[i]
		sh.mu.RLock()
		for _, u := range sh.m {
			if len(u.conns) > 0 {
				n++
			}
		}
		sh.mu.RUnlock()
	}
	return n
}

// each calls fn for every indexed connection, one shard snapshot at a time, outside the
// shard locks (fn may close connections).
func (h *hub) each(fn func(c *Conn)) {
	var buf []*Conn
	for i := range h.conns {
		sh := &h.conns[i]
		sh.mu.RLock()
		buf = buf[:0]
		for _, c := range sh.m {
			buf = append(buf, c)
		}
		sh.mu.RUnlock()
		for _, c := range buf {
			fn(c)
		}
	}
}
