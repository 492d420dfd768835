package server

import (
	"sync"

	"github.com/tether-gw/tether/protocol"
)

// The downlink API. Every push encodes its frame once and writes the same bytes to each
// recipient; writes never wait for a peer (see outbound.go), so one slow client never
// holds up a fan-out. The counts returned are connections the frame was written or
// queued to.

// PushOptions modifies a push to users or connections.
type PushOptions struct {
	// QoS1 requests at-least-once delivery (PROTOCOL.md §11): each targeted user's
	// message gets the user's next message id, is kept in the user's resume buffer, and
	// is sent with the ACK_REQUESTED flag, within each connection's in-flight window
	// (Options.QoS1Window), until the device acknowledges it. A device that reconnects
	// within the resume window is sent what it did not acknowledge. Users with no recent
	// connection are counted offline and get nothing.
	QoS1 bool
	// Exclude lists connection ids that must not receive the push. With QoS1 an excluded
	// connection's device (or, without a device id, the connection) is never sent the
	// message, on this connection or a later one.
	Exclude []uint64
}

// PushResult says what a push reached.
type PushResult struct {
	// Delivered counts connections the frame was written or queued to; a QoS1 message
	// waiting for room in a connection's in-flight window counts as queued.
	Delivered int
	// Offline counts targeted users (or connections) with no live connection.
	Offline int
	// MsgIDs holds, for a QoS1 push, the message id each reachable user got: always
	// below 2^53, so exact as a JSON number.
	MsgIDs map[string]uint64
	// Forwarded counts connections of other nodes of a cluster the push was sent to
	// by id (PushConns), whose outcome this node does not know. A push to users counts
	// the connections other nodes announced in Delivered instead.
	Forwarded int
}

// encodePush encodes a PUSH frame once for a fan-out, refusing payloads that would
// exceed the max frame size announced to clients.
func (s *Server) encodePush(channel string, payload []byte) ([]byte, error) {
	return s.fitFrame((&protocol.Push{Channel: channel, Payload: payload}).AppendFrame(nil, 0, 0))
}

// fitFrame passes on an encoded frame and its encoding error, refusing a frame larger
// than Options.MaxFrame (the limit AUTH_OK announces) with ErrPayloadTooLarge.
func (s *Server) fitFrame(frame []byte, err error) ([]byte, error) {
	if err == nil && len(frame)-protocol.LengthSize > s.opts.MaxFrame {
		return nil, ErrPayloadTooLarge
	}
	return frame, err
}

// connSlices recycles the member snapshots of fan-outs.
var connSlices = sync.Pool{New: func() any { s := make([]*Conn, 0, 64); return &s }}

// fanOut writes frame to every connection in cs that is ready (AUTH_OK sent, not
// closed) and not in exclude, and returns how many took it.
func (s *Server) fanOut(cs []*Conn, frame []byte, exclude map[uint64]struct{}) int {
	n := 0
	for _, c := range cs {
		if !c.pushable() {
			continue
		}
		if _, skip := exclude[c.id]; skip {
			continue
		}
		if c.write(frame) == nil {
			n++
		}
	}
	s.metrics.framesOutN(protocol.OpPush, len(frame), n)
	s.metrics.pushed.Add(n)
	return n
}

// PushConn sends payload to one connection on the direct channel. It returns
// ErrConnNotFound if no authenticated connection has that id.
func (s *Server) PushConn(id uint64, payload []byte) error {
	if !s.isLocal(id) {
		if _, err := s.encodePush("", payload); err != nil {
			return err
		}
		return s.publish(&ClusterMessage{Kind: ClusterPushConns, Conns: []uint64{id}, Payload: payload})
	}
	c := s.hub.conn(id)
	if c == nil || !c.pushable() {
		return ErrConnNotFound
	}
	return c.Push(payload)
}

// PushUser sends payload to every connection (device) of a user and returns how many
// got it; 0 means the user is offline. It is PushUsers for one user without options.
func (s *Server) PushUser(userID string, payload []byte) (int, error) {
	res, err := s.PushUsers([]string{userID}, payload, PushOptions{})
	return res.Delivered, err
}

