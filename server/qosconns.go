package server

import (
	"context"

	"github.com/bytedance/sonic"
)

// A QoS1 push by connection id to a connection of another node (in a cluster with a
// QoSStore): the message belongs to the connection's user stream and is for its device
// (or the connection alone), so the pushing node asks the owning node who the
// connections are (one request per node), then stores one message per connection as a
// push by user would, targeted like a local one. The owner delivers it from the live
// feed; a connection that closes meanwhile finds it on resume.

// connRef is what a node answers about one of its connections.
type connRef struct {
	ID     uint64 `json:"id"`
	User   string `json:"u,omitempty"`
	Device string `json:"d,omitempty"`
	// Ready says the connection is authenticated and not closing.
	Ready bool `json:"r,omitempty"`
}

// answerConns answers a reqConns request: the JSON list of connection ids it carries.
func (s *Server) answerConns(payload []byte) []byte {
	var ids []uint64
	if err := sonic.Unmarshal(payload, &ids); err != nil {
		return nil
	}
	refs := make([]connRef, 0, len(ids))
	for _, id := range ids {
		r := connRef{ID: id}
		if c := s.hub.conn(id); c != nil && c.pushable() {
			who := c.ident()
			r.User, r.Device, r.Ready = who.userID, who.deviceID, true
		}
		refs = append(refs, r)
	}
	b, _ := sonic.Marshal(refs)
	return b
}

// lookupConns asks node about its connections ids.
func (s *Server) lookupConns(ctx context.Context, node uint16, ids []uint64) ([]connRef, error) {
	body, err := sonic.Marshal(ids)
	if err != nil {
		return nil, err
	}
	resp, err := s.broker.Request(ctx, node, append([]byte{reqConns}, body...))
	if err != nil {
		s.metrics.clusterErrors.Inc()
		return nil, ErrClusterUnavailable
	}
	var refs []connRef
	if err := sonic.Unmarshal(resp, &refs); err != nil {
		s.metrics.clusterErrors.Inc()
		return nil, ErrClusterUnavailable
	}
	return refs, nil
}

// pushRemoteConnsQoS1 stores a QoS1 message for each of the other nodes' connections
// ids and adds the outcome to res.
func (s *Server) pushRemoteConnsQoS1(ids []uint64, payload []byte, res *PushResult) error {
	byNode := map[uint16][]uint64{}
	for _, id := range ids {
		byNode[NodeOf(id)] = append(byNode[NodeOf(id)], id)
	}
	for node, ids := range byNode {
		ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
		refs, err := s.lookupConns(ctx, node, ids)
		cancel()
		if err != nil {
			return err
		}
		for _, r := range refs {
			if !r.Ready {
				res.Offline++
				continue
			}
			t := &target{device: r.Device}
			if r.Device == "" {
				t = &target{conn: r.ID}
			}
			id, _, err := s.pushStoredTo(r.User, t, payload)
			if err != nil {
				return err
			}
			res.MsgIDs[r.User] = id
			res.Delivered++
		}
	}
	return nil
}
