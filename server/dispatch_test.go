package server

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// orderHandler records, per connection, the sequence numbers in payload order of
// arrival at the handler.
type orderHandler struct {
	NopHandler
	mu   sync.Mutex
	seen map[uint64][]uint32
}

func (h *orderHandler) OnMessage(m *Message) ([]byte, error) {
	n := binary.BigEndian.Uint32(m.Payload)
	h.mu.Lock()
	h.seen[m.Conn.ID()] = append(h.seen[m.Conn.ID()], n)
	h.mu.Unlock()
	return m.Payload, nil
}

// TestPerConnectionOrder: 3 connections each pipeline 300 SENDs; the handler sees each
// connection's messages in order, and replies come back in order, while connections
// run concurrently on a multi-worker pool.
func TestPerConnectionOrder(t *testing.T) {
	h := &orderHandler{seen: map[uint64][]uint32{}}
	s := startServer(t, func(o *Options) {
		o.Handler = h
		o.Workers = 8
		o.MaxInflight = 1000
	})
	const conns, msgs = 3, 300
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		c := dialRaw(t, s)
		c.hello("order", string(rune('a'+i)), "ios")
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch []byte
			for n := uint32(0); n < msgs; n++ {
				batch, _ = (&protocol.Send{Route: "r", Payload: binary.BigEndian.AppendUint32(nil, n)}).AppendFrame(batch, n+1, 0)
			}
			c.write(batch)
			for n := uint32(0); n < msgs; n++ {
				f, err := c.next(10e9)
				if err != nil || f.Op != protocol.OpSendReply || f.Seq != n+1 {
					t.Errorf("reply %d: %v %v seq %d", n, err, f.Op, f.Seq)
					return
				}
			}
		}()
	}
	wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) != conns {
		t.Fatalf("handler saw %d connections, want %d", len(h.seen), conns)
	}
	for id, seq := range h.seen {
		for i, n := range seq {
			if n != uint32(i) {
				t.Fatalf("conn %d: message %d arrived as %d-th", id, n, i)
			}
		}
	}
}

// blockingHandler holds every SEND until released.
type blockingHandler struct {
	NopHandler
	entered chan struct{}
	release chan struct{}
}

func (h *blockingHandler) OnMessage(m *Message) ([]byte, error) {
	h.entered <- struct{}{}
	<-h.release
	return []byte("done"), nil
}

// TestPoolSaturation: with one worker busy, another connection's SEND is answered
// ERROR Busy at once instead of queueing without bound; once released, the first
// SEND completes.
func TestPoolSaturation(t *testing.T) {
	h := &blockingHandler{entered: make(chan struct{}, 10), release: make(chan struct{})}
	s := startServer(t, func(o *Options) { o.Handler = h; o.Workers = 1 })
	a := dialRaw(t, s)
	a.hello("p1", "a", "ios")
	// The single worker may still run a's OnConnect, and then b's login is refused with
	// SERVER_BUSY, a reconnect code: b reconnects, as a client would.
	var b *rawConn
	waitFor(t, "b logged in", func() bool {
		b = dialRaw(t, s)
		b.send(&protocol.Hello{Token: "p2#b", DeviceID: "b"}, 1, 0)
		f, err := b.next(5 * time.Second)
		return err == nil && f.Op == protocol.OpAuthOK
	})
	// b's OnConnect may hold the worker too: then a's SEND is answered BUSY, and a sends
	// it again until the handler holds the worker.
	for seq := uint32(1); ; seq++ {
		a.send(&protocol.Send{Route: "slow"}, seq, 0)
		select {
		case <-h.entered:
		case <-time.After(2 * time.Second):
			if f := a.expect(protocol.OpError); f.Seq != seq {
				t.Fatalf("ERROR seq %d, want %d", f.Seq, seq)
			}
			continue
		}
		break
	}
	b.send(&protocol.Send{Route: "slow"}, 2, 0)
	f := b.expect(protocol.OpError)
	var e protocol.Error
	if err := e.Decode(f.Body); err != nil || e.Code != protocol.ErrorBusy || f.Seq != 2 {
		t.Fatalf("got ERROR %+v seq %d (%v), want Busy seq 2", e, f.Seq, err)
	}
	close(h.release)
	if f := a.expect(protocol.OpSendReply); string(f.Body) != "done" {
		t.Fatalf("reply %q", f.Body)
	}
}

// TestInflightLimit: a connection with MaxInflight requests outstanding gets Busy for
// the next ones; the admitted ones complete in order.
func TestInflightLimit(t *testing.T) {
	h := &blockingHandler{entered: make(chan struct{}, 10), release: make(chan struct{})}
	s := startServer(t, func(o *Options) { o.Handler = h; o.MaxInflight = 2 })
	c := dialRaw(t, s)
	c.hello("q", "a", "ios")
	var batch []byte
	for seq := uint32(1); seq <= 5; seq++ {
		batch, _ = (&protocol.Send{Route: "r"}).AppendFrame(batch, seq, 0)
	}
	c.write(batch)
	for seq := uint32(3); seq <= 5; seq++ {
		f := c.expect(protocol.OpError)
		if f.Seq != seq {
			t.Fatalf("Busy for seq %d, want %d", f.Seq, seq)
		}
	}
	close(h.release)
	for seq := uint32(1); seq <= 2; seq++ {
		if f := c.expect(protocol.OpSendReply); f.Seq != seq {
			t.Fatalf("reply seq %d, want %d", f.Seq, seq)
		}
	}
}