// PushRoom sends payload to every member of a room except the connections in exclude,
// with the room's name as the PUSH channel, and returns how many got it; an unknown room
// has no members and returns 0. In a cluster the other nodes' members get it too and are
// counted as they announced them.
func (s *Server) PushRoom(room string, payload []byte, exclude ...uint64) (int, error) {
	n, err := s.pushRoomLocal(room, payload, excludeSet(exclude))
	if err != nil {
		return n, err
	}
	if s.ClusterDown() {
		if n == 0 {
			return n, s.unavailable() // members elsewhere cannot be reached
		}
		return n, nil // local service goes on
	}
	if s.broker != nil {
		if r := s.remoteCount(CountRoom, room); r > 0 {
			if err := s.publish(&ClusterMessage{Kind: ClusterPushRoom, Room: room, Payload: payload, Exclude: exclude}); err != nil {
				return n, err
			}
			return n + r, nil
		}
		// No member elsewhere as far as the counts know: ask (a first member that
		// joined a moment ago is not counted, nor its node subscribed to the room,
		// yet), and send to the nodes that have members directly.
		_, members := s.findElsewhere(nil, room)
		for node, m := range members {
			if err := s.publish(&ClusterMessage{Kind: ClusterPushRoom, Room: room, Payload: payload, Exclude: exclude, Nodes: []uint16{node}}); err != nil {
				return n, err
			}
			n += m
		}
	}
	return n, nil
}

// pushRoomLocal is PushRoom on this node.
func (s *Server) pushRoomLocal(room string, payload []byte, ex map[uint64]struct{}) (int, error) {
	r := s.rooms.get(room)
	if r == nil {
		return 0, nil
	}
	frame, err := s.encodePush(room, payload)
	if err != nil {
		return 0, err
	}
	buf := connSlices.Get().(*[]*Conn)
	cs := r.snapshot((*buf)[:0])
	n := s.fanOut(cs, frame, ex)
	clear(cs)
	*buf = cs[:0]
	connSlices.Put(buf)
	return n, nil
}

// Broadcast sends payload to every authenticated connection except the connections in
// exclude and returns how many got it on this node; in a cluster every other node
// broadcasts it too.
func (s *Server) Broadcast(payload []byte, exclude ...uint64) (int, error) {
	n, err := s.broadcastLocal(payload, excludeSet(exclude))
	if err != nil {
		return n, err
	}
	return n, s.publish(&ClusterMessage{Kind: ClusterBroadcast, Payload: payload, Exclude: exclude})
}

// broadcastLocal is Broadcast on this node.
func (s *Server) broadcastLocal(payload []byte, ex map[uint64]struct{}) (int, error) {
	frame, err := s.encodePush("", payload)
	if err != nil {
		return 0, err
	}
	n := 0
	buf := connSlices.Get().(*[]*Conn)
	for i := range s.hub.conns {
		sh := &s.hub.conns[i]
		cs := (*buf)[:0]
		sh.mu.RLock()
		for _, c := range sh.m {
			cs = append(cs, c)
		}
		sh.mu.RUnlock()
		n += s.fanOut(cs, frame, ex)
		clear(cs)
		*buf = cs[:0]
	}
	connSlices.Put(buf)
	return n, nil
}

// KickConn closes one connection with code (normally the terminal protocol.CloseKicked)
// and reason. It returns ErrConnNotFound if there is no such connection on this node; a
// connection of another node of a cluster is kicked there.
func (s *Server) KickConn(id uint64, code protocol.CloseCode, reason string) error {
	if !s.isLocal(id) {
		return s.publish(&ClusterMessage{Kind: ClusterKickConns, Conns: []uint64{id}, Code: code, Reason: reason})
	}
	c := s.hub.conn(id)
	if c == nil {
		return ErrConnNotFound
	}
	c.Close(code, reason)
	return nil
}

// KickUser closes every connection of a user with code and reason and returns how many
// it closed (in a cluster, with the other nodes' connections as they announced them).
func (s *Server) KickUser(userID string, code protocol.CloseCode, reason string) int {
	n := s.kickUserLocal(userID, code, reason)
	if r := s.remoteCount(CountUser, userID); r > 0 {
		if s.publish(&ClusterMessage{Kind: ClusterKickUsers, Users: []string{userID}, Code: code, Reason: reason}) == nil {
			n += r
		}
	}
	return n
}

// kickUserLocal is KickUser on this node.
func (s *Server) kickUserLocal(userID string, code protocol.CloseCode, reason string) int {
	cs := s.hub.userConns(userID, nil)
	for _, c := range cs {
		c.Close(code, reason)
	}
	return len(cs)
}

// UserConns returns the user's authenticated connections (nil when offline).
func (s *Server) UserConns(userID string) []*Conn { return s.hub.userConns(userID, nil) }

// Join puts connection id in room. It returns ErrConnNotFound, ErrInvalidRoom or
// ErrTooManyRooms.
func (s *Server) Join(id uint64, room string) error {
	c := s.hub.conn(id)
	if c == nil || !c.Authenticated() {
		return ErrConnNotFound
	}
	return s.join(c, room)
}

// Leave takes connection id out of room; leaving a room it is not in is a no-op.
func (s *Server) Leave(id uint64, room string) error {
	c := s.hub.conn(id)
	if c == nil {
		return ErrConnNotFound
	}
	s.leave(c, room)
	return nil
}

