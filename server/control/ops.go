package control

import (
	"context"
	"errors"
	"time"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// The operations a service requests. Ops holds their logic, on decoded requests, so
// that the control session and the HTTP API (package server/httpapi) run the same code
// and give the same results and failures; the session's do decodes a frame's JSON
// header and calls it. Requests run on the session's reading goroutine, one at a time
// per service.

// maxRoomLen is the gateway's limit on room names (server.ErrInvalidRoom).
const maxRoomLen = 255

// Ops runs the control operations (PROTOCOL.md §15.5) on a gateway. Every method takes
// a decoded request and returns its result, or an error that is always a *Failure
// carrying the FAIL code (and, for PUSH, offline or delivered). An Ops is a small
// value; its methods are safe for concurrent use, and block at most about a second
// (PRESENCE and STATS waiting for the other nodes of a cluster).
type Ops struct {
	srv  *server.Server
	port *Port
}

// NewOps returns the operations on srv. port is the control port whose counts STATS
// reports (services, routes, uplinks); nil reports zeros, for a gateway without one.
func NewOps(srv *server.Server, port *Port) Ops { return Ops{srv: srv, port: port} }

// do runs the request in f.
func (s *session) do(f protocol.Frame) (any, *Failure) {
	ops := NewOps(s.p.srv.Load(), s.p)
	var (
		res any
		err error
	)
	switch f.Op {
	case OpPush:
		var req wire.Push
		payload, bad := decode(f.Body, &req)
		if bad != nil {
			return nil, bad
		}
		var r *wire.PushResult
		if r, err = ops.Push(&req, payload); err == nil {
			s.p.m.pushDelivered.Add(r.Delivered)
		}
		res = r
	case OpKick:
		var req wire.Kick
		if _, f := decode(f.Body, &req); f != nil {
			return nil, f
		}
		res, err = ops.Kick(&req)
	case OpJoin, OpLeave:
		var req wire.Room
		if _, f := decode(f.Body, &req); f != nil {
			return nil, f
		}
		if f.Op == OpJoin {
			res, err = ops.Join(&req)
		} else {
			res, err = ops.Leave(&req)
		}
	case OpPresence:
		var req wire.Presence
		if _, f := decode(f.Body, &req); f != nil {
			return nil, f
		}
		res, err = ops.Presence(&req)
	case OpStats:
		// STATS takes no fields, but its body is held to the same rules as every
		// other request's (§15.1): a malformed one is BAD_REQUEST, not ignored.
		if _, f := decode(f.Body, &struct{}{}); f != nil {
			return nil, f
		}
		res, err = ops.Stats()
	case OpSubscribe, OpUnsubscribe:
		return s.subscribe(f.Body, f.Op == OpSubscribe)
	default:
		return nil, fail(protocol.ErrorUnknownOpcode, "unknown opcode "+wire.OpName(f.Op))
	}
	if err != nil {
		return nil, asFailure(err)
	}
	return res, nil
}

// decode decodes a request header, mapping errors to BAD_REQUEST.
func decode(body []byte, v any) ([]byte, *Failure) {
	payload, err := codec.DecodeBody(body, v)
	if err != nil {
		return nil, badRequest(err.Error())
	}
	return payload, nil
}

// count returns how many of the conditions hold.
func count(conds ...bool) int {
	n := 0
	for _, c := range conds {
		if c {
			n++
		}
	}
	return n
}

// Push fans payload out to the request's target (PUSH). A push that reaches nobody
// fails with NOT_FOUND (with the offline count), so a service learns that nobody got
// the message: users or connections none of which is online, a room without members or
// whose members are all excluded, a broadcast with nobody (else) connected. A push that
// reached anyone, or was kept for resume (QoS1), succeeds with the counts. payload is
// not retained after Push returns unless the gateway queued it (it must not be
// modified afterwards).
func (o Ops) Push(req *wire.Push, payload []byte) (*wire.PushResult, error) {
	if count(len(req.Users) > 0, len(req.Conns) > 0, req.Room != "", req.All) != 1 {
		return nil, badRequest("PUSH needs exactly one of users, conns, room and all")
	}
	switch {
	case req.QoS != 0 && req.QoS != 1:
		return nil, badRequest("qos must be 0 or 1")
	case req.QoS == 1 && (req.Room != "" || req.All):
		return nil, badRequest("qos 1 applies to users and conns pushes only")
	case len(req.Room) > maxRoomLen:
		return nil, badRequest("room name longer than 255 bytes")
	}
	srv := o.srv
	opts := server.PushOptions{QoS1: req.QoS == 1, Exclude: req.Exclude}
	var (
		res server.PushResult
		err error
	)
	switch {
	case len(req.Users) > 0:
		res, err = srv.PushUsers(req.Users, payload, opts)
	case len(req.Conns) > 0:
		res, err = srv.PushConns(req.Conns, payload, opts)
	case req.Room != "":
		// A room unknown here may have a member on another node that joined a moment
		// ago: PushRoom asks the cluster before it reports nobody.
		res.Delivered, err = srv.PushRoom(req.Room, payload, req.Exclude...)
		if err == nil && res.Delivered == 0 && srv.RoomSize(req.Room) == 0 {
			return nil, notFound(srv, "no such room")
		}
	default:
		res.Delivered, err = srv.Broadcast(payload, req.Exclude...)
	}
	if err != nil {
		f := gatewayFailure(err)
		if f.Code == protocol.ErrorUnavailable {
			f.Delivered = res.Delivered // the local part was done
		}
		return nil, f
	}
	if res.Delivered == 0 && len(res.MsgIDs) == 0 {
		msg := "no addressed user or connection is online"
		switch {
		case req.Room != "":
			msg = "no member of the room got the message (all excluded or closing)"
		case req.All:
			msg = "no connection got the message (none authenticated, or all excluded)"
		}
		f := notFound(srv, msg)
		f.Offline = res.Offline
		return nil, f
	}
	return &wire.PushResult{Delivered: res.Delivered, Offline: res.Offline, MsgIDs: res.MsgIDs}, nil
}

// gatewayFailure maps an error of the server package to a FAIL.
func gatewayFailure(err error) *Failure {
	switch {
	case errors.Is(err, server.ErrPayloadTooLarge):
		return badRequest("payload exceeds the clients' max frame")
	case errors.Is(err, server.ErrInvalidRoom):
		return badRequest("invalid room name")
	case errors.Is(err, server.ErrTooManyRooms):
		return fail(protocol.ErrorTooManyRooms, "connection is in too many rooms")
	case errors.Is(err, server.ErrConnNotFound):
		return fail(protocol.ErrorNotFound, "no such connection")
	case errors.Is(err, server.ErrClusterUnavailable), errors.Is(err, server.ErrClusterQoS1):
		return fail(protocol.ErrorUnavailable, err.Error())
	}
	return fail(protocol.ErrorInternal, err.Error())
}

// notFound is the FAIL for a request that reached nothing: NOT_FOUND, or UNAVAILABLE
// when the gateway is a node of a cluster it cannot reach (what it did not find here may
// be on another node).
func notFound(srv *server.Server, msg string) *Failure {
	if srv.ClusterDown() {
		return fail(protocol.ErrorUnavailable, "cluster unavailable: "+msg+" on this node, and the other nodes cannot be reached")
	}
	return fail(protocol.ErrorNotFound, msg)
}

// Kick closes the users' or the connections' connections with CLOSE req.Code (default
// KICKED) and req.Reason (KICK).
func (o Ops) Kick(req *wire.Kick) (*wire.KickResult, error) {
	srv := o.srv
	if count(len(req.Users) > 0, len(req.Conns) > 0) != 1 {
		return nil, badRequest("KICK needs exactly one of users and conns")
	}
	code := req.Code
	if code == 0 {
		code = protocol.CloseKicked
	}
	if code != protocol.CloseNormal && (code < 3000 || code > 3999) {
		return nil, badRequest("code must be 1000 or in 3000-3999")
	}
	if len(req.Reason) > 1024 {
		return nil, badRequest("reason longer than 1024 bytes")
	}
	var res wire.KickResult
	for _, u := range req.Users {
		n := srv.KickUser(u, code, req.Reason)
		res.Kicked += n
		if n == 0 {
			res.Missing++
		}
	}
	for _, id := range req.Conns {
		if srv.KickConn(id, code, req.Reason) != nil {
			res.Missing++
			continue
		}
		res.Kicked++
	}
	if res.Kicked == 0 {
		return nil, notFound(srv, "no addressed user or connection is online")
	}
	return &res, nil
}

// Join puts the users' connections, or the connections, in req.Room (JOIN).
func (o Ops) Join(req *wire.Room) (*wire.RoomResult, error) { return o.joinLeave(req, true) }

// Leave takes the users' connections, or the connections, out of req.Room (LEAVE).
func (o Ops) Leave(req *wire.Room) (*wire.RoomResult, error) { return o.joinLeave(req, false) }

// joinLeave is Join or Leave.
func (o Ops) joinLeave(req *wire.Room, join bool) (*wire.RoomResult, error) {
	srv := o.srv
	if req.Room == "" || len(req.Room) > maxRoomLen {
		return nil, badRequest("room name must be 1 to 255 bytes")
	}
	if count(len(req.Users) > 0, len(req.Conns) > 0) != 1 {
		return nil, badRequest("JOIN and LEAVE need exactly one of users and conns")
	}
	var res wire.RoomResult
	note := func(err error) *Failure {
		switch {
		case err == nil:
			res.Conns++
		case errors.Is(err, server.ErrConnNotFound), errors.Is(err, server.ErrConnClosed):
			res.Missing++
		case errors.Is(err, server.ErrTooManyRooms):
			res.Refused++
		default:
			return gatewayFailure(err)
		}
		return nil
	}
	for _, u := range req.Users {
		var n int
		var err error
		if join {
			n, err = srv.JoinUser(u, req.Room)
		} else {
			n = srv.LeaveUser(u, req.Room)
		}
		res.Conns += n
		switch {
		case err != nil:
			if f := note(err); f != nil {
				return nil, f
			}
		case n == 0:
			res.Missing++
		}
	}
	for _, id := range req.Conns {
		var err error
		if join {
			err = srv.Join(id, req.Room)
		} else {
			err = srv.Leave(id, req.Room)
		}
		if f := note(err); f != nil {
			return nil, f
		}
	}
	if res.Conns == 0 {
		if res.Refused > 0 {
			return nil, fail(protocol.ErrorTooManyRooms, "connections are in too many rooms")
		}
		return nil, notFound(srv, "no addressed user or connection is online")
	}
	return &res, nil
}

// Presence reports the users' connections and the rooms' sizes (PRESENCE), across the
// cluster when the gateway is one node of one (the other nodes answer within a second).
func (o Ops) Presence(req *wire.Presence) (*wire.PresenceResult, error) {
	srv := o.srv
	ctx, cancel := context.WithTimeout(context.Background(), presenceWait)
	defer cancel()
	view, err := srv.Presence(ctx, req.Users)
	if err != nil {
		return nil, gatewayFailure(err)
	}
	var res wire.PresenceResult
	if len(req.Users) > 0 {
		res.Users = make(map[string][]wire.ConnInfo, len(req.Users))
		for _, u := range req.Users {
			infos := []wire.ConnInfo{}
			for _, c := range view.Users[u] {
				infos = append(infos, wire.ConnInfo{Conn: c.ID, Device: c.DeviceID, Platform: c.Platform, Addr: c.Addr, Rooms: c.Rooms, Node: c.Node})
			}
			res.Users[u] = infos
		}
	}
	if len(req.Rooms) > 0 {
		res.Rooms = make(map[string]int, len(req.Rooms))
		for _, r := range req.Rooms {
			res.Rooms[r] = srv.RoomSize(r)
		}
	}
	res.Totals = totals(view.Totals)
	if view.Nodes > 1 || view.Missing > 0 {
		res.Nodes, res.Missing = view.Nodes, view.Missing
	}
	return &res, nil
}

// presenceWait bounds how long PRESENCE waits for the other nodes of a cluster.
const presenceWait = time.Second

func totals(st server.Stats) wire.Totals {
	return wire.Totals{Connections: st.Connections, Authenticated: st.Authenticated, Users: st.Users, Rooms: st.Rooms}
}

// Stats returns the gateway's and the control port's counts (STATS).
func (o Ops) Stats() (*wire.StatsResult, error) {
	srv := o.srv
	st := srv.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), presenceWait)
	defer cancel()
	view, err := srv.Presence(ctx, nil) // the cluster's totals (this node's alone without one)
	if err != nil {
		return nil, gatewayFailure(err)
	}
	res := &wire.StatsResult{Totals: totals(view.Totals), Node: srv.NodeID(), Draining: st.Draining}
	if p := o.port; p != nil {
		res.Routes, res.Prefixes, res.EventSubscribers = p.router.counts()
		res.Services = p.services()
		res.PendingUplinks = int(p.pendingN.Load())
		res.UplinksTotal = p.uplinksN.Load()
	}
	return res, nil
}

// subscribe changes the session's subscriptions and returns them.
func (s *session) subscribe(body []byte, add bool) (any, *Failure) {
	var req wire.Subscription
	if _, f := decode(body, &req); f != nil {
		return nil, f
	}
	if add {
		if f := s.p.router.subscribe(s, req, s.p.opts.MaxSubscriptions); f != nil {
			return nil, f
		}
	} else {
		s.p.router.unsubscribe(s, req)
	}
	res := s.p.router.snapshot(s)
	return &res, nil
}
