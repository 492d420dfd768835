package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// TestSlowConsumer: a client that stops reading while pushes keep coming is closed with
// SlowConsumer once its queue passes MaxOutboundBytes; the pusher never blocks, and a
// reading client on the same server receives every push.
func TestSlowConsumer(t *testing.T) {
	s, mc := startManual(t, func(o *Options) { o.MaxOutboundBytes = 256 << 10 })
	slow := dialRaw(t, s)
	slow.hello("slow", "a", "ios")
	fast := dialRaw(t, s)
	fast.hello("fast", "a", "ios")

	payload := bytes.Repeat([]byte("x"), 16<<10)
	received := make(chan int, 1)
	go func() {
		n := 0
		for {
			f, err := fast.next(10 * time.Second)
			if err != nil {
				break
			}
			if f.Op == protocol.OpPush {
				n++
				if n == 200 {
					break
				}
			}
		}
		received <- n
	}()
	var slowConn *Conn
	waitFor(t, "slow conn", func() bool {
		cs := s.UserConns("slow")
		if len(cs) == 1 {
			slowConn = cs[0]
		}
		return slowConn != nil
	})
	// Up to 64 MB at the slow client: far past what the kernel buffers plus the 256 KiB
	// budget hold. Each push must return promptly.
	for i := 0; i < 4000 && slowConn.closeCode() == 0; i++ {
		start := time.Now()
		if _, err := s.PushUser("slow", payload); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("push %d blocked for %v", i, d)
		}
		if i < 200 {
			if _, err := s.PushUser("fast", payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "slow consumer closed", func() bool {
		return slowConn.closeCode() == protocol.CloseSlowConsumer
	})
	if got := s.metrics.slowConsumers.Get(); got != 1 {
		t.Fatalf("slow consumer counter %d", got)
	}
	if n := <-received; n != 200 {
		t.Fatalf("fast client got %d pushes, want 200", n)
	}
	// Its CLOSE waits behind bytes it does not read; the grace for that passes.
	mc.advance(mc.now.Load() + int64(finalGrace))
	waitFor(t, "backlog released", func() bool { return s.backlogBytes.Load() == 0 })
	// The slow client reads what was delivered, then EOF.
	for {
		if _, err := slow.next(10 * time.Second); err != nil {
			if !errors.Is(err, io.EOF) && !isConnReset(err) {
				t.Fatalf("slow client: %v", err)
			}
			break
		}
	}
}

// TestRooms: SUBSCRIBE joins (OK), PushRoom reaches members with the room as channel and
// honours exclude, UNSUBSCRIBE leaves, closing leaves every room, and the room cap is
// enforced.
func TestRooms(t *testing.T) {
	s := startServer(t, func(o *Options) { o.MaxRoomsPerConn = 2 })
	a := dialRaw(t, s)
	a.hello("ra", "a", "ios")
	b := dialRaw(t, s)
	okB := b.hello("rb", "b", "ios")
	for _, c := range []*rawConn{a, b} {
		c.send(&protocol.Subscribe{Room: "lobby"}, 10, 0)
		if f := c.expect(protocol.OpOK); f.Seq != 10 {
			t.Fatalf("OK seq %d", f.Seq)
		}
	}
	if n := s.RoomSize("lobby"); n != 2 {
		t.Fatalf("room size %d", n)
	}
	n, err := s.PushRoom("lobby", []byte("hello all"), okB.ConnID)
	if err != nil || n != 1 {
		t.Fatalf("PushRoom with exclude = %d, %v; want 1", n, err)
	}
	f := a.expect(protocol.OpPush)
	var p protocol.Push
	if err := p.Decode(f.Body); err != nil || p.Channel != "lobby" || string(p.Payload) != "hello all" {
		t.Fatalf("push %+v %v", p, err)
	}
	// b was excluded: its next frame must be the PONG.
	b.write(protocol.AppendEmpty(nil, protocol.OpPing, 1))
	b.expect(protocol.OpPong)

	// Cap: lobby + one more; the third is refused.
	a.send(&protocol.Subscribe{Room: "r2"}, 11, 0)
	a.expect(protocol.OpOK)
	a.send(&protocol.Subscribe{Room: "r3"}, 12, 0)
	f = a.expect(protocol.OpError)
	var e protocol.Error
	if err := e.Decode(f.Body); err != nil || e.Code != protocol.ErrorTooManyRooms {
		t.Fatalf("ERROR %+v", e)
	}
	a.send(&protocol.Unsubscribe{Room: "lobby"}, 13, 0)
	a.expect(protocol.OpOK)
	if n := s.RoomSize("lobby"); n != 1 {
		t.Fatalf("room size after leave %d", n)
	}
	b.c.Close()
	waitFor(t, "room emptied and deleted", func() bool { return s.RoomSize("lobby") == 0 && s.Stats().Rooms == 1 })
}

// TestBroadcast reaches every authenticated connection but not one mid-handshake.
func TestBroadcast(t *testing.T) {
	s := startServer(t, nil)
	var cs []*rawConn
	for i := 0; i < 5; i++ {
		c := dialRaw(t, s)
		c.hello("b", string(rune('a'+i)), "ios")
		cs = append(cs, c)
	}
	dialRaw(t, s) // connected, never authenticates
	waitFor(t, "6 connections", func() bool { return s.Stats().Connections == 6 })
	n, err := s.Broadcast([]byte("all"))
	if err != nil || n != 5 {
		t.Fatalf("Broadcast = %d, %v; want 5", n, err)
	}
	for _, c := range cs {
		c.expect(protocol.OpPush)
	}
}

// TestDrain: Shutdown sends GOAWAY with a jittered retry-after within DrainSpread to
// every client, finishes as soon as they leave, and refuses readiness meanwhile.
func TestDrain(t *testing.T) {
	s := startServer(t, func(o *Options) { o.DrainSpread = 500 * time.Millisecond })
	var cs []*rawConn
	for i := 0; i < 4; i++ {
		c := dialRaw(t, s)
		c.hello("d", string(rune('a'+i)), "ios")
		cs = append(cs, c)
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctxTimeout(t, 20*time.Second)) }()
	for _, c := range cs {
		f := c.expect(protocol.OpGoAway)
		var g protocol.GoAway
		if err := g.Decode(f.Body); err != nil || g.Code != protocol.CloseGoingAway || g.RetryAfterMs > 500 {
			t.Fatalf("GOAWAY %+v %v", g, err)
		}
		if !s.Stats().Draining {
			t.Fatal("not draining")
		}
		c.c.Close() // the client leaves as told
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Shutdown did not return after all clients left")
	}
}

