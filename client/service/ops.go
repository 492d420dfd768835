package service

import (
	"context"
	"time"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// Result types, shared with the wire format (see package wire for each field).
type (
	// PushResult says how many connections got a push and how many addressed users
	// (or connections) were offline.
	PushResult = wire.PushResult
	// KickResult says how many connections were closed.
	KickResult = wire.KickResult
	// RoomResult says how many connections joined or left a room.
	RoomResult = wire.RoomResult
	// PresenceResult lists users' connections, rooms' sizes and the gateway's totals.
	PresenceResult = wire.PresenceResult
	// ConnInfo describes one client connection.
	ConnInfo = wire.ConnInfo
	// StatsResult holds the gateway's and the control port's counts.
	StatsResult = wire.StatsResult
	// Subscription names routes, prefixes and events to (un)subscribe.
	Subscription = wire.Subscription
	// SubscribeResult is everything the connection is subscribed to.
	SubscribeResult = wire.SubscribeResult
)

// PushOptions modifies a push to users or connections.
type PushOptions struct {
	// QoS1 makes the push sequenced and acknowledged by the clients, and kept for
	// resume (PROTOCOL.md §11).
	QoS1 bool
	// Exclude lists connection ids that must not get the push.
	Exclude []uint64
}

func (o PushOptions) qos() int {
	if o.QoS1 {
		return 1
	}
	return 0
}

// PushUsers sends payload to every connection of each user. When none of them is
// online it fails with NOT_FOUND (IsNotFound), with Error.Offline set; otherwise
// PushResult.Offline counts those that were not.
func (s *Service) PushUsers(ctx context.Context, users []string, payload []byte, opts PushOptions) (PushResult, error) {
	return s.push(ctx, &wire.Push{Users: users, Exclude: opts.Exclude, QoS: opts.qos()}, payload)
}

// PushConns sends payload to the connections with the given ids; like PushUsers it
// fails with NOT_FOUND when none exists.
func (s *Service) PushConns(ctx context.Context, conns []uint64, payload []byte, opts PushOptions) (PushResult, error) {
	return s.push(ctx, &wire.Push{Conns: conns, Exclude: opts.Exclude, QoS: opts.qos()}, payload)
}

// PushRoom sends payload to every member of room except the excluded connections,
// with the room as the PUSH channel. An unknown (empty) room, or one whose members are
// all excluded, fails with NOT_FOUND.
func (s *Service) PushRoom(ctx context.Context, room string, payload []byte, exclude ...uint64) (PushResult, error) {
	return s.push(ctx, &wire.Push{Room: room, Exclude: exclude}, payload)
}

// Broadcast sends payload to every authenticated connection of the gateway except the
// excluded connections. When that is nobody it fails with NOT_FOUND.
func (s *Service) Broadcast(ctx context.Context, payload []byte, exclude ...uint64) (PushResult, error) {
	return s.push(ctx, &wire.Push{All: true, Exclude: exclude}, payload)
}

func (s *Service) push(ctx context.Context, req *wire.Push, payload []byte) (PushResult, error) {
	var res PushResult
	err := s.request(ctx, wire.OpPush, req, payload, &res)
	if e, ok := err.(*Error); ok {
		res.Offline, res.Delivered = e.Offline, e.Delivered
	}
	return res, err
}

// KickUsers closes every connection of the users with CLOSE code (0 means 3502
// KICKED, terminal) and reason. It fails with NOT_FOUND when none was online.
func (s *Service) KickUsers(ctx context.Context, users []string, code protocol.CloseCode, reason string) (KickResult, error) {
	var res KickResult
	err := s.request(ctx, wire.OpKick, &wire.Kick{Users: users, Code: code, Reason: reason}, nil, &res)
	return res, err
}

// KickConns closes the connections with CLOSE code (0 means 3502 KICKED) and reason.
func (s *Service) KickConns(ctx context.Context, conns []uint64, code protocol.CloseCode, reason string) (KickResult, error) {
	var res KickResult
	err := s.request(ctx, wire.OpKick, &wire.Kick{Conns: conns, Code: code, Reason: reason}, nil, &res)
	return res, err
}

// JoinUsers puts every connection of the users in room. It fails with NOT_FOUND when
// none was online and TOO_MANY_ROOMS when every connection is at its room limit.
func (s *Service) JoinUsers(ctx context.Context, room string, users ...string) (RoomResult, error) {
	return s.room(ctx, wire.OpJoin, &wire.Room{Room: room, Users: users})
}

// JoinConns puts the connections in room; errors as for JoinUsers.
func (s *Service) JoinConns(ctx context.Context, room string, conns ...uint64) (RoomResult, error) {
	return s.room(ctx, wire.OpJoin, &wire.Room{Room: room, Conns: conns})
}

// LeaveUsers takes every connection of the users out of room.
func (s *Service) LeaveUsers(ctx context.Context, room string, users ...string) (RoomResult, error) {
	return s.room(ctx, wire.OpLeave, &wire.Room{Room: room, Users: users})
}

// LeaveConns takes the connections out of room.
func (s *Service) LeaveConns(ctx context.Context, room string, conns ...uint64) (RoomResult, error) {
	return s.room(ctx, wire.OpLeave, &wire.Room{Room: room, Conns: conns})
}

func (s *Service) room(ctx context.Context, op protocol.Opcode, req *wire.Room) (RoomResult, error) {
	var res RoomResult
	err := s.request(ctx, op, req, nil, &res)
	return res, err
}

// Presence returns the connections of each user (an empty list when offline), the
// member count of each room, and the gateway's totals. Either list may be empty.
func (s *Service) Presence(ctx context.Context, users, rooms []string) (PresenceResult, error) {
	var res PresenceResult
	err := s.request(ctx, wire.OpPresence, &wire.Presence{Users: users, Rooms: rooms}, nil, &res)
	return res, err
}

// Stats returns the gateway's and the control port's counts.
func (s *Service) Stats(ctx context.Context) (StatsResult, error) {
	var res StatsResult
	err := s.request(ctx, wire.OpStats, nil, nil, &res)
	return res, err
}

// Subscribe adds routes, prefixes and (with sub.Events) connection events to this
// service's subscriptions and returns them all. Subscribing to routes or prefixes
// needs Options.OnUplink. With Options.Reconnect they are subscribed again after a
// reconnect.
func (s *Service) Subscribe(ctx context.Context, sub Subscription) (SubscribeResult, error) {
	if (len(sub.Routes) > 0 || len(sub.Prefixes) > 0) && s.opts.OnUplink == nil {
		return SubscribeResult{}, &Error{Code: protocol.ErrorBadRequest, Message: "subscribing to routes needs Options.OnUplink"}
	}
	var res SubscribeResult
	if err := s.request(ctx, wire.OpSubscribe, &sub, nil, &res); err != nil {
		return res, err
	}
	s.mu.Lock()
	for _, k := range sub.Routes {
		s.routes[k] = struct{}{}
	}
	for _, k := range sub.Prefixes {
		s.prefixes[k] = struct{}{}
	}
	s.events = s.events || sub.Events
	s.acks = s.acks || sub.Acks
	s.mu.Unlock()
	return res, nil
}

// Unsubscribe removes routes, prefixes and (with sub.Events) events from this
// service's subscriptions and returns what remains. Uplinks already sent to this
// service must still be answered.
func (s *Service) Unsubscribe(ctx context.Context, sub Subscription) (SubscribeResult, error) {
	s.mu.Lock()
	for _, k := range sub.Routes {
		delete(s.routes, k)
	}
	for _, k := range sub.Prefixes {
		delete(s.prefixes, k)
	}
	if sub.Events {
		s.events = false
	}
	if sub.Acks {
		s.acks = false
	}
	s.mu.Unlock()
	var res SubscribeResult
	err := s.request(ctx, wire.OpUnsubscribe, &sub, nil, &res)
	return res, err
}

// Ping sends a PING and returns the time until the gateway's PONG.
func (s *Service) Ping(ctx context.Context) (time.Duration, error) {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	c, err := s.current(rctx)
	if err != nil {
		return 0, err
	}
	seq := s.nextSeq()
	start := time.Now()
	if _, err := c.roundTrip(rctx.Done(), seq, protocol.AppendEmpty(nil, protocol.OpPing, seq)); err != nil {
		if err == errAbandoned {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, ErrTimeout
		}
		return 0, err
	}
	return time.Since(start), nil
}
