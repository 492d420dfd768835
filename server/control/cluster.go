package control

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// Uplinks across a cluster. Each node announces its services' subscriptions (the number
// of subscribers per exact route and per prefix, server.AnnounceCount), so every node
// knows which nodes can serve a route. A SEND is routed by the same rules as on one node,
// over the whole cluster: an exact route beats any prefix, the longest prefix beats
// shorter ones, and among the subscribers of the winning route or prefix, wherever they
// are, uplinks take turns (round-robin weighted by subscribers per node). An uplink for
// another node goes there as a NATS request carrying the UPLINK frame; that node
// dispatches it to one of its services as if it were local (with its own timeout and
// failover among its services) and answers with the REPLY. If the other node cannot be
// reached the uplink falls back to this node's subscribers, if any, else NO_ROUTE.

// clusterRR spreads uplinks over the cluster's subscribers.
var clusterRR atomic.Uint64

// routeNode decides where route is served: remote is true with the node to forward to,
// false to dispatch here (or answer NO_ROUTE).
func (p *Port) routeNode(route string) (node uint16, remote bool) {
	srv := p.srv.Load()
	if srv == nil || !srv.Clustered() {
		return 0, false
	}
	local, localKey, exact := p.router.localCount(route)
	var holders map[uint16]int
	switch {
	case exact:
		holders = srv.ClusterHolders(server.CountRoute, route)
	default:
		if h := srv.ClusterHolders(server.CountRoute, route); len(h) > 0 {
			local, holders = 0, h // an exact route elsewhere beats our prefixes
			break
		}
		best, found := "", false
		for _, k := range srv.ClusterKeys(server.CountPrefix) {
			if strings.HasPrefix(route, k) && (!found || len(k) > len(best)) {
				best, found = k, true
			}
		}
		switch {
		case !found:
		case local > 0 && len(localKey) > len(best):
		case local > 0 && len(localKey) == len(best):
			holders = srv.ClusterHolders(server.CountPrefix, best)
		default:
			local, holders = 0, srv.ClusterHolders(server.CountPrefix, best)
		}
	}
	total := local
	nodes := make([]uint16, 0, len(holders))
	for id, n := range holders {
		total += n
		nodes = append(nodes, id)
	}
	if total == 0 || len(nodes) == 0 {
		return 0, false
	}
	pick := int(clusterRR.Add(1) % uint64(total))
	if pick < local {
		return 0, false
	}
	pick -= local
	slices.Sort(nodes)
	for _, id := range nodes {
		if pick < holders[id] {
			return id, true
		}
		pick -= holders[id]
	}
	return nodes[len(nodes)-1], true
}

// forward sends an uplink to node and answers the client with what comes back.
func (p *Port) forward(node uint16, hdr *wire.Uplink, m *server.Message) ([]byte, error) {
	srv := p.srv.Load()
	frame, err := codec.AppendFrame(nil, OpUplink, 0, hdr, m.Payload)
	if err != nil {
		return nil, &server.ReplyError{Code: protocol.ErrorInternal, Message: "internal error"}
	}
	p.uplinksN.Add(1)
	p.m.uplinkForwarded.Inc()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.opts.UplinkTimeout+time.Second)
		defer cancel()
		resp, err := srv.ClusterRequest(ctx, node, frame)
		if m.NoReply {
			return
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				_ = m.Fail(protocol.ErrorTimeout, "service did not answer in time")
				return
			}
			// The node is gone or unreachable: this node's services, if any.
			if code := p.uplink(hdr, m.Payload, m); code != 0 && code != codeAnswered {
				_ = m.Fail(code, "no service for this route")
			}
			return
		}
		f, n, perr := protocol.Parse(resp, protocol.MaxFrameLimit)
		var r wire.Reply
		var payload []byte
		if perr == nil && n == len(resp) && f.Op == OpReply {
			payload, perr = codec.DecodeBody(f.Body, &r)
		} else if perr == nil {
			perr = errors.New("not a REPLY")
		}
		switch {
		case perr != nil:
			_ = m.Fail(protocol.ErrorInternal, "malformed answer from another node")
		case r.Code == 0:
			_ = m.Reply(payload)
		default:
			_ = m.Fail(r.Code, r.Message)
		}
	}()
	if m.NoReply {
		return nil, nil
	}
	return nil, server.ErrDeferReply
}

// OnClusterRequest dispatches an uplink another node forwarded to one of this node's
// services (server.ClusterRequestHandler); respond carries the REPLY back.
func (p *Port) OnClusterRequest(payload []byte, respond func([]byte)) {
	ans := &remoteAnswer{respond: respond}
	f, n, err := protocol.Parse(payload, protocol.MaxFrameLimit)
	var hdr wire.Uplink
	var body []byte
	if err == nil && n == len(payload) && f.Op == OpUplink {
		body, err = codec.DecodeBody(f.Body, &hdr)
	} else if err == nil {
		err = errors.New("not an UPLINK")
	}
	if err != nil {
		_ = ans.Fail(protocol.ErrorBadRequest, "malformed forwarded uplink")
		return
	}
	code := p.uplink(&hdr, body, ans)
	switch {
	case hdr.NoReply:
		_ = ans.Reply(nil) // only an acknowledgement: the origin answers nobody
	case code == protocol.ErrorBusy:
		_ = ans.Fail(code, "services busy")
	case code != 0 && code != codeAnswered:
		_ = ans.Fail(code, "no service for this route")
	}
}

// remoteAnswer answers a forwarded uplink's origin node, once.
type remoteAnswer struct {
	respond func([]byte)
	done    atomic.Bool
}

func (a *remoteAnswer) Reply(payload []byte) error { return a.send(&wire.Reply{}, payload) }

func (a *remoteAnswer) Fail(code protocol.ErrorCode, msg string) error {
	return a.send(&wire.Reply{Code: code, Message: msg}, nil)
}

func (a *remoteAnswer) send(r *wire.Reply, payload []byte) error {
	if !a.done.CompareAndSwap(false, true) {
		return server.ErrAlreadyReplied
	}
	frame, err := codec.AppendFrame(nil, OpReply, 0, r, payload)
	if err != nil {
		return err
	}
	a.respond(frame)
	return nil
}