// TestDrainDeadline: a client that ignores GOAWAY is closed with GoingAway when the
// deadline passes, and Shutdown reports the deadline.
func TestDrainDeadline(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s)
	c.hello("stubborn", "a", "ios")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := s.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	c.expect(protocol.OpGoAway)
	c.expectClosed(protocol.OpClose, protocol.CloseGoingAway)
}

// TestPayloadTooLarge: pushes and replies larger than the announced max frame are
// refused; the client gets ERROR for its request instead of waiting forever.
func TestPayloadTooLarge(t *testing.T) {
	s := startServer(t, func(o *Options) { o.MaxFrame = 1024; o.Handler = hugeReplyHandler{} })
	c := dialRaw(t, s)
	c.hello("big", "a", "ios")
	if _, err := s.PushUser("big", make([]byte, 2000)); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("PushUser: %v", err)
	}
	if n, err := s.PushUser("big", make([]byte, 900)); err != nil || n != 1 {
		t.Fatalf("PushUser within limit: %d, %v", n, err)
	}
	c.expect(protocol.OpPush)
	c.send(&protocol.Send{Route: "r"}, 7, 0)
	if f := c.expect(protocol.OpError); f.Seq != 7 {
		t.Fatalf("ERROR seq %d", f.Seq)
	}
}

// hugeReplyHandler answers every SEND with 2000 bytes.
type hugeReplyHandler struct{ NopHandler }

func (hugeReplyHandler) OnMessage(*Message) ([]byte, error) { return make([]byte, 2000), nil }

// TestServerOutboundBudget: once the bytes queued for all backlogged connections reach
// the server-wide budget, the connection that would pass it is closed as a slow
// consumer, and the budget is released when backlogs go away.
func TestServerOutboundBudget(t *testing.T) {
	s := startServer(t, func(o *Options) { o.MaxOutboundBytes = 8 << 20; o.MaxTotalOutbound = 512 << 10 })
	var rcs []*rawConn
	for i := 0; i < 3; i++ {
		c := dialRaw(t, s)
		c.hello("budget", string(rune('a'+i)), "ios")
		rcs = append(rcs, c)
	}
	waitFor(t, "3 devices", func() bool { return len(s.UserConns("budget")) == 3 })
	payload := bytes.Repeat([]byte("y"), 32<<10)
	// None of the three reads: the kernel buffers fill, then the backlogs grow until the
	// shared 512 KiB budget is spent.
	for i := 0; i < 2000 && s.metrics.slowConsumers.Get() == 0; i++ {
		if _, err := s.PushUser("budget", payload); err != nil {
			t.Fatal(err)
		}
		if got := s.backlogBytes.Load(); got > 512<<10 {
			t.Fatalf("backlog %d bytes exceeds the 512 KiB budget", got)
		}
	}
	if s.metrics.slowConsumers.Get() == 0 {
		t.Fatal("no connection was closed by the server budget")
	}
	for _, c := range rcs {
		c.c.Close()
	}
	waitFor(t, "budget released", func() bool { return s.backlogBytes.Load() == 0 && s.Stats().Connections == 0 })
}

// TestConnGoAway: GOAWAY to one connection carries the retry-after; a client that keeps
// talking instead of leaving is closed with GoingAway after the grace period, and the
// heartbeat does not extend it.
func TestConnGoAway(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s)
	c.hello("mover", "a", "ios")
	sc := s.UserConns("mover")[0]
	if err := sc.GoAway(1500*time.Millisecond, 300*time.Millisecond, "rebalancing"); err != nil {
		t.Fatal(err)
	}
	f := c.expect(protocol.OpGoAway)
	var g protocol.GoAway
	if err := g.Decode(f.Body); err != nil || g.RetryAfterMs != 1500 || g.Reason != "rebalancing" {
		t.Fatalf("GOAWAY %+v %v", g, err)
	}
	c.write(protocol.AppendEmpty(nil, protocol.OpPing, 1)) // still talking: no extension
	c.expectClosed(protocol.OpClose, protocol.CloseGoingAway)
}
