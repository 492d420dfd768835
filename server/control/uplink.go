package control

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// Uplinks: a client's SEND becomes an UPLINK to one service subscribed to its route
// (round-robin, skipping services whose queue is full), and that service's REPLY
// becomes the client's SEND_REPLY or ERROR. An uplink waits in its service session's
// pending map until the REPLY, the timeout, or the session's end, whichever comes
// first; done makes sure exactly one of them answers the client.

// answerer answers the client of an uplink: its *server.Message on this node, or the
// node a forwarded uplink came from (cluster.go).
type answerer interface {
	Reply(payload []byte) error
	Fail(code protocol.ErrorCode, msg string) error
}

// pending is one uplink waiting for a REPLY.
type pending struct {
	id      uint64
	route   string
	noReply bool
	ans     answerer
	frame   []byte // the encoded UPLINK, kept for a re-dispatch
	timer   *time.Timer
	p       *Port
	// sess is the session the uplink was last sent to.
	sess atomic.Pointer[session]
	done atomic.Bool
	// retried is set once the uplink was re-dispatched after its session ended; it
	// is only touched by that session's close, under the pending map's hand-over.
	retried bool
}

// finish claims the right to answer the client; only the first caller gets true. It
// stops the timer unless called by the timer itself (which may run before OnMessage
// has stored pd.timer).
func (pd *pending) finish(stopTimer bool) bool {
	if !pd.done.CompareAndSwap(false, true) {
		return false
	}
	if stopTimer && pd.timer != nil {
		pd.timer.Stop()
	}
	pd.p.pendingN.Add(-1)
	return true
}

// OnMessage routes a client's SEND to a subscribed service and answers it later (it
// returns server.ErrDeferReply), or at once with ERROR NO_ROUTE when no service
// subscribed to the route, or ERROR BUSY when every subscriber's queue is full. It runs
// on the gateway's worker pool and never blocks.
//
// An empty route is never routed (PROTOCOL.md §15.6: the empty prefix matches every
// route, and routes are not empty); the gateway refuses such a SEND before it gets here,
// and the port answers BAD_REQUEST should one arrive anyway.
func (p *Port) OnMessage(m *server.Message) ([]byte, error) {
	if m.Route == "" {
		return nil, &server.ReplyError{Code: protocol.ErrorBadRequest, Message: "empty route"}
	}
	c := m.Conn
	hdr := wire.Uplink{
		Conn:     c.ID(),
		User:     c.UserID(),
		Device:   c.DeviceID(),
		Platform: c.Platform(),
		Route:    m.Route,
		NoReply:  m.NoReply,
	}
	observed := p.observeUplink(m)
	if node, remote := p.routeNode(m.Route); remote {
		return p.forward(node, &hdr, m)
	}
	code := p.uplink(&hdr, m.Payload, m)
	if code == 0 {
		if m.NoReply {
			return nil, nil // nothing goes back to the client; this releases its slot
		}
		return nil, server.ErrDeferReply
	}
	if code == codeAnswered {
		return nil, server.ErrDeferReply // the timeout answered already
	}
	if code == protocol.ErrorNoRoute && observed {
		return nil, nil // the Observer (a webhook) took it: an empty SEND_REPLY
	}
	msg := "no service for this route"
	if code == protocol.ErrorBusy {
		msg = "services busy"
	}
	return nil, &server.ReplyError{Code: code, Message: msg}
}

// codeAnswered is uplink's result when the uplink could not be dispatched but its
// timeout answered the client meanwhile.
const codeAnswered protocol.ErrorCode = 1

