package server

import (
	"context"
	"errors"

	"github.com/tether-gw/tether/protocol"
)

// # The cluster seam
//
// The hub (this package's users, rooms and connections) is one node's. What must reach
// the other nodes of a cluster goes through a Broker: with none (Options.Broker nil, the
// default) the server is a single node and nothing here runs; package server/cluster is
// the NATS broker. The seam is small and one-way at each end:
//
//	out  the server calls Publish after doing its local part of an operation (a push,
//	     a kick, a login that may displace devices elsewhere), and Count whenever its
//	     local count of a user's connections or a room's members changes;
//	in   the broker calls Server.ApplyCluster with what another node published, which
//	     the server carries out locally only (it never publishes again), and answers
//	     RemoteCount from what the other nodes announced.
//
// Connection ids carry the node: Broker.NodeID sits in bits 40-52 of every id this node
// assigns (below 2^53, so ids stay exact as JSON numbers), so a push or kick by id goes
// to the node that owns it. Heartbeats, deadlines and everything per connection stay
// local and never reach the broker.

// Broker carries what crosses nodes (see the seam above). Its methods are called
// concurrently; Count and Publish are called on the push and auth paths, some under hub
// locks, so they must not block on the network (queue, then send).
type Broker interface {
	// Start connects the broker for node, whose ApplyCluster it calls with what other
	// nodes publish. Server.Start calls it before opening the client listeners.
	Start(node *Server) error
	// NodeID is this node's id in the cluster, below 1<<13.
	NodeID() uint16
	// Publish sends m to the other nodes it concerns. An error (ErrClusterUnavailable
	// when the broker is disconnected) fails the operation's cross-node part.
	Publish(m *ClusterMessage) error
	// Count records that this node now holds n connections of user key (kind
	// CountUser) or n members of room key (CountRoom).
	Count(kind CountKind, key string, n int)
	// RemoteCount returns how many connections of user key, or members of room key,
	// the other nodes last announced.
	RemoteCount(kind CountKind, key string) int
	// Available reports whether the broker can reach the other nodes now.
	Available() bool
	// Holders returns, per other node, its count of key (nodes with none left out).
	Holders(kind CountKind, key string) map[uint16]int
	// Keys returns the keys of kind some other node announced.
	Keys(kind CountKind) []string
	// Request sends payload to node's Handler (ClusterRequestHandler) and returns its
	// answer, or an error when ctx ends first or the node cannot be reached.
	Request(ctx context.Context, node uint16, payload []byte) ([]byte, error)
	// Query asks every other live node q (they answer with Server.AnswerCluster) and
	// returns the answers that came within ctx; missing counts the nodes that did not
	// answer in time.
	Query(ctx context.Context, q *ClusterQuery) (answers []*ClusterAnswer, missing int, err error)
	// Close disconnects the broker; Server.Shutdown and Close call it last.
	Close() error
}

// ClusterQuery asks the other nodes for their part of a presence or stats answer.
type ClusterQuery struct {
	// Users asks for these users' connections; Stats for the node's totals.
	Users []string `json:"users,omitempty"`
	Rooms []string `json:"rooms,omitempty"`
	Stats bool     `json:"stats,omitempty"`
}

// ClusterAnswer is one node's part of a query's answer.
type ClusterAnswer struct {
	Node  uint16                `json:"node"`
	Users map[string][]ConnInfo `json:"users,omitempty"`
	Rooms map[string]int        `json:"rooms,omitempty"`
	Stats *Stats                `json:"stats,omitempty"`
}

// CountKind says what a Broker count is of.
type CountKind uint8

const (
	// CountUser counts a user's authenticated connections.
	CountUser CountKind = iota
	// CountRoom counts a room's members.
	CountRoom
	// CountRoute and CountPrefix count the services subscribed to an exact uplink
	// route or a route prefix on a node's control port (its Handler announces them
	// with Server.AnnounceCount).
	CountRoute
	CountPrefix
)

// ClusterKind is the operation a ClusterMessage carries.
type ClusterKind uint8