// RoomSize returns the number of members of a room (0 for an unknown room); in a cluster
// with the other nodes' members as they announced them.
func (s *Server) RoomSize(room string) int {
	n := s.remoteCount(CountRoom, room)
	if r := s.rooms.get(room); r != nil {
		n += r.size()
	}
	return n
}

// PushUsers sends payload to every connection of each user. With opts.QoS1 each user's
// message gets its own message id and is kept for resume (see PushOptions).
func (s *Server) PushUsers(users []string, payload []byte, opts PushOptions) (PushResult, error) {
	var res PushResult
	ex := excludeSet(opts.Exclude)
	if opts.QoS1 && s.qstore != nil {
		// The cluster's store keeps the message for the user wherever they are, or
		// connect within the resume window (qosstore.go).
		res.MsgIDs = make(map[string]uint64, len(users))
		targets := make([]*target, len(users))
		for i, uid := range users {
			targets[i] = s.targetFor(uid, nil, ex)
		}
		ids, ns, err := s.pushStoredMany(users, targets, payload)
		for i, id := range ids {
			if id == 0 {
				continue // not stored: err says why
			}
			uid := users[i]
			res.MsgIDs[uid] = id
			r := s.remoteCount(CountUser, uid)
			if ns[i]+r == 0 {
				res.Offline++
			}
			res.Delivered += ns[i] + r
		}
		return res, err
	}
	if opts.QoS1 {
		res.MsgIDs = make(map[string]uint64, len(users))
		var remote []string
		for _, uid := range users {
			r := s.remoteCount(CountUser, uid)
			if r > 0 {
				remote = append(remote, uid)
			}
			if r > 0 && s.hub.user(uid, false) == nil {
				res.Delivered += r // only another node has the user: its stream keeps it
				continue
			}
			id, n, ok, err := s.pushQoS1(uid, nil, payload, ex)
			if err != nil {
				return res, err
			}
			if (!ok || n == 0) && r == 0 {
				if s.ClusterDown() {
					return res, s.unavailable()
				}
				res.Offline++
			}
			if ok {
				res.MsgIDs[uid] = id
			}
			res.Delivered += n + r
		}
		if len(remote) > 0 {
			if err := s.publish(&ClusterMessage{Kind: ClusterPushUsersQoS1, Users: remote, Payload: payload, Exclude: opts.Exclude}); err != nil {
				return res, err
			}
		}
		return res, nil
	}
	counts, err := s.pushUsersLocal(users, payload, ex)
	if err != nil {
		return res, err
	}
	if s.ClusterDown() {
		// Local service goes on: the users found here got it. One not found here may
		// be on a node this one cannot reach: that is UNAVAILABLE, not offline.
		missing := false
		for _, n := range counts {
			res.Delivered += n
			missing = missing || n == 0
		}
		if missing {
			return res, s.unavailable()
		}
		return res, nil
	}
	var remote, unknown []string
	for i, uid := range users {
		n := counts[i]
		if r := s.remoteCount(CountUser, uid); r > 0 {
			remote = append(remote, uid)
			n += r
		}
		if n == 0 {
			if s.broker != nil {
				unknown = append(unknown, uid)
				continue
			}
			res.Offline++
		}
		res.Delivered += n
	}
	if len(remote) > 0 {
		if err := s.publish(&ClusterMessage{Kind: ClusterPushUsers, Users: remote, Payload: payload, Exclude: opts.Exclude}); err != nil {
			return res, err
		}
	}
	if len(unknown) > 0 {
		// Offline as far as the counts know: ask, as a connection made a moment ago
		// elsewhere is not counted yet.
		found, _ := s.findElsewhere(unknown, "")
		seen := map[string]bool{}
		for node, us := range found {
			if err := s.publish(&ClusterMessage{Kind: ClusterPushUsers, Users: us, Payload: payload, Exclude: opts.Exclude, Nodes: []uint16{node}}); err != nil {
				return res, err
			}
			for _, u := range us {
				seen[u] = true
			}
			res.Delivered += len(us)
		}
		res.Offline += len(unknown) - len(seen)
	}
	return res, nil
}

// pushUsersLocal pushes payload (not QoS1) to this node's connections of each user and
// returns how many each had.
func (s *Server) pushUsersLocal(users []string, payload []byte, ex map[uint64]struct{}) ([]int, error) {
	frame, err := s.encodePush("", payload)
	if err != nil {
		return nil, err
	}
	counts := make([]int, len(users))
	buf := connSlices.Get().(*[]*Conn)
	for i, uid := range users {
		cs := s.hub.userConns(uid, (*buf)[:0])
		counts[i] = s.fanOut(cs, frame, ex)
		clear(cs)
		*buf = cs[:0]
	}
	connSlices.Put(buf)
	return counts, nil
}