// uplink sends an uplink for route hdr.Route (from this node's client, or forwarded by
// another node) to one of this node's subscribed services, whose REPLY ans gets. It
// returns 0 once dispatched, or the error code to answer with (NO_ROUTE, BUSY), or
// codeAnswered.
func (p *Port) uplink(hdr *wire.Uplink, payload []byte, ans answerer) protocol.ErrorCode {
	hdr.ID = p.nextUplink.Add(1)
	frame, err := codec.AppendFrame(nil, OpUplink, 0, hdr, payload)
	if err != nil {
		p.log.Error("cannot encode an uplink", "err", err)
		return protocol.ErrorInternal
	}
	pd := &pending{id: hdr.ID, route: hdr.Route, noReply: hdr.NoReply, ans: ans, frame: frame, p: p}
	if !hdr.NoReply {
		p.pendingN.Add(1)
		pd.timer = time.AfterFunc(p.opts.UplinkTimeout, func() { p.timeout(pd) })
	}
	code := p.dispatch(pd, nil)
	if code == 0 {
		p.uplinksN.Add(1)
		p.m.uplinkSent.Inc()
		return 0
	}
	p.m.uplinkResult(code).Inc()
	if !hdr.NoReply && !pd.finish(true) {
		return codeAnswered
	}
	return code
}

// dispatch sends pd to one subscriber of its route other than exclude. It returns 0 on
// success, protocol.ErrorNoRoute when no open subscriber exists, and protocol.ErrorBusy
// when every subscriber's queue is full.
func (p *Port) dispatch(pd *pending, exclude *session) protocol.ErrorCode {
	g, subs := p.router.lookup(pd.route)
	if g == nil {
		return protocol.ErrorNoRoute
	}
	track := !pd.noReply
	busy := false
	start := int(g.rr.Add(1))
	for i := range subs {
		s := subs[(start+i)%len(subs)]
		if s == exclude {
			continue
		}
		if track {
			pd.sess.Store(s)
			if !s.addPending(pd) {
				continue
			}
		}
		if s.offer(pd.frame) {
			// The timeout may have fired before the uplink was recorded here.
			if track && pd.done.Load() {
				s.takePending(pd.id)
			}
			return 0
		}
		busy = true
		if track {
			s.takePending(pd.id)
		}
	}
	if busy {
		return protocol.ErrorBusy
	}
	return protocol.ErrorNoRoute
}

// timeout answers an uplink whose service did not reply within Options.UplinkTimeout.
func (p *Port) timeout(pd *pending) {
	if !pd.finish(false) {
		return
	}
	if s := pd.sess.Load(); s != nil {
		s.takePending(pd.id)
	}
	p.m.uplinkResult(protocol.ErrorTimeout).Inc()
	_ = pd.ans.Fail(protocol.ErrorTimeout, "service did not answer in time")
}

// failover re-dispatches, once, an uplink whose service connection ended before
// replying; if that is impossible (or it already happened) the client gets ERROR
// NO_ROUTE.
func (p *Port) failover(pd *pending, from *session) {
	if pd.done.Load() {
		return
	}
	code := protocol.ErrorNoRoute
	if !pd.retried {
		pd.retried = true
		if code = p.dispatch(pd, from); code == 0 {
			p.m.redispatched.Inc()
			return
		}
	}
	if pd.finish(true) {
		p.m.uplinkResult(code).Inc()
		_ = pd.ans.Fail(code, "service connection lost")
	}
}

// handleReply passes a service's REPLY to the client that sent the uplink. A REPLY for
// an uplink that is unknown, already answered or timed out is dropped and counted; a
// malformed one is answered FAIL.
func (s *session) handleReply(f protocol.Frame) {
	p := s.p
	var r wire.Reply
	payload, err := codec.DecodeBody(f.Body, &r)
	if err != nil {
		s.failed(f.Op, f.Seq, badRequest(err.Error()))
		return
	}
	pd := s.takePending(r.ID)
	if pd == nil || !pd.finish(true) {
		p.m.repliesUnknown.Inc()
		return
	}
	m := pd.ans
	if r.Code == 0 {
		err = m.Reply(payload)
		p.m.uplinkReplied.Inc()
	} else {
		code := r.Code
		if !code.InRange() {
			code = protocol.ErrorInternal
		}
		err = m.Fail(code, r.Message)
		p.m.uplinkFailed.Inc()
	}
	switch {
	case err == nil:
	case errors.Is(err, server.ErrPayloadTooLarge):
		// The client got ERROR INTERNAL; tell the service if it can match the answer.
		if f.Seq != 0 {
			s.failed(f.Op, f.Seq, badRequest("reply exceeds the clients' max frame"))
		}
	default:
		s.logger().Debug("reply not delivered", "uplink", r.ID, "err", err)
	}
}