const (
	// ClusterPushUsers pushes Payload to every connection of Users (not QoS1),
	// except the connections in Exclude.
	ClusterPushUsers ClusterKind = iota + 1
	// ClusterPushConns pushes Payload to the connections Conns.
	ClusterPushConns
	// ClusterPushRoom pushes Payload to the members of Room except Exclude.
	ClusterPushRoom
	// ClusterBroadcast pushes Payload to every connection except Exclude.
	ClusterBroadcast
	// ClusterKickUsers closes every connection of Users with Code and Reason.
	ClusterKickUsers
	// ClusterKickConns closes the connections Conns with Code and Reason.
	ClusterKickConns
	// ClusterLogin tells the nodes holding connections of UserID (every node, with
	// All, when none is known to) that ConnID logged in with Login's identity: they
	// apply the device policy to their connections of the user, as if the login were
	// theirs, the newer login winning (logins.go).
	ClusterLogin
	// ClusterJoinUsers puts every connection of Users in Room; ClusterLeaveUsers takes
	// them out.
	ClusterJoinUsers
	ClusterLeaveUsers
	// ClusterPushUsersQoS1 is ClusterPushUsers with QoS1: each receiving node keeps the
	// message in its own stream of the user (QoS1 state is per node for now: a device
	// that resumes on another node is not sent it).
	ClusterPushUsersQoS1
	// ClusterEvent carries Payload, an event for the Handler of every node (see
	// ClusterEventHandler); it is published to all nodes.
	ClusterEvent
)

// ClusterRequestHandler is implemented by a Handler that answers requests other nodes
// send with Server.ClusterRequest (the control port: uplinks for its services). It must
// not block: respond may be called later, from any goroutine, once.
type ClusterRequestHandler interface {
	OnClusterRequest(payload []byte, respond func([]byte))
}

// ClusterEventHandler is implemented by a Handler that wants events other nodes
// published with Server.PublishEvent (the control port: online and offline events for
// its subscribed services).
type ClusterEventHandler interface {
	OnClusterEvent(payload []byte)
}

// ClusterMessage is one operation for other nodes. Which fields matter depends on Kind.
type ClusterMessage struct {
	Kind    ClusterKind
	Users   []string
	Conns   []uint64
	Room    string
	Payload []byte
	Exclude []uint64
	Code    protocol.CloseCode
	Reason  string
	// Login is the new login's identity (ClusterLogin).
	Login LoginIdentity
	// Nodes, when set, are the nodes to send to, instead of those the counts name
	// (a query found them before their counts arrived).
	Nodes []uint16
	// All sends to every node, whatever the counts say.
	All bool
}

// LoginIdentity is what the device policy compares of two logins.
type LoginIdentity struct {
	UserID, DeviceID, Platform string
	// TokenHash tells a second login with the same token (without device ids).
	TokenHash uint64
	ConnID    uint64
	// At is when the login authenticated (Unix nanoseconds, the sending node's clock).
	At int64
}

// ErrClusterUnavailable is returned for an operation whose cross-node part could not be
// handed to the broker (it lost its connection): the local part was done.
var ErrClusterUnavailable = errors.New("server: cluster unavailable: the operation reached this node only")

// ErrClusterQoS1 is returned for a QoS1 push by id to a connection of another node by a
// Broker that keeps no QoS1 streams (not a QoSBroker): each node's streams are its own.
var ErrClusterQoS1 = errors.New("server: QoS1 push by connection id to another node needs a cluster that keeps QoS1 streams")

// nodeBits is where a connection id carries its node: bits 40-52.
const (
	nodeShift = 40
	// MaxNodeID is the largest node id (13 bits), so connection ids stay below 2^53.
	MaxNodeID = 1<<13 - 1
)

// NodeOf returns the node id a connection id was assigned by.
func NodeOf(connID uint64) uint16 { return uint16(connID >> nodeShift) }

