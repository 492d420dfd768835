package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// call is a request waiting for its answer.
type call struct {
	ch   chan reply // buffered 1: the read goroutine never blocks on it
	room string     // for a rejoin SUBSCRIBE sent by attach, which nobody awaits
}

// reply is the answer to a call.
type reply struct {
	op      protocol.Opcode
	payload []byte // owned copy
	err     error
}

// nextSeq returns the next request seq: 1, 2, … wrapping to 1, never 0
// (PROTOCOL.md §10), so that a reply with seq 0 is never taken for an answer.
func (c *Client) nextSeq() uint32 {
	for {
		if s := c.seq.Add(1); s != 0 {
			return s
		}
	}
}

// register adds cl to the pending requests under a fresh seq.
func (cn *conn) register(cl *call) (uint32, error) {
	cn.pmu.Lock()
	defer cn.pmu.Unlock()
	if cn.dead {
		return 0, ErrDisconnected
	}
	seq := cn.c.nextSeq()
	for cn.pending[seq] != nil {
		seq = cn.c.nextSeq() // 2³² requests later, one is still waiting
	}
	cn.pending[seq] = cl
	return seq, nil
}

func (cn *conn) unregister(seq uint32) {
	cn.pmu.Lock()
	delete(cn.pending, seq)
	cn.pmu.Unlock()
}

func (cn *conn) pendingLen() int {
	cn.pmu.Lock()
	defer cn.pmu.Unlock()
	return len(cn.pending)
}

// complete answers the request with seq, copying body; it reports false if
// no request was waiting (it timed out, or the seq is unknown).
func (cn *conn) complete(seq uint32, op protocol.Opcode, body []byte, err error) bool {
	cn.pmu.Lock()
	cl := cn.pending[seq]
	delete(cn.pending, seq)
	cn.pmu.Unlock()
	if cl == nil {
		return false
	}
	if cl.ch == nil {
		if err != nil {
			cn.c.log.Warn("cannot rejoin room", "room", cl.room, "err", err)
			cn.c.dropRoom(cl.room)
		}
		return true
	}
	r := reply{op: op, err: err}
	if len(body) > 0 {
		r.payload = bytes.Clone(body)
	}
	cl.ch <- r
	return true
}

// failPending fails every waiting request with ErrDisconnected once the
// connection has ended, and refuses new ones.
func (cn *conn) failPending() {
	cn.pmu.Lock()
	cn.dead = true
	pending := cn.pending
	cn.pending = nil
	cn.pmu.Unlock()
	for _, cl := range pending {
		if cl.ch != nil {
			cl.ch <- reply{err: ErrDisconnected}
		}
	}
}

// rejoin sends SUBSCRIBE for room on a new connection, without waiting; an
// ERROR answer drops the room from the set.
func (cn *conn) rejoin(room string) {
	seq, err := cn.register(&call{room: room})
	if err != nil {
		return
	}
	if err := cn.writeMsg(&protocol.Subscribe{Room: room}, seq, 0); err != nil {
		cn.unregister(seq)
		cn.c.log.Warn("cannot rejoin room", "room", room, "err", err)
	}
}

func (c *Client) dropRoom(room string) {
	c.mu.Lock()
	delete(c.rooms, room)
	c.mu.Unlock()
}

// withTimeout bounds ctx by Options.RequestTimeout, reported as ErrTimeout.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, c.opts.RequestTimeout, ErrTimeout)
}

// roundTrip sends a request on cn (m, or an empty frame of op when m is nil)
// and waits for its answer. A *ServerError answer is returned as the error.
func (cn *conn) roundTrip(ctx context.Context, m protocol.Message, op protocol.Opcode) (reply, error) {
	cl := &call{ch: make(chan reply, 1)}
	seq, err := cn.register(cl)
	if err != nil {
		return reply{}, err
	}
	if m != nil {
		err = cn.writeMsg(m, seq, 0)
	} else {
		err = cn.writeEmpty(op, seq)
	}
	if err != nil {
		cn.unregister(seq)
		return reply{}, err
	}
	select {
	case r := <-cl.ch:
		return r, r.err
	case <-ctx.Done():
		cn.unregister(seq)
		return reply{}, context.Cause(ctx)
	}
}

// request waits for a connection and makes a round trip on it.
func (c *Client) request(ctx context.Context, m protocol.Message) (reply, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	cn, err := c.waitConn(ctx)
	if err != nil {
		return reply{}, err
	}
	return cn.roundTrip(ctx, m, 0)
}

// Send sends payload to the backend service named by route and returns the
// reply payload (a copy the caller owns). It waits for a connection if the
// client is reconnecting, then for SEND_REPLY or ERROR, both bounded by ctx
// and Options.RequestTimeout.
//
// Errors: a *ServerError for an ERROR answer; ErrTimeout (or ctx's error) if
// no answer came in time; ErrDisconnected if the connection ended first, in
// which case the request may or may not have been processed; ErrClosed after
// Close; an error wrapping protocol.ErrFrameTooLarge if the frame exceeds the
// server's max_frame (nothing is sent). Safe for concurrent use; each call
// allocates its reply and a small waiter.
func (c *Client) Send(ctx context.Context, route string, payload []byte) ([]byte, error) {
	r, err := c.request(ctx, &protocol.Send{Route: route, Payload: payload})
	if err != nil {
		return nil, err
	}
	if r.op != protocol.OpSendReply {
		return nil, fmt.Errorf("client: SEND %s answered with %s", route, r.op)
	}
	return r.payload, nil
}

// SendNoReply sends payload to route with FlagNoReply: the server answers
// nothing, not even an ERROR. It does not wait for a connection: while the
// client is not connected it returns ErrDisconnected at once. A nil error
// means the frame was written to the socket, not that it was processed.
func (c *Client) SendNoReply(route string, payload []byte) error {
	cn, _, err := c.usable()
	if err != nil {
		return err
	}
	if cn == nil {
		return ErrDisconnected
	}
	return cn.writeMsg(&protocol.Send{Route: route, Payload: payload}, c.nextSeq(), protocol.FlagNoReply)
}

// Subscribe joins room and waits for the server's OK. From then on the room
// is rejoined on every reconnect until Unsubscribe. If the server refuses
// (a *ServerError, e.g. ErrorDenied or ErrorTooManyRooms) or no answer comes
// (errors as for Send), the room is not kept, unless it was subscribed
// before.
func (c *Client) Subscribe(ctx context.Context, room string) error {
	c.mu.Lock()
	_, had := c.rooms[room]
	c.rooms[room] = struct{}{}
	c.mu.Unlock()
	_, err := c.request(ctx, &protocol.Subscribe{Room: room})
	if err != nil && !had {
		c.dropRoom(room)
	}
	return err
}

// Unsubscribe leaves room: it is no longer rejoined on reconnect, and if the
// client is connected it sends UNSUBSCRIBE and waits for the answer. While
// the client is not connected, or if the connection ends before the answer,
// it returns nil: room membership ends with the connection anyway. A
// *ServerError or a timeout is returned as for Send.
func (c *Client) Unsubscribe(ctx context.Context, room string) error {
	c.dropRoom(room)
	cn, _, err := c.usable()
	if err != nil || cn == nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	_, err = cn.roundTrip(ctx, &protocol.Unsubscribe{Room: room}, 0)
	if errors.Is(err, ErrDisconnected) {
		return nil
	}
	return err
}

// Ping sends a PING and returns the time until its PONG, waiting for a
// connection first if the client is reconnecting. Errors are as for Send.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	cn, err := c.waitConn(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := cn.roundTrip(ctx, nil, protocol.OpPing); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