// panicHandler panics on route "boom" and defers the reply on route "later".
type panicHandler struct {
	NopHandler
	deferred chan *Message
}

func (h *panicHandler) OnMessage(m *Message) ([]byte, error) {
	switch m.Route {
	case "boom":
		panic("handler bug")
	case "later":
		h.deferred <- m
		return nil, ErrDeferReply
	case "refuse":
		return nil, &ReplyError{Code: protocol.ErrorNotFound, Message: "no such thing"}
	}
	return []byte("ok"), nil
}

// TestHandlerPanicAndReplies: a panicking handler yields ERROR Internal and the
// connection survives; a ReplyError picks the code; a deferred reply arrives later with
// the right seq; replying twice is refused.
func TestHandlerPanicAndReplies(t *testing.T) {
	h := &panicHandler{deferred: make(chan *Message, 1)}
	s := startServer(t, func(o *Options) { o.Handler = h })
	c := dialRaw(t, s)
	c.hello("r", "a", "ios")
	expectErr := func(seq uint32, code protocol.ErrorCode) {
		t.Helper()
		f := c.expect(protocol.OpError)
		var e protocol.Error
		if err := e.Decode(f.Body); err != nil || e.Code != code || f.Seq != seq {
			t.Fatalf("ERROR %+v seq %d (%v), want %v seq %d", e, f.Seq, err, code, seq)
		}
	}
	c.send(&protocol.Send{Route: "boom"}, 1, 0)
	expectErr(1, protocol.ErrorInternal)
	c.send(&protocol.Send{Route: "refuse"}, 2, 0)
	expectErr(2, protocol.ErrorNotFound)
	c.send(&protocol.Send{Route: "later"}, 3, 0)
	m := <-h.deferred
	if err := m.Reply([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := m.Reply([]byte("again")); err != ErrAlreadyReplied {
		t.Fatalf("second reply: %v", err)
	}
	if f := c.expect(protocol.OpSendReply); f.Seq != 3 || string(f.Body) != "late" {
		t.Fatalf("deferred reply seq %d %q", f.Seq, f.Body)
	}
	c.send(&protocol.Send{Route: "x"}, 4, protocol.FlagNoReply)
	c.send(&protocol.Send{Route: "x"}, 5, 0)
	if f := c.expect(protocol.OpSendReply); f.Seq != 5 {
		t.Fatalf("got reply for seq %d, want 5 (4 asked for no reply)", f.Seq)
	}
	if got := s.metrics.handlerPanics.Get(); got != 1 {
		t.Fatalf("panics counted %d", got)
	}
}

// gateHandler holds the first SEND until released, then echoes.
type gateHandler struct {
	NopHandler
	once    sync.Once
	release chan struct{}
}

func (h *gateHandler) OnMessage(m *Message) ([]byte, error) {
	h.once.Do(func() { <-h.release })
	return m.Payload, nil
}

// TestRepliesBatched: the answers to a burst of pipelined SENDs go out in a few writev
// calls, not one write per reply, and still in order; a client keeping exactly
// MaxInflight requests outstanding is never refused, because a slot is freed when its
// answer is built.
func TestRepliesBatched(t *testing.T) {
	h := &gateHandler{release: make(chan struct{})}
	const n = 64
	s := startServer(t, func(o *Options) { o.Handler = h; o.MaxInflight = n })
	c := dialRaw(t, s)
	c.hello("batch", "a", "ios")
	sc := s.UserConns("batch")[0]
	var burst []byte
	for seq := uint32(1); seq <= n; seq++ {
		burst, _ = (&protocol.Send{Route: "r", Payload: []byte{byte(seq)}}).AppendFrame(burst, seq, 0)
	}
	c.write(burst)
	waitFor(t, "all queued", func() bool { return sc.inflight.Load() == n })
	before := s.metrics.writeCalls.Get()
	close(h.release)
	for seq := uint32(1); seq <= n; seq++ {
		if f := c.expect(protocol.OpSendReply); f.Seq != seq {
			t.Fatalf("reply seq %d, want %d", f.Seq, seq)
		}
	}
	if w := s.metrics.writeCalls.Get() - before; w > n/4 {
		t.Fatalf("%d write calls for %d replies: not batched", w, n)
	}
	// Exactly MaxInflight outstanding, answered one by one, never draws BUSY.
	for round := 0; round < 200; round++ {
		seq := uint32(1000 + round)
		c.send(&protocol.Send{Route: "r"}, seq, 0)
		if f := c.expect(protocol.OpSendReply); f.Seq != seq {
			t.Fatalf("round %d: got %v seq %d", round, f.Op, f.Seq)
		}
	}
}