// ApplyCluster carries out on this node what another node published. It never
// publishes again. The broker calls it from its own goroutines.
func (s *Server) ApplyCluster(m *ClusterMessage) {
	switch m.Kind {
	case ClusterPushUsers:
		_, _ = s.pushUsersLocal(m.Users, m.Payload, excludeSet(m.Exclude))
	case ClusterPushUsersQoS1:
		ex := excludeSet(m.Exclude)
		for _, uid := range m.Users {
			_, _, _, _ = s.pushQoS1(uid, nil, m.Payload, ex)
		}
	case ClusterPushConns:
		_, _ = s.pushConnsLocal(m.Conns, m.Payload)
	case ClusterPushRoom:
		_, _ = s.pushRoomLocal(m.Room, m.Payload, excludeSet(m.Exclude))
	case ClusterBroadcast:
		_, _ = s.broadcastLocal(m.Payload, excludeSet(m.Exclude))
	case ClusterKickUsers:
		for _, u := range m.Users {
			s.kickUserLocal(u, m.Code, m.Reason)
		}
	case ClusterKickConns:
		for _, id := range m.Conns {
			if c := s.hub.conn(id); c != nil {
				c.Close(m.Code, m.Reason)
			}
		}
	case ClusterLogin:
		s.applyRemoteLogin(m.Login)
	case ClusterEvent:
		if h, ok := s.opts.Handler.(ClusterEventHandler); ok {
			h.OnClusterEvent(m.Payload)
		}
	case ClusterJoinUsers, ClusterLeaveUsers:
		for _, u := range m.Users {
			if m.Kind == ClusterJoinUsers {
				_, _ = s.joinUserLocal(u, m.Room)
			} else {
				s.leaveUserLocal(u, m.Room)
			}
		}
	}
}

// AnnounceCount tells the other nodes of a cluster this node's count of key (the
// Handler's route subscriptions: CountRoute, CountPrefix). It does nothing on a single
// node, and must not be relied on to block or fail.
func (s *Server) AnnounceCount(kind CountKind, key string, n int) { s.count(kind, key, n) }

// ClusterHolders returns, per other node, its announced count of key (nil on a single
// node).
func (s *Server) ClusterHolders(kind CountKind, key string) map[uint16]int {
	if s.broker == nil {
		return nil
	}
	return s.broker.Holders(kind, key)
}

// ClusterKeys returns the keys of kind the other nodes announced (nil on a single node).
func (s *Server) ClusterKeys(kind CountKind) []string {
	if s.broker == nil {
		return nil
	}
	return s.broker.Keys(kind)
}

// ClusterRequest sends payload to node's Handler and waits for its answer within ctx.
func (s *Server) ClusterRequest(ctx context.Context, node uint16, payload []byte) ([]byte, error) {
	if s.broker == nil {
		return nil, ErrClusterUnavailable
	}
	return s.broker.Request(ctx, node, append([]byte{reqHandler}, payload...))
}

// Requests between nodes start with a byte saying who answers: the Handler
// (ClusterRequest: uplinks) or the server itself (qosconns.go).
const (
	reqHandler byte = iota
	reqConns
)

// AnswerRequest answers a request from another node (the broker calls it): the
// Handler's, or one the server answers itself.
func (s *Server) AnswerRequest(payload []byte, respond func([]byte)) {
	if len(payload) == 0 {
		respond(nil)
		return
	}
	switch payload[0] {
	case reqHandler:
		if h, ok := s.opts.Handler.(ClusterRequestHandler); ok {
			h.OnClusterRequest(payload[1:], respond)
			return
		}
	case reqConns:
		respond(s.answerConns(payload[1:]))
		return
	}
	respond(nil)
}

// publish hands m to the broker, if there is one.
func (s *Server) publish(m *ClusterMessage) error {
	if s.broker == nil {
		return nil
	}
	if err := s.broker.Publish(m); err != nil {
		s.metrics.clusterErrors.Inc()
		return ErrClusterUnavailable
	}
	return nil
}

// ClusterDown reports whether this node is part of a cluster it cannot reach now: what
// it does not find locally may then be on another node, and is reported as
// ErrClusterUnavailable rather than offline.
func (s *Server) ClusterDown() bool { return s.broker != nil && !s.broker.Available() }

// unavailable counts an operation whose cross-node part could not be done and returns
// ErrClusterUnavailable.
func (s *Server) unavailable() error {
	s.metrics.clusterErrors.Inc()
	return ErrClusterUnavailable
}

// remoteCount is the broker's count of key on other nodes (0 on a single node).
func (s *Server) remoteCount(kind CountKind, key string) int {
	if s.broker == nil {
		return 0
	}
	return s.broker.RemoteCount(kind, key)
}

// count tells the broker this node's count of key changed.
func (s *Server) count(kind CountKind, key string, n int) {
	if s.broker != nil {
		s.broker.Count(kind, key, n)
	}
}

// isLocal reports whether connection id was assigned by this node.
func (s *Server) isLocal(id uint64) bool { return NodeOf(id) == s.nodeID }
