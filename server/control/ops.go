package control

import (
	"context"
	"errors"
	"time"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// The operations a service requests. Each decodes its JSON header, calls the gateway's
// Go API and returns the RESULT object, or a *failure sent as FAIL. They run on the
// session's reading goroutine, one at a time per service.

// maxRoomLen is the gateway's limit on room names (server.ErrInvalidRoom).
const maxRoomLen = 255

// do runs the request in f.
func (s *session) do(f protocol.Frame) (any, *failure) {
	srv := s.p.srv.Load()
	switch f.Op {
	case OpPush:
		return s.push(srv, f.Body)
	case OpKick:
		return kick(srv, f.Body)
	case OpJoin:
		return joinLeave(srv, f.Body, true)
	case OpLeave:
		return joinLeave(srv, f.Body, false)
	case OpPresence:
		return presence(srv, f.Body)
	case OpStats:
		// STATS takes no fields, but its body is held to the same rules as every
		// other request's (§15.1): a malformed one is BAD_REQUEST, not ignored.
		if _, f := decode(f.Body, &struct{}{}); f != nil {
			return nil, f
		}
		return s.p.stats(srv)
	case OpSubscribe, OpUnsubscribe:
		return s.subscribe(f.Body, f.Op == OpSubscribe)
	}
	return nil, fail(protocol.ErrorUnknownOpcode, "unknown opcode "+wire.OpName(f.Op))
}

// decode decodes a request header, mapping errors to BAD_REQUEST.
func decode(body []byte, v any) ([]byte, *failure) {
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

// push fans a message out. A push that reaches nobody fails with NOT_FOUND (with the
// offline count), so a service learns that nobody got the message: users or
// connections none of which is online, a room without members or whose members are all
// excluded, a broadcast with nobody (else) connected. A push that reached anyone, or was
// kept for resume (QoS1), succeeds with the counts.
func (s *session) push(srv *server.Server, body []byte) (any, *failure) {
	var req wire.Push
	payload, f := decode(body, &req)
	if f != nil {
		return nil, f
	}
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
		if f.code == protocol.ErrorUnavailable {
			f.delivered = res.Delivered // the local part was done
		}
		return nil, f
	}
	s.p.m.pushDelivered.Add(res.Delivered)
	if res.Delivered == 0 && len(res.MsgIDs) == 0 {
		msg := "no addressed user or connection is online"
		switch {
		case req.Room != "":
			msg = "no member of the room got the message (all excluded or closing)"
		case req.All:
			msg = "no connection got the message (none authenticated, or all excluded)"
		}
		f := notFound(srv, msg)
		f.offline = res.Offline
		return nil, f
	}
	return &wire.PushResult{Delivered: res.Delivered, Offline: res.Offline, MsgIDs: res.MsgIDs}, nil
}

// gatewayFailure maps an error of the server package to a FAIL.
func gatewayFailure(err error) *failure {
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
func notFound(srv *server.Server, msg string) *failure {
	if srv.ClusterDown() {
		return fail(protocol.ErrorUnavailable, "cluster unavailable: "+msg+" on this node, and the other nodes cannot be reached")
	}
	return fail(protocol.ErrorNotFound, msg)
}

// kick closes users' or connections' connections with a close code.
func kick(srv *server.Server, body []byte) (any, *failure) {
	var req wire.Kick
	if _, f := decode(body, &req); f != nil {
		return nil, f
	}
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

// joinLeave puts connections in a room or takes them out.
func joinLeave(srv *server.Server, body []byte, join bool) (any, *failure) {
	var req wire.Room
	if _, f := decode(body, &req); f != nil {
		return nil, f
	}
	if req.Room == "" || len(req.Room) > maxRoomLen {
		return nil, badRequest("room name must be 1 to 255 bytes")
	}
	if count(len(req.Users) > 0, len(req.Conns) > 0) != 1 {
		return nil, badRequest("JOIN and LEAVE need exactly one of users and conns")
	}
	var res wire.RoomResult
	note := func(err error) *failure {
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

// presence reports users' connections and rooms' sizes, across the cluster when the
// gateway is one node of one (the other nodes answer within presenceWait).
func presence(srv *server.Server, body []byte) (any, *failure) {
	var req wire.Presence
	if _, f := decode(body, &req); f != nil {
		return nil, f
	}
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

// stats returns the gateway's and the control port's counts.
func (p *Port) stats(srv *server.Server) (*wire.StatsResult, *failure) {
	st := srv.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), presenceWait)
	defer cancel()
	view, err := srv.Presence(ctx, nil) // the cluster's totals (this node's alone without one)
	if err != nil {
		return nil, gatewayFailure(err)
	}
	routes, prefixes, events := p.router.counts()
	return &wire.StatsResult{
		Totals:           totals(view.Totals),
		Node:             srv.NodeID(),
		Draining:         st.Draining,
		Services:         p.services(),
		Routes:           routes,
		Prefixes:         prefixes,
		EventSubscribers: events,
		PendingUplinks:   int(p.pendingN.Load()),
		UplinksTotal:     p.uplinksN.Load(),
	}, nil
}

// subscribe changes the session's subscriptions and returns them.
func (s *session) subscribe(body []byte, add bool) (any, *failure) {
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
