package server

import (
	"hash/maphash"
	"sync"
)

// maxRoomName bounds room names (they travel in PUSH frames as a protocol str).
const maxRoomName = 255

// rooms maps room names to members, sharded like the hub (locks: see the table in
// doc.go). A room is created by its first join and deleted by its last leave.
type rooms struct {
	shards [hubShards]roomShard
	seed   maphash.Seed
}

type roomShard struct {
	mu sync.Mutex
	m  map[string]*room
}

// room is one room's member set. Broadcasts snapshot it under the read lock and write
// outside it, so a slow member never holds up joins.
type room struct {
	name    string
	mu      sync.RWMutex
	members map[*Conn]struct{}
}

func newRooms() *rooms {
	r := &rooms{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = make(map[string]*room)
	}
	return r
}

func (rs *rooms) shard(name string) *roomShard {
	return &rs.shards[maphash.String(rs.seed, name)&(hubShards-1)]
}

// get returns the room or nil.
func (rs *rooms) get(name string) *room {
	sh := rs.shard(name)
	sh.mu.Lock()
	r := sh.m[name]
	sh.mu.Unlock()
	return r
}

// count returns the number of rooms.
func (rs *rooms) count() int {
	n := 0
	for i := range rs.shards {
		sh := &rs.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// join adds c to the room called name. Joining a room twice is a no-op.
func (s *Server) join(c *Conn, name string) error {
	if name == "" || len(name) > maxRoomName {
		return ErrInvalidRoom
	}
	sh := s.rooms.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.m[name]
	c.rmu.Lock()
	defer c.rmu.Unlock()
	// Checked under rmu: onClosed marks the state before leaveAll takes rmu, so either
	// this join sees the close or leaveAll sees this room.
	if c.state()&stClosed != 0 {
		return ErrConnClosed
	}
	if r != nil {
		for _, have := range c.rooms {
			if have == r {
				return nil
			}
		}
	}
	if len(c.rooms) >= s.opts.MaxRoomsPerConn {
		return ErrTooManyRooms
	}
	if r == nil {
		r = &room{name: name, members: make(map[*Conn]struct{})}
		sh.m[name] = r
	}
	r.mu.Lock()
	r.members[c] = struct{}{}
	n := len(r.members)
	r.mu.Unlock()
	c.rooms = append(c.rooms, r)
	s.count(CountRoom, name, n)
	return nil
}

// leave removes c from the room called name; leaving a room one is not in is a no-op.
func (s *Server) leave(c *Conn, name string) {
	sh := s.rooms.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.m[name]
	if r == nil {
		return
	}
	c.rmu.Lock()
	for i, have := range c.rooms {
		if have == r {
			last := len(c.rooms) - 1
			c.rooms[i] = c.rooms[last]
			c.rooms[last] = nil
			c.rooms = c.rooms[:last]
			break
		}
	}
	c.rmu.Unlock()
	s.dropMemberLocked(sh, r, c)
}

// dropMemberLocked removes c from r and deletes r once empty; sh.mu is held.
func (s *Server) dropMemberLocked(sh *roomShard, r *room, c *Conn) {
	r.mu.Lock()
	delete(r.members, c)
	n := len(r.members)
	empty := n == 0
	r.mu.Unlock()
	s.count(CountRoom, r.name, n)
	if empty && sh.m[r.name] == r {
		delete(sh.m, r.name)
	}
}

// leaveAll removes a closing connection from every room it is in.
func (c *Conn) leaveAll() {
	c.rmu.Lock()
	mine := c.rooms
	c.rooms = nil
	c.rmu.Unlock()
	s := c.srv
	for _, r := range mine {
		sh := s.rooms.shard(r.name)
		sh.mu.Lock()
		s.dropMemberLocked(sh, r, c)
		sh.mu.Unlock()
	}
}

// snapshot appends the room's members to dst.
func (r *room) snapshot(dst []*Conn) []*Conn {
	r.mu.RLock()
	for c := range r.members {
		dst = append(dst, c)
	}
	r.mu.RUnlock()
	return dst
}

// size returns the number of members.
func (r *room) size() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.members)
}
