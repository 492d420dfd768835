package server

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// Presence and stats for the whole cluster: this node's part is read directly, the
// other nodes' are asked for (Broker.Query) and merged, so an answer is as fresh as the
// query; a node that does not answer within the caller's context is left out, and the
// answer says how many were (ClusterView.Missing).

// ConnInfo describes one connection for presence.
type ConnInfo struct {
	ID        uint64    `json:"id"`
	DeviceID  string    `json:"device,omitempty"`
	Platform  string    `json:"platform,omitempty"`
	Addr      string    `json:"addr,omitempty"`
	Transport Transport `json:"transport"`
	Rooms     []string  `json:"rooms,omitempty"`
	// Node is the node holding the connection (0 on a single node).
	Node uint16 `json:"node"`
}

// ClusterView is a presence answer for the whole cluster.
type ClusterView struct {
	// Users maps each asked user to its connections on every node that answered.
	Users map[string][]ConnInfo
	// Totals sums the Stats of every node that answered (a user with connections on
	// two nodes counts in each).
	Totals Stats
	// Nodes counts the nodes that answered, this one included; Missing those that
	// did not in time.
	Nodes, Missing int
}

// Presence returns the connections of users and the totals across the cluster (this
// node alone without a Broker). An error means the other nodes could not be asked; the
// view then holds this node's part.
func (s *Server) Presence(ctx context.Context, users []string) (ClusterView, error) {
	v := ClusterView{Users: make(map[string][]ConnInfo, len(users)), Nodes: 1}
	local := s.AnswerCluster(&ClusterQuery{Users: users, Stats: true})
	v.merge(local)
	if s.broker == nil {
		return v, nil
	}
	answers, missing, err := s.broker.Query(ctx, &ClusterQuery{Users: users, Stats: true})
	if err != nil {
		s.metrics.clusterErrors.Inc()
		return v, ErrClusterUnavailable
	}
	for _, a := range answers {
		v.merge(a)
		v.Nodes++
	}
	v.Missing = missing
	return v, nil
}

func (v *ClusterView) merge(a *ClusterAnswer) {
	for u, cs := range a.Users {
		v.Users[u] = append(v.Users[u], cs...)
	}
	if st := a.Stats; st != nil {
		v.Totals.Connections += st.Connections
		v.Totals.Authenticated += st.Authenticated
		v.Totals.Users += st.Users
		v.Totals.Rooms += st.Rooms
		v.Totals.Draining = v.Totals.Draining || st.Draining
	}
}

// AnswerCluster answers a query about this node (the broker calls it for queries from
// other nodes).
func (s *Server) AnswerCluster(q *ClusterQuery) *ClusterAnswer {
	a := &ClusterAnswer{Node: s.nodeID}
	if len(q.Users) > 0 {
		a.Users = make(map[string][]ConnInfo, len(q.Users))
		for _, u := range q.Users {
			infos := []ConnInfo{}
			for _, c := range s.hub.userConns(u, nil) {
				info := ConnInfo{ID: c.ID(), DeviceID: c.DeviceID(), Platform: c.Platform(), Transport: c.Transport(), Rooms: c.Rooms(), Node: s.nodeID}
				if addr := c.RemoteAddr(); addr != nil {
					info.Addr = addr.String()
				}
				infos = append(infos, info)
			}
			slices.SortFunc(infos, func(x, y ConnInfo) int { return cmp.Compare(x.ID, y.ID) })
			a.Users[u] = infos
		}
	}
	if len(q.Rooms) > 0 {
		a.Rooms = make(map[string]int, len(q.Rooms))
		for _, name := range q.Rooms {
			if r := s.rooms.get(name); r != nil {
				a.Rooms[name] = r.size()
			}
		}
	}
	if q.Stats {
		st := s.Stats()
		a.Stats = &st
	}
	return a
}

// missWait bounds the query a push makes for what the counts do not show yet.
const missWait = 250 * time.Millisecond

// findElsewhere asks the other nodes which of them hold connections of users, or
// members of room: the counts lag a first connection or member by up to a flush, and a
// push made in that moment must not call the user offline. It returns, per node, the
// users it holds and its members of room.
func (s *Server) findElsewhere(users []string, room string) (map[uint16][]string, map[uint16]int) {
	if s.broker == nil || (len(users) == 0 && room == "") {
		return nil, nil
	}
	q := &ClusterQuery{Users: users}
	if room != "" {
		q.Rooms = []string{room}
	}
	ctx, cancel := context.WithTimeout(context.Background(), missWait)
	defer cancel()
	answers, _, err := s.broker.Query(ctx, q)
	if err != nil {
		return nil, nil
	}
	byNode, members := map[uint16][]string{}, map[uint16]int{}
	for _, a := range answers {
		for u, cs := range a.Users {
			if len(cs) > 0 {
				byNode[a.Node] = append(byNode[a.Node], u)
			}
		}
		if n := a.Rooms[room]; n > 0 {
			members[a.Node] = n
		}
	}
	return byNode, members
}

// NodeID returns this node's id in its cluster (0 on a single node): the node part of
// its connection ids.
func (s *Server) NodeID() uint16 { return s.nodeID }

// Clustered reports whether the server is one node of a cluster (it has a Broker).
func (s *Server) Clustered() bool { return s.broker != nil }

// PublishEvent sends payload to the Handler of every other node (ClusterEventHandler);
// nothing without a Broker.
func (s *Server) PublishEvent(payload []byte) error {
	return s.publish(&ClusterMessage{Kind: ClusterEvent, Payload: payload})
}
