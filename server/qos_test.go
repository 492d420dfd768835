package server

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/protocol"
)

// expectQoS1 reads the next frame and checks it is a QoS1 PUSH with id and payload,
// without FlagDup.
func (r *rawConn) expectQoS1(id uint64, payload string) {
	r.t.Helper()
	r.expectPush(id, payload, false)
}

// expectPush reads the next frame and checks it is a QoS1 PUSH with id and payload,
// with FlagDup set exactly when dup is.
func (r *rawConn) expectPush(id uint64, payload string, dup bool) {
	r.t.Helper()
	f := r.expect(protocol.OpPush)
	var p protocol.Push
	if err := p.Decode(f.Body); err != nil {
		r.t.Fatal(err)
	}
	if p.MsgID != id || string(p.Payload) != payload || !f.Flags.Has(protocol.FlagAckRequested) || f.Flags.Has(protocol.FlagDup) != dup {
		r.t.Fatalf("PUSH id %d %q flags %v, want QoS1 id %d %q dup %v", p.MsgID, p.Payload, f.Flags, id, payload, dup)
	}
}

// expectPushes reads QoS1 pushes with ids from..to, payloads "m<id>", FlagDup on those
// up to dupTo.
func (r *rawConn) expectPushes(from, to, dupTo uint64) {
	r.t.Helper()
	for id := from; id <= to; id++ {
		r.expectPush(id, fmt.Sprintf("m%d", id), id <= dupTo)
	}
}

// quiet checks that no PUSH is pending: a PING's PONG comes first.
func (r *rawConn) quiet(seq uint32) {
	r.t.Helper()
	r.write(protocol.AppendEmpty(nil, protocol.OpPing, seq))
	if f := r.expect(protocol.OpPong); f.Seq != seq {
		r.t.Fatalf("PONG seq %d, want %d", f.Seq, seq)
	}
}

// ack sends a cumulative ACK.
func (r *rawConn) ack(id uint64) {
	r.t.Helper()
	r.send(&protocol.Ack{MsgID: id}, 0, 0)
}

// helloResume authenticates as device "dev" asking to resume from (epoch, last).
func (r *rawConn) helloResume(token string, epoch, last uint64) protocol.AuthOK {
	r.t.Helper()
	return r.helloDevice(token, "dev", epoch, last)
}

// helloDevice authenticates as device (none when "") asking to resume from (epoch, last).
func (r *rawConn) helloDevice(token, device string, epoch, last uint64) protocol.AuthOK {
	r.t.Helper()
	r.send(&protocol.Hello{Token: token + "#" + device, DeviceID: device, ResumeEpoch: epoch, ResumeLastID: last}, 1, 0)
	var ok protocol.AuthOK
	if err := ok.Decode(r.expect(protocol.OpAuthOK).Body); err != nil {
		r.t.Fatal(err)
	}
	return ok
}

// closeRaw closes r and waits until the server has dropped the connection.
func closeRaw(t *testing.T, s *Server, r *rawConn, id uint64) {
	t.Helper()
	r.c.Close()
	waitFor(t, "connection gone", func() bool { return s.Conn(id) == nil })
}

