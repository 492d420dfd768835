package server

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/internal/testkit"
)

// expectQoS1 reads the next frame and checks it is a QoS1 PUSH with id and payload.
func (r *rawConn) expectQoS1(id uint64, payload string) {
	r.t.Helper()
	f := r.expect(protocol.OpPush)
	var p protocol.Push
	if err := p.Decode(f.Body); err != nil {
		r.t.Fatal(err)
	}
	if p.MsgID != id || string(p.Payload) != payload || f.Flags&protocol.FlagAckRequested == 0 {
		r.t.Fatalf("PUSH id %d %q flags %v, want QoS1 id %d %q", p.MsgID, p.Payload, f.Flags, id, payload)
	}
}

// helloResume authenticates asking to resume from (epoch, last).
func (r *rawConn) helloResume(token string, epoch, last uint64) protocol.AuthOK {
	r.t.Helper()
	r.send(&protocol.Hello{Token: token, DeviceID: "dev", ResumeEpoch: epoch, ResumeLastID: last}, 1, 0)
	var ok protocol.AuthOK
	if err := ok.Decode(r.expect(protocol.OpAuthOK).Body); err != nil {
		r.t.Fatal(err)
	}
	return ok
}

func pushQ(t *testing.T, s *Server, uid, payload string) PushResult {
	t.Helper()
	res, err := s.PushUsers([]string{uid}, []byte(payload), PushOptions{QoS1: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestQoS1Resume: QoS1 pushes carry increasing ids and ACK_REQUESTED; pushes made while
// the user is away are buffered (and reported offline); a reconnect resuming from its
// last id gets AUTH_OK "recovered" and then exactly the missed messages, in order.
func TestQoS1Resume(t *testing.T) {
	s := startServer(t, nil)
	a := dialRaw(t, s)
	ok := a.helloResume("q1", 0, 0)
	if ok.Epoch == 0 || ok.LastID != 0 || ok.Resume != protocol.ResumeNone {
		t.Fatalf("AUTH_OK %+v", ok)
	}
	for i, p := range []string{"m1", "m2"} {
		res := pushQ(t, s, "q1", p)
		if res.Delivered != 1 || res.Offline != 0 || res.MsgIDs["q1"] != uint64(i+1) {
			t.Fatalf("push %s: %+v", p, res)
		}
		a.expectQoS1(uint64(i+1), p)
	}
	a.send(&protocol.Ack{MsgID: 2}, 0, 0)
	waitFor(t, "ack recorded", func() bool { return s.UserConns("q1")[0].acked.Load() == 2 })
	a.c.Close()
	waitFor(t, "user offline", func() bool { return len(s.UserConns("q1")) == 0 })

	for _, p := range []string{"m3", "m4"} {
		if res := pushQ(t, s, "q1", p); res.Delivered != 0 || res.Offline != 1 {
			t.Fatalf("push while away: %+v", res)
		}
	}
	b := dialRaw(t, s)
	ok2 := b.helloResume("q1", ok.Epoch, 2)
	if ok2.Resume != protocol.ResumeRecovered || ok2.Epoch != ok.Epoch || ok2.LastID != 4 {
		t.Fatalf("resume AUTH_OK %+v", ok2)
	}
	b.expectQoS1(3, "m3")
	b.expectQoS1(4, "m4")
	pushQ(t, s, "q1", "m5")
	b.expectQoS1(5, "m5")
}

// TestQoS1NotRecovered: a wrong epoch, a buffer that no longer reaches back, or a swept
// user stream each answer "not recovered" with the current cursor, and replay nothing.
func TestQoS1NotRecovered(t *testing.T) {
	s := startServer(t, func(o *Options) { o.ResumeBuffer = 2; o.ResumeWindow = time.Minute })
	a := dialRaw(t, s)
	ok := a.helloResume("q2", 0, 0)
	a.c.Close()
	waitFor(t, "user offline", func() bool { return len(s.UserConns("q2")) == 0 })
	for _, p := range []string{"m1", "m2", "m3"} { // 3 messages, buffer of 2: m1 is evicted
		pushQ(t, s, "q2", p)
	}
	check := func(epoch, last uint64, want protocol.ResumeResult) *rawConn {
		t.Helper()
		c := dialRaw(t, s)
		got := c.helloResume("q2", epoch, last)
		if got.Resume != want || got.LastID != 3 {
			t.Fatalf("resume (%d, %d): %+v, want %v with last id 3", epoch, last, got, want)
		}
		return c
	}
	check(ok.Epoch+1, 0, protocol.ResumeNotRecovered).c.Close() // wrong epoch
	check(ok.Epoch, 0, protocol.ResumeNotRecovered).c.Close()   // m1 is gone
	check(ok.Epoch, 9, protocol.ResumeNotRecovered).c.Close()   // ahead of the stream
	c := check(ok.Epoch, 1, protocol.ResumeRecovered)           // m2, m3 still there
	c.expectQoS1(2, "m2")
	c.expectQoS1(3, "m3")
	c.c.Close()
	waitFor(t, "user offline", func() bool { return len(s.UserConns("q2")) == 0 })

	// The sweeper drops the stream a window after the last connection left.
	s.sweep(time.Now().Add(2 * time.Minute).UnixNano())
	d := dialRaw(t, s)
	got := d.helloResume("q2", ok.Epoch, 3)
	if got.Resume != protocol.ResumeNotRecovered || got.Epoch == ok.Epoch || got.LastID != 0 {
		t.Fatalf("after sweep: %+v", got)
	}
}

// TestQoS1ToConnection: a QoS1 push aimed at one connection reaches only it and is not
// replayed to another device of the user.
func TestQoS1ToConnection(t *testing.T) {
	s := startServer(t, nil)
	a := dialRaw(t, s)
	okA := a.hello("q3", "phone", "ios")
	b := dialRaw(t, s)
	okB := b.helloResume("q3#tablet", 0, 0)
	res, err := s.PushConns([]uint64{okA.ConnID, 999999}, []byte("only a"), PushOptions{QoS1: true})
	if err != nil || res.Delivered != 1 || res.Offline != 1 {
		t.Fatalf("PushConns %+v %v", res, err)
	}
	a.expectQoS1(1, "only a")
	b.c.Close()
	waitFor(t, "b gone", func() bool { return len(s.UserConns("q3")) == 1 })
	c := dialRaw(t, s)
	got := c.helloResume("q3#tablet", okB.Epoch, 0)
	if got.Resume != protocol.ResumeRecovered {
		t.Fatalf("resume %+v", got)
	}
	c.write(protocol.AppendEmpty(nil, protocol.OpPing, 8))
	if f := c.expect(protocol.OpPong); f.Seq != 8 { // no PUSH replayed before the PONG
		t.Fatalf("PONG seq %d", f.Seq)
	}
}

// TestQoS1NoLossUnderCuts is the hard way: a backend pushes a numbered QoS1 stream to
// several users while their connections are cut at random moments, from the server side
// (kick with a reconnect code), the client side (socket closed under the SDK) and by
// GOAWAY-like drains of single connections. Every client must end with every number
// exactly once and in order.
func TestQoS1NoLossUnderCuts(t *testing.T) {
	const users, msgs = 4, 2000
	// The resume buffer holds the whole stream: this test is about losing nothing
	// within the resume window, and on a loaded machine a client may stall for longer
	// than the default 256 messages take to push (then "not recovered" is correct).
	s := startServer(t, func(o *Options) { o.Heartbeat = time.Second; o.ResumeBuffer = msgs })
	type sink struct {
		mu  sync.Mutex
		got []uint32
	}
	sinks := make([]*sink, users)
	conns := make([]*client.Client, users)
	var dialers [users]*testkit.CutDialer
	for i := range users {
		sk := &sink{}
		sinks[i] = sk
		dialers[i] = &testkit.CutDialer{}
		c, err := client.Dial(context.Background(), s.Addr().String(), client.Options{
			Token:      userName(i),
			DeviceID:   "dev",
			BackoffMin: time.Millisecond,
			BackoffMax: 20 * time.Millisecond,
			Dialer:     dialers[i].Dial,
			OnPush: func(p client.Push) {
				sk.mu.Lock()
				sk.got = append(sk.got, binary.BigEndian.Uint32(p.Payload))
				sk.mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := uint32(0); n < msgs; n++ {
		for i := range users {
			if _, err := s.PushUsers([]string{userName(i)}, binary.BigEndian.AppendUint32(nil, n), PushOptions{QoS1: true}); err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(10) == 0 { // about 50 cuts per user over the run
			i := rng.IntN(users)
			switch rng.IntN(3) {
			case 0:
				s.KickUser(userName(i), protocol.CodeServerBusy, "cut")
			case 1:
				dialers[i].Cut()
			case 2:
				for _, c := range s.UserConns(userName(i)) {
					c.Close(protocol.CodeGoingAway, "moving")
				}
			}
		}
		if n%20 == 0 {
			time.Sleep(time.Millisecond) // let reconnects interleave with the stream
		}
	}
	for i, sk := range sinks {
		deadline := time.Now().Add(20 * time.Second)
		for {
			sk.mu.Lock()
			n := len(sk.got)
			sk.mu.Unlock()
			if n >= msgs {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d messages; resumes recovered %d, not recovered %d",
					userName(i), n, msgs, s.metrics.resumeRecovered.Get(), s.metrics.resumeFailed.Get())
			}
			time.Sleep(5 * time.Millisecond)
		}
		sk.mu.Lock()
		for n, v := range sk.got {
			if v != uint32(n) {
				sk.mu.Unlock()
				t.Fatalf("%s: message %d is %d (got %d messages)", userName(i), n, v, len(sk.got))
			}
		}
		if len(sk.got) != msgs {
			t.Fatalf("%s: %d messages, want %d", userName(i), len(sk.got), msgs)
		}
		sk.mu.Unlock()
	}
	if r := s.metrics.resumeRecovered.Get(); r < 50 {
		t.Fatalf("only %d resumes: the cuts did not bite", r)
	}
	t.Logf("%d resumes, %d messages replayed", s.metrics.resumeRecovered.Get(), s.metrics.resumeReplayed.Get())
	if f := s.metrics.resumeFailed.Get(); f != 0 {
		t.Fatalf("%d resumes failed", f)
	}
}

func userName(i int) string { return "stream-" + string(rune('a'+i)) }