// OnConnect tells event subscribers that c came online, on this node and, in a
// cluster, on every other (their services subscribe to events on their own node).
func (p *Port) OnConnect(c *server.Conn) {
	p.observeConnect(c)
	p.emitCluster(&wire.Event{Type: wire.EventOnline, Conn: c.ID(), User: c.UserID(), Device: c.DeviceID(), Platform: c.Platform()})
}

// OnDisconnect tells event subscribers that c went offline, with its close code.
func (p *Port) OnDisconnect(c *server.Conn, code protocol.CloseCode) {
	p.observeDisconnect(c, code)
	p.emitCluster(&wire.Event{Type: wire.EventOffline, Conn: c.ID(), User: c.UserID(), Device: c.DeviceID(),
		Platform: c.Platform(), Code: code, Reason: code.String()})
}

// OnAck tells the services subscribed to ack events, on this node and on any other
// node of a cluster that has some, that c acknowledged its QoS1 messages up to msgID
// (server.AckHandler).
func (p *Port) OnAck(c *server.Conn, msgID uint64) {
	srv := p.srv.Load()
	remote := srv != nil && srv.Clustered() && len(srv.ClusterHolders(server.CountRoute, ackKey)) > 0
	subs := p.router.ackSubs()
	if !remote && len(subs) == 0 {
		return
	}
	ev := &wire.Event{Type: wire.EventAck, Conn: c.ID(), User: c.UserID(), Device: c.DeviceID(), Platform: c.Platform(), MsgID: msgID}
	frame, err := codec.AppendFrame(nil, OpEvent, 0, ev, nil)
	if err != nil {
		p.log.Error("cannot encode an event", "err", err)
		return
	}
	p.emitFrameTo(subs, frame)
	if remote {
		_ = srv.PublishEvent(frame)
	}
}

// OnClusterEvent emits an event frame another node of the cluster published
// (server.ClusterEventHandler).
func (p *Port) OnClusterEvent(frame []byte) {
	f, n, err := protocol.Parse(frame, protocol.MaxFrameLimit)
	if err != nil || n != len(frame) || f.Op != OpEvent {
		p.log.Warn("malformed event from another node")
		return
	}
	var ev wire.Event
	if _, err := codec.DecodeBody(f.Body, &ev); err != nil {
		p.log.Warn("malformed event from another node")
		return
	}
	if ev.Type == wire.EventAck {
		p.emitFrameTo(p.router.ackSubs(), frame)
		return
	}
	p.emitFrame(frame)
}

// emitCluster emits ev here and publishes it to the other nodes of a cluster.
func (p *Port) emitCluster(ev *wire.Event) {
	srv := p.srv.Load()
	clustered := srv != nil && srv.Clustered()
	if !clustered && len(p.router.eventSubs()) == 0 {
		return // nobody to tell: not even encoded
	}
	if frame := p.emit(ev); clustered && frame != nil {
		_ = srv.PublishEvent(frame)
	}
}

// emit queues an event for every subscriber, encoded once, and returns the frame; a
// subscriber whose queue is full misses it (counted).
func (p *Port) emit(ev *wire.Event) []byte {
	frame, err := codec.AppendFrame(nil, OpEvent, 0, ev, nil)
	if err != nil {
		p.log.Error("cannot encode an event", "err", err)
		return nil
	}
	p.emitFrame(frame)
	return frame
}

// emitFrame queues an encoded event for every subscriber.
func (p *Port) emitFrame(frame []byte) { p.emitFrameTo(p.router.eventSubs(), frame) }

// emitFrameTo queues an encoded event for subs.
func (p *Port) emitFrameTo(subs []*session, frame []byte) {
	for _, s := range subs {
		if s.offer(frame) {
			p.m.events.Inc()
		} else {
			p.m.eventsDropped.Inc()
		}
	}
}
