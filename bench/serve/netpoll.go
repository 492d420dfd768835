package serve

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/netpoll"

	"github.com/tether-gw/tether/bench/msg"
	"github.com/tether-gw/tether/protocol"
)

// The netpoll target is the floor under tether: the same event loop with the same
// buffer settings, answering HELLO, PING, SEND and SUBSCRIBE straight from the read
// callback, with no hub, timers, worker pool or metrics. tether's cost per connection
// minus this one is what tether's own bookkeeping adds.

// netpollBufferSize matches server.Options.ReadBufferSize's default, so the floor is
// measured with the buffer size tether runs with.
const netpollBufferSize = 256

var netpollOnce sync.Once

type netpollTarget struct {
	local
	ln     netpoll.Listener
	el     netpoll.EventLoop
	hb     time.Duration
	nextID atomic.Uint64
	conns  atomic.Int64
	authed atomic.Int64
}

// npConn is a bare netpoll connection's state, carried in its context.
type npConn struct {
	context.Context
	id     uint64
	authed atomic.Bool
}

func startNetpoll(cfg Config) (target, error) {
	netpollOnce.Do(func() {
		netpoll.LinkBufferCap = netpollBufferSize
		_ = netpoll.Configure(netpoll.Config{BufferSize: netpollBufferSize})
	})
	ln, err := netpoll.CreateListener("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", cfg.Addr, err)
	}
	t := &netpollTarget{ln: ln, hb: cfg.Heartbeat}
	t.local.counts = func() (int64, int64) { return t.conns.Load(), t.authed.Load() }
	t.el, err = netpoll.NewEventLoop(t.onRequest, netpoll.WithOnConnect(t.onConnect))
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot create event loop: %w", err)
	}
	go func() { _ = t.el.Serve(ln) }()
	return t, nil
}

func (t *netpollTarget) listening() msg.Event { return msg.Event{Addr: t.ln.Addr().String()} }
func (t *netpollTarget) close()               { shutdown(t.el) }

// shutdown stops an event loop, giving its connections 5s to close.
func shutdown(el netpoll.EventLoop) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = el.Shutdown(ctx)
}

func (t *netpollTarget) onConnect(ctx context.Context, nc netpoll.Connection) context.Context {
	c := &npConn{Context: ctx, id: t.nextID.Add(1)}
	t.conns.Add(1)
	_ = nc.AddCloseCallback(func(netpoll.Connection) error {
		t.conns.Add(-1)
		if c.authed.Load() {
			t.authed.Add(-1)
		}
		return nil
	})
	return c
}

// onRequest answers every complete frame buffered; netpoll calls it again when more
// bytes arrive.
func (t *netpollTarget) onRequest(ctx context.Context, nc netpoll.Connection) error {
	c := ctx.(*npConn)
	r, w := nc.Reader(), nc.Writer()
	var out []byte
	for {
		limit := protocol.DefaultMaxFrame
		if !c.authed.Load() {
			limit = protocol.PreAuthMaxFrame
		}
		f, ok, err := nextFrame(r, limit)
		if err != nil {
			return nc.Close()
		}
		if !ok {
			break
		}
		out = t.answer(c, f, out)
	}
	if err := r.Release(); err != nil {
		return err
	}
	if len(out) == 0 {
		return nil
	}
	if _, err := w.WriteBinary(out); err != nil {
		return err
	}
	return w.Flush()
}

// answer appends the reply to f, if any, to out.
func (t *netpollTarget) answer(c *npConn, f protocol.Frame, out []byte) []byte {
	switch f.Op {
	case protocol.OpPing:
		return protocol.AppendEmpty(out, protocol.OpPong, f.Seq)
	case protocol.OpHello:
		var h protocol.Hello
		if c.authed.Load() || h.Decode(f.Body) != nil {
			return out
		}
		c.authed.Store(true)
		t.authed.Add(1)
		b, _ := (&protocol.AuthOK{
			ConnID:       c.id,
			HeartbeatMs:  uint32(t.hb / time.Millisecond),
			MaxFrame:     protocol.DefaultMaxFrame,
			ServerTimeMs: time.Now().UnixMilli(),
			UserID:       h.Token,
		}).AppendFrame(out, f.Seq, 0)
		return b
	case protocol.OpSend:
		var m protocol.Send
		if m.Decode(f.Body) != nil || f.Flags.Has(protocol.FlagNoReply) {
			return out
		}
		b, _ := (&protocol.SendReply{Payload: m.Payload}).AppendFrame(out, f.Seq, 0)
		return b
	case protocol.OpSubscribe, protocol.OpUnsubscribe:
		return protocol.AppendEmpty(out, protocol.OpOK, f.Seq)
	}
	return out
}

// bareTarget is the bare netpoll echo server: whatever arrives is written back from
// the read callback. netpoll's defaults are kept (8 KiB link buffers): it is the
// throughput ceiling, not a memory figure, and it counts no connections.
type bareTarget struct {
	local
	ln net.Listener
	el netpoll.EventLoop
}

func startBare(cfg Config) (target, error) {
	ln, err := netpoll.CreateListener("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", cfg.Addr, err)
	}
	el, err := netpoll.NewEventLoop(func(_ context.Context, c netpoll.Connection) error {
		r, w := c.Reader(), c.Writer()
		n := r.Len()
		b, err := r.Next(n)
		if err != nil {
			return err
		}
		// One copy into the writer: netpoll's zero-copy WriteBinary would keep
		// pointing into the read buffer after Release if the socket were full.
		p, err := w.Malloc(n)
		if err != nil {
			return err
		}
		copy(p, b)
		_ = r.Release()
		return w.Flush()
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot create event loop: %w", err)
	}
	go func() { _ = el.Serve(ln) }()
	return &bareTarget{local: local{counts: func() (int64, int64) { return 0, 0 }}, ln: ln, el: el}, nil
}

func (t *bareTarget) listening() msg.Event { return msg.Event{Addr: t.ln.Addr().String()} }
func (t *bareTarget) close()               { shutdown(t.el) }

// nextFrame reads one frame from a netpoll Reader without copying, or reports false
// when the Reader does not hold a whole frame yet (nothing is consumed then). A
// length or header error is reported as soon as the bytes for it are buffered. The
// Body aliases the Reader's buffer and is valid until r.Release. It is what the
// server's reader does, minus its resumable decoder: the floor needs nothing more.
func nextFrame(r netpoll.Reader, maxFrame int) (protocol.Frame, bool, error) {
	buffered := r.Len()
	if buffered < protocol.LengthSize {
		return protocol.Frame{}, false, nil
	}
	head, err := r.Peek(min(buffered, protocol.Overhead))
	if err != nil {
		return protocol.Frame{}, false, fmt.Errorf("cannot peek frame header: %w", err)
	}
	if _, _, err := protocol.Parse(head, maxFrame); err != nil {
		return protocol.Frame{}, false, err
	}
	n := protocol.LengthSize + int(binary.BigEndian.Uint32(head))
	if buffered < n {
		return protocol.Frame{}, false, nil
	}
	b, err := r.Next(n)
	if err != nil {
		return protocol.Frame{}, false, fmt.Errorf("cannot read %d-byte frame: %w", n, err)
	}
	f, m, err := protocol.Parse(b, maxFrame)
	if err != nil || m != n {
		panic(fmt.Sprintf("BUG: serve: reparse of %d validated bytes gave n=%d err=%v", n, m, err))
	}
	return f, true, nil
}