// PushConns sends payload to each listed connection. With opts.QoS1 the message gets the
// next id of the connection's user stream and is for the connection's device: a later
// connection of the same device (same user and device id) is sent it if the device did
// not acknowledge it, other devices never are; a connection without a device id keeps it
// to itself. Unknown or not-yet-ready connections count as Offline.
func (s *Server) PushConns(ids []uint64, payload []byte, opts PushOptions) (PushResult, error) {
	var res PushResult
	ex := excludeSet(opts.Exclude)
	var frame []byte
	if !opts.QoS1 {
		f, err := s.encodePush("", payload)
		if err != nil {
			return res, err
		}
		frame = f
	} else {
		res.MsgIDs = make(map[string]uint64)
	}
	var remote []uint64
	one := make([]*Conn, 1)
	for _, id := range ids {
		if _, skip := ex[id]; skip {
			continue
		}
		if !s.isLocal(id) {
			remote = append(remote, id)
			continue
		}
		c := s.hub.conn(id)
		if c == nil || !c.pushable() {
			res.Offline++
			continue
		}
		if opts.QoS1 {
			var mid uint64
			var n int
			var err error
			if s.qstore != nil {
				mid, n, err = s.pushStored(c.UserID(), c, payload, nil)
			} else {
				mid, n, _, err = s.pushQoS1(c.UserID(), c, payload, nil)
			}
			if err != nil {
				return res, err
			}
			res.MsgIDs[c.UserID()] = mid
			res.Delivered += n
			if n == 0 {
				res.Offline++
			}
			continue
		}
		one[0] = c
		n := s.fanOut(one, frame, nil)
		if n == 0 {
			res.Offline++
		}
		res.Delivered += n
	}
	if len(remote) > 0 {
		if opts.QoS1 && s.qstore != nil {
			return res, s.pushRemoteConnsQoS1(remote, payload, &res)
		}
		if opts.QoS1 {
			return res, ErrClusterQoS1
		}
		if err := s.publish(&ClusterMessage{Kind: ClusterPushConns, Conns: remote, Payload: payload}); err != nil {
			return res, err
		}
		res.Forwarded += len(remote)
	}
	return res, nil
}

// pushConnsLocal pushes payload to this node's connections among ids.
func (s *Server) pushConnsLocal(ids []uint64, payload []byte) (int, error) {
	frame, err := s.encodePush("", payload)
	if err != nil {
		return 0, err
	}
	n := 0
	one := make([]*Conn, 1)
	for _, id := range ids {
		if c := s.hub.conn(id); c != nil {
			one[0] = c
			n += s.fanOut(one, frame, nil)
		}
	}
	return n, nil
}

// JoinUser puts every connection of a user in room and returns how many joined; in a
// cluster the user's connections on other nodes join too (counted as announced).
func (s *Server) JoinUser(userID, room string) (int, error) {
	n, err := s.joinUserLocal(userID, room)
	if err != nil {
		return n, err
	}
	if r := s.remoteCount(CountUser, userID); r > 0 {
		if err := s.publish(&ClusterMessage{Kind: ClusterJoinUsers, Users: []string{userID}, Room: room}); err != nil {
			return n, err
		}
		n += r
	}
	return n, nil
}

// joinUserLocal is JoinUser on this node.
func (s *Server) joinUserLocal(userID, room string) (int, error) {
	n := 0
	for _, c := range s.hub.userConns(userID, nil) {
		if err := s.join(c, room); err != nil {
			if err == ErrConnClosed {
				continue
			}
			return n, err
		}
		n++
	}
	return n, nil
}

// LeaveUser takes every connection of a user out of room and returns how many it looked
// at; in a cluster on every node.
func (s *Server) LeaveUser(userID, room string) int {
	n := s.leaveUserLocal(userID, room)
	if r := s.remoteCount(CountUser, userID); r > 0 {
		if s.publish(&ClusterMessage{Kind: ClusterLeaveUsers, Users: []string{userID}, Room: room}) == nil {
			n += r
		}
	}
	return n
}

// leaveUserLocal is LeaveUser on this node.
func (s *Server) leaveUserLocal(userID, room string) int {
	cs := s.hub.userConns(userID, nil)
	for _, c := range cs {
		s.leave(c, room)
	}
	return len(cs)
}

// excludeSet turns an exclude list into a set (nil for none).
func excludeSet(ids []uint64) map[uint64]struct{} {
	if len(ids) == 0 {
		return nil
	}
	ex := make(map[uint64]struct{}, len(ids))
	for _, id := range ids {
		ex[id] = struct{}{}
	}
	return ex
}