func pushQ(t *testing.T, s *Server, uid, payload string) PushResult {
	t.Helper()
	res, err := s.PushUsers([]string{uid}, []byte(payload), PushOptions{QoS1: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// pushN pushes "m<id>" QoS1 messages until the user's stream reaches id to.
func pushN(t *testing.T, s *Server, uid string, to uint64) {
	t.Helper()
	for {
		u := s.lockUser(uid, false)
		last := u.lastID
		u.mu.Unlock()
		if last >= to {
			return
		}
		if res := pushQ(t, s, uid, fmt.Sprintf("m%d", last+1)); res.MsgIDs[uid] != last+1 {
			t.Fatalf("push %d got id %d", last+1, res.MsgIDs[uid])
		}
	}
}

// streamState returns the user's buffered ids and whether connection id holds a window.
func streamState(s *Server, uid string, id uint64) (buffered []uint64, window bool) {
	u := s.lockUser(uid, false)
	defer u.mu.Unlock()
	for _, q := range u.buf {
		buffered = append(buffered, q.id)
	}
	if c := s.Conn(id); c != nil {
		window = c.qos != nil
	}
	return buffered, window
}

// TestQoS1Resume: QoS1 pushes carry increasing ids and ACK_REQUESTED; pushes made while
// the user is away are buffered (and reported offline); a reconnect resuming from its
// last id gets AUTH_OK "recovered" positioned at that id and then exactly the missed
// messages, in order, without FlagDup (they were never sent to the device).
func TestQoS1Resume(t *testing.T) {
	s := startServer(t, nil)
	a := dialRaw(t, s)
	ok := a.helloResume("q1", 0, 0)
	if ok.Epoch == 0 || ok.Epoch >= 1<<53 || ok.LastID != 0 || ok.Resume != protocol.ResumeNone {
		t.Fatalf("AUTH_OK %+v", ok)
	}
	for i, p := range []string{"m1", "m2"} {
		res := pushQ(t, s, "q1", p)
		if res.Delivered != 1 || res.Offline != 0 || res.MsgIDs["q1"] != uint64(i+1) {
			t.Fatalf("push %s: %+v", p, res)
		}
		a.expectQoS1(uint64(i+1), p)
	}
	a.ack(2)
	waitFor(t, "ack frees the window", func() bool { _, w := streamState(s, "q1", ok.ConnID); return !w })
	closeRaw(t, s, a, ok.ConnID)

	for _, p := range []string{"m3", "m4"} {
		if res := pushQ(t, s, "q1", p); res.Delivered != 0 || res.Offline != 1 {
			t.Fatalf("push while away: %+v", res)
		}
	}
	b := dialRaw(t, s)
	ok2 := b.helloResume("q1", ok.Epoch, 2)
	if ok2.Resume != protocol.ResumeRecovered || ok2.Epoch != ok.Epoch || ok2.LastID != 2 {
		t.Fatalf("resume AUTH_OK %+v", ok2)
	}
	b.expectQoS1(3, "m3")
	b.expectQoS1(4, "m4")
	pushQ(t, s, "q1", "m5")
	b.expectQoS1(5, "m5")
}

// TestQoS1NotRecovered: a wrong epoch, a buffer that no longer reaches back, a cursor
// ahead of the stream, a known device whose unacknowledged messages were evicted, or a
// swept user stream each answer "not recovered" positioned at the latest id, and replay
// nothing.
func TestQoS1NotRecovered(t *testing.T) {
	s := startServer(t, func(o *Options) { o.ResumeBuffer = 2; o.ResumeWindow = time.Minute })
	a := dialRaw(t, s)
	ok := a.helloResume("q2", 0, 0)
	closeRaw(t, s, a, ok.ConnID)
	for _, p := range []string{"m1", "m2", "m3"} { // 3 messages, buffer of 2: m1 is evicted
		pushQ(t, s, "q2", p)
	}
	check := func(device string, epoch, last uint64, want protocol.ResumeResult, wantLast uint64) *rawConn {
		t.Helper()
		c := dialRaw(t, s)
		got := c.helloDevice("q2", device, epoch, last)
		if got.Resume != want || got.LastID != wantLast {
			t.Fatalf("%s resume (%d, %d): %+v, want %v at %d", device, epoch, last, got, want, wantLast)
		}
		return c
	}
	check("d1", ok.Epoch+1, 0, protocol.ResumeNotRecovered, 3).c.Close() // wrong epoch
	check("d2", ok.Epoch, 0, protocol.ResumeNotRecovered, 3).c.Close()   // m1 is gone
	check("d3", ok.Epoch, 9, protocol.ResumeNotRecovered, 3).c.Close()   // ahead of the stream
	check("", ok.Epoch, 0, protocol.ResumeNotRecovered, 3).c.Close()     // no device id: the cursor decides
	// "dev" connected at 0 and never acknowledged m1, which was evicted: without a
	// cursor it is told "not recovered" all the same.
	check("dev", 0, 0, protocol.ResumeNotRecovered, 3).c.Close()
	c := check("d4", ok.Epoch, 1, protocol.ResumeRecovered, 1) // m2, m3 still there
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

// TestQoS1NeverAcking: a client that never acknowledges gets QoS1Window messages and no
// more; the rest wait (counted delivered: queued), nothing is lost, and its next
// connection gets them all, FlagDup on those sent before: without a cursor from the
// device's last ACK, with one from the cursor. ACKs open the window.
func TestQoS1NeverAcking(t *testing.T) {
	s := startServer(t, func(o *Options) { o.QoS1Window = 4; o.AckTimeout = -1 })
	a := dialRaw(t, s)
	ok := a.helloResume("na", 0, 0)
	for i := 1; i <= 10; i++ {
		if res := pushQ(t, s, "na", fmt.Sprintf("m%d", i)); res.Delivered != 1 || res.Offline != 0 {
			t.Fatalf("push %d: %+v", i, res)
		}
	}
	a.expectPushes(1, 4, 0)
	a.quiet(2) // the window is full: 5..10 wait
	closeRaw(t, s, a, ok.ConnID)

	// Reconnect without a cursor: the device acknowledged nothing.
	b := dialRaw(t, s)
	okB := b.helloResume("na", 0, 0)
	if okB.Resume != protocol.ResumeNone || okB.LastID != 0 || okB.Epoch != ok.Epoch {
		t.Fatalf("AUTH_OK without cursor %+v", okB)
	}
	b.expectPushes(1, 4, 4)
	b.quiet(2)
	b.ack(2) // opens two places
	b.expectPushes(5, 6, 0)
	b.quiet(3)
	closeRaw(t, s, b, okB.ConnID)

	// Reconnect mid-window with a cursor past the device's ACK: the cursor wins.
	c := dialRaw(t, s)
	okC := c.helloResume("na", ok.Epoch, 5)
	if okC.Resume != protocol.ResumeRecovered || okC.LastID != 5 {
		t.Fatalf("AUTH_OK with cursor %+v", okC)
	}
	c.expectPush(6, "m6", true)
	c.expectPushes(7, 9, 0)
	c.quiet(2)
	c.ack(100) // beyond what was sent: acknowledges 9
	c.expectPushes(10, 10, 0)
	c.ack(10)
	waitFor(t, "window freed and buffer trimmed", func() bool {
		buf, w := streamState(s, "na", okC.ConnID)
		return !w && len(buf) == 0
	})
}

// TestQoS1EvictedBeforeSent: when the resume buffer's bound evicts a message a live
// connection still needs, the connection is closed with SLOW_CONSUMER (a reconnect code)
// and its resume says "not recovered": nothing is lost silently.
func TestQoS1EvictedBeforeSent(t *testing.T) {
	s := startServer(t, func(o *Options) { o.QoS1Window = 2; o.ResumeBuffer = 4; o.AckTimeout = -1 })
	a := dialRaw(t, s)
	ok := a.helloResume("ev", 0, 0)
	pushN(t, s, "ev", 5) // m1 leaves the buffer unacknowledged: the connection is closed
	a.expectPushes(1, 2, 0)
	a.expectClosed(protocol.OpClose, protocol.CloseSlowConsumer)
	waitFor(t, "connection gone", func() bool { return s.Conn(ok.ConnID) == nil })
	pushN(t, s, "ev", 7) // m3, never sent, leaves too
	b := dialRaw(t, s)
	if got := b.helloResume("ev", ok.Epoch, 2); got.Resume != protocol.ResumeNotRecovered || got.LastID != 7 {
		t.Fatalf("resume after eviction %+v", got)
	}
	b.quiet(2)
}

// TestQoS1AckTimeout: on a live connection, messages left unacknowledged for AckTimeout
// are sent again with FlagDup, in order, and again after each further timeout; an ACK
// restarts the count and stops the redelivery of what it acknowledges. Rounds may pile
// up on a loaded machine, so the reads accept any number of earlier rounds.
func TestQoS1AckTimeout(t *testing.T) {
	s := startServer(t, func(o *Options) { o.AckTimeout = 50 * time.Millisecond })
	a := dialRaw(t, s)
	ok := a.helloResume("to", 0, 0)
	pushN(t, s, "to", 2)
	a.expectPushes(1, 2, 0)
	a.expectPushes(1, 2, 2) // redelivered after the timeout
	a.ack(1)
	// Rounds sent before the ACK are 1, 2; after it only 2 is redelivered.
	for prev := uint64(0); ; {
		id, dup := a.nextPush()
		if !dup {
			t.Fatalf("push %d without DUP", id)
		}
		if id == 2 && prev != 1 {
			break
		}
		prev = id
	}
	a.ack(2)
	waitFor(t, "window freed", func() bool { _, w := streamState(s, "to", ok.ConnID); return !w })
	pushN(t, s, "to", 3)
	for {
		id, dup := a.nextPush()
		if dup && id <= 2 {
			continue // a round sent before the last ACK
		}
		if id != 3 || dup {
			t.Fatalf("push %d dup %v, want 3 first sent", id, dup)
		}
		break
	}
}

// nextPush reads the next frame, a QoS1 PUSH, and returns its id and FlagDup.
func (r *rawConn) nextPush() (uint64, bool) {
	r.t.Helper()
	f := r.expect(protocol.OpPush)
	var p protocol.Push
	if err := p.Decode(f.Body); err != nil || !f.Flags.Has(protocol.FlagAckRequested) {
		r.t.Fatalf("PUSH %+v flags %v: %v", p, f.Flags, err)
	}
	return p.MsgID, f.Flags.Has(protocol.FlagDup)
}

// TestQoS1AckLost: a client SDK whose ACKs are lost gets the messages again after the
// ack timeout, drops the copies as duplicates (acknowledging them), and the application
// sees each message once; the device's window then empties, which only the ACKs of the
// redelivered copies can have done.
func TestQoS1AckLost(t *testing.T) {
	s := startServer(t, func(o *Options) { o.AckTimeout = 100 * time.Millisecond })
	var drop atomic.Bool
	drop.Store(true)
	var mu sync.Mutex
	var got []string
	c, err := client.Dial(context.Background(), s.Addr().String(), client.Options{
		Token:    "al#dev",
		DeviceID: "dev",
		Dialer: func(ctx context.Context, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			return &ackDropper{Conn: nc, drop: &drop}, err
		},
		OnPush: func(p client.Push) {
			mu.Lock()
			got = append(got, string(p.Payload))
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := c.LastAuth().ConnID
	pushN(t, s, "al", 3)
	waitFor(t, "3 pushes delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	if _, w := streamState(s, "al", conn); !w {
		t.Fatal("no window: the ACKs were not dropped")
	}
	drop.Store(false)
	waitFor(t, "redelivered copies acknowledged", func() bool { _, w := streamState(s, "al", conn); return !w })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"m1", "m2", "m3"}) {
		t.Fatalf("application saw %q", got)
	}
}

// ackDropper swallows the client's ACK frames while drop is set (the client writes
// one frame per Write).
type ackDropper struct {
	net.Conn
	drop *atomic.Bool
}

func (d *ackDropper) Write(b []byte) (int, error) {
	if d.drop.Load() && len(b) > 5 && protocol.Opcode(b[5]) == protocol.OpAck {
		return len(b), nil
	}
	return d.Conn.Write(b)
}

// TestQoS1TwoDevices: each device's ACKs are its own. The phone acknowledging does not
// stop the tablet's redelivery, and the buffer keeps a message until both devices
// acknowledged it.
func TestQoS1TwoDevices(t *testing.T) {
	s := startServer(t, func(o *Options) { o.AckTimeout = -1 })
	phone, tablet := dialRaw(t, s), dialRaw(t, s)
	okP := phone.helloDevice("two", "phone", 0, 0)
	okT := tablet.helloDevice("two", "tablet", 0, 0)
	pushN(t, s, "two", 3)
	phone.expectPushes(1, 3, 0)
	tablet.expectPushes(1, 3, 0)
	phone.ack(3)
	waitFor(t, "phone's window freed", func() bool { _, w := streamState(s, "two", okP.ConnID); return !w })
	if buf, _ := streamState(s, "two", 0); len(buf) != 3 {
		t.Fatalf("buffered %v after the phone's ACK, want 1..3 kept for the tablet", buf)
	}
	closeRaw(t, s, tablet, okT.ConnID)
	closeRaw(t, s, phone, okP.ConnID)

	t2 := dialRaw(t, s)
	if ok := t2.helloDevice("two", "tablet", 0, 0); ok.LastID != 0 {
		t.Fatalf("tablet AUTH_OK %+v", ok)
	}
	t2.expectPushes(1, 3, 3)
	p2 := dialRaw(t, s)
	if ok := p2.helloDevice("two", "phone", 0, 0); ok.LastID != 3 || ok.Resume != protocol.ResumeNone {
		t.Fatalf("phone AUTH_OK %+v", ok)
	}
	p2.quiet(2)
	t2.ack(3)
	waitFor(t, "buffer trimmed once both acknowledged", func() bool { buf, _ := streamState(s, "two", 0); return len(buf) == 0 })
}

// TestQoS1ToConnection: a QoS1 push to a connection is for that connection's device: no
// other device gets it, ever; the device's next connection gets it again if it was not
// acknowledged. A connection without a device id keeps it to itself.
func TestQoS1ToConnection(t *testing.T) {
	s := startServer(t, func(o *Options) { o.AckTimeout = -1 })
	a := dialRaw(t, s)
	okA := a.helloDevice("q3", "phone", 0, 0)
	b := dialRaw(t, s)
	okB := b.helloDevice("q3", "tablet", 0, 0)
	res, err := s.PushConns([]uint64{okA.ConnID, 999999}, []byte("only a"), PushOptions{QoS1: true})
	if err != nil || res.Delivered != 1 || res.Offline != 1 || res.MsgIDs["q3"] != 1 {
		t.Fatalf("PushConns %+v %v", res, err)
	}
	a.expectQoS1(1, "only a")
	b.quiet(2)
	closeRaw(t, s, a, okA.ConnID)
	closeRaw(t, s, b, okB.ConnID)

	c := dialRaw(t, s) // the tablet, resuming from before the push: not for it
	if got := c.helloDevice("q3", "tablet", okB.Epoch, 0); got.Resume != protocol.ResumeRecovered {
		t.Fatalf("tablet resume %+v", got)
	}
	c.quiet(3)
	d := dialRaw(t, s) // the phone, without a cursor: it never acknowledged
	d.helloDevice("q3", "phone", 0, 0)
	d.expectPush(1, "only a", true)

	// Without a device id the message stays with its connection.
	e := dialRaw(t, s)
	okE := e.helloDevice("q3", "", 0, 0)
	if _, err := s.PushConns([]uint64{okE.ConnID}, []byte("only e"), PushOptions{QoS1: true}); err != nil {
		t.Fatal(err)
	}
	e.expectQoS1(2, "only e")
	closeRaw(t, s, e, okE.ConnID)
	f := dialRaw(t, s)
	if got := f.helloDevice("q3", "", okE.Epoch, 1); got.Resume != protocol.ResumeRecovered {
		t.Fatalf("resume %+v", got)
	}
	f.quiet(4)
}

// TestQoS1Exclude: an excluded connection's device is never sent the message, also not
// on its next connection.
func TestQoS1Exclude(t *testing.T) {
	s := startServer(t, func(o *Options) { o.AckTimeout = -1 })
	a, b := dialRaw(t, s), dialRaw(t, s)
	okA := a.helloDevice("ex", "phone", 0, 0)
	b.helloDevice("ex", "tablet", 0, 0)
	if _, err := s.PushUsers([]string{"ex"}, []byte("m1"), PushOptions{QoS1: true, Exclude: []uint64{okA.ConnID}}); err != nil {
		t.Fatal(err)
	}
	b.expectQoS1(1, "m1")
	a.quiet(2)
	closeRaw(t, s, a, okA.ConnID)
	c := dialRaw(t, s)
	c.helloDevice("ex", "phone", 0, 0)
	c.quiet(3)
}

// TestQoS1Bounds: epochs are in [1, 2^53) and ids never pass 2^53-1, so both are exact
// as JSON numbers; a stream whose ids are exhausted starts a new epoch, closing the
// user's connections with a reconnect code.
func TestQoS1Bounds(t *testing.T) {
	h := &hub{epochBase: maxJSONInt - 3}
	for range 5 {
		if e := h.nextEpoch(); e == 0 || e >= maxJSONInt {
			t.Fatalf("epoch %d outside [1, 2^53)", e)
		}
	}
	s := startServer(t, nil)
	a := dialRaw(t, s)
	ok := a.helloResume("bd", 0, 0)
	u := s.lockUser("bd", false)
	u.lastID = maxMsgID - 1
	u.mu.Unlock()
	if res := pushQ(t, s, "bd", "last"); res.MsgIDs["bd"] != maxMsgID {
		t.Fatalf("push got %+v, want id 2^53-1", res)
	}
	a.expectQoS1(maxMsgID, "last")
	res := pushQ(t, s, "bd", "first")
	if res.MsgIDs["bd"] != 1 {
		t.Fatalf("push after the last id got %+v, want id 1 of a new epoch", res)
	}
	a.expectClosed(protocol.OpClose, protocol.CloseGoingAway)
	b := dialRaw(t, s)
	got := b.helloResume("bd", ok.Epoch, maxMsgID)
	if got.Resume != protocol.ResumeNotRecovered || got.Epoch == ok.Epoch || got.Epoch >= maxJSONInt || got.LastID != 1 {
		t.Fatalf("AUTH_OK after renewal %+v", got)
	}
}

// TestResumeDecision is PROTOCOL.md §11's resume table, row by row, on a stream at epoch
// 7 with latest id 10, where the bounds evicted up to 3 (E) and acknowledgements trimmed
// up to 6 (D); device "known" acknowledged 5, device "behind" 2.
func TestResumeDecision(t *testing.T) {
	s, err := New(Options{Authenticator: testAuth, AdminAddr: "-", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := func(dev string, epoch, last uint64, want protocol.ResumeResult, wantLast uint64) {
		t.Helper()
		u := &user{id: "rd", epoch: 7, lastID: 10, lost: 3, dropped: 6,
			devices: []*device{{id: "known", acked: 5}, {id: "behind", acked: 2}}}
		for id := uint64(7); id <= 10; id++ {
			u.buf = append(u.buf, queued{id: id, at: time.Now().UnixNano()})
		}
		c := &Conn{srv: s, id: 1}
		c.who.Store(&identity{userID: "rd", deviceID: dev})
		u.mu.Lock()
		res, start := s.resumeLocked(u, c, epoch, last)
		d, _ := u.deviceLocked(dev)
		u.mu.Unlock()
		if res != want || start != wantLast {
			t.Fatalf("%q (%d, %d): %v at %d, want %v at %d", dev, epoch, last, res, start, want, wantLast)
		}
		if dev != "" && d.acked != start {
			t.Fatalf("%q (%d, %d): device acknowledgement %d, want %d", dev, epoch, last, d.acked, start)
		}
	}
	f("known", 0, 0, protocol.ResumeNone, 5)           // no cursor: what the device did not acknowledge
	f("behind", 0, 0, protocol.ResumeNotRecovered, 10) // ... of which some was evicted
	f("new", 0, 0, protocol.ResumeNone, 10)            // unknown device: nothing owed
	f("", 0, 0, protocol.ResumeNone, 10)               // no device id: nothing owed
	f("known", 8, 4, protocol.ResumeNotRecovered, 10)  // another epoch
	f("known", 7, 11, protocol.ResumeNotRecovered, 10) // ahead of the stream
	f("known", 7, 4, protocol.ResumeRecovered, 5)      // the device's ACK is ahead of the cursor
	f("known", 7, 7, protocol.ResumeRecovered, 7)      // the cursor is ahead of the ACK
	f("behind", 7, 2, protocol.ResumeNotRecovered, 10) // max(2, 2) < E
	f("new", 7, 6, protocol.ResumeRecovered, 6)        // unknown device: D decides
	f("new", 7, 5, protocol.ResumeNotRecovered, 10)    // 6 was trimmed, maybe unseen by it
	f("", 7, 6, protocol.ResumeRecovered, 6)           // no device id: D decides
	f("", 7, 4, protocol.ResumeNotRecovered, 10)
}

// TestQoS1TwoDevicesLive: on live connections too, one device acknowledging does not stop
// the other's redelivery after the ack timeout.
func TestQoS1TwoDevicesLive(t *testing.T) {
	s := startServer(t, func(o *Options) { o.AckTimeout = 50 * time.Millisecond })
	phone, tablet := dialRaw(t, s), dialRaw(t, s)
	okP := phone.helloDevice("twl", "phone", 0, 0)
	tablet.helloDevice("twl", "tablet", 0, 0)
	pushN(t, s, "twl", 1)
	phone.expectPushes(1, 1, 0)
	phone.ack(1)
	waitFor(t, "phone's window freed", func() bool { _, w := streamState(s, "twl", okP.ConnID); return !w })
	tablet.expectPushes(1, 1, 0)
	tablet.expectPushes(1, 1, 1) // the phone's ACK was not the tablet's
	tablet.ack(1)
	waitFor(t, "buffer trimmed", func() bool { buf, _ := streamState(s, "twl", 0); return len(buf) == 0 })
}
