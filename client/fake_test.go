package client

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// The tests in this file drive a fake server frame by frame, for behaviour
// the real gateway does not produce on demand.

// dialFake dials fs in a goroutine while the test goroutine plays the server
// side of the handshake with auth, and returns the client and its connection.
func dialFake(t *testing.T, fs *fakeServer, o Options, auth protocol.AuthOK) (*Client, *fakeConn, protocol.Hello) {
	t.Helper()
	if o.Token == "" {
		o.Token = "u1"
	}
	type result struct {
		c   *Client
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := Dial(context.Background(), fs.addr(), o)
		res <- result{c, err}
	}()
	fc := fs.next()
	hello := fc.accept(auth)
	r := <-res
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	t.Cleanup(func() { _ = r.c.Close() })
	return r.c, fc, hello
}

func TestHelloFields(t *testing.T) {
	fs := newFakeServer(t)
	_, _, h := dialFake(t, fs, Options{Token: "tk", DeviceID: "d1", ClientVersion: "9", ResumeEpoch: 3, ResumeLastID: 4}, protocol.AuthOK{})
	want := protocol.Hello{Token: "tk", DeviceID: "d1", Platform: DefaultPlatform, ClientVersion: "9", ResumeEpoch: 3, ResumeLastID: 4}
	if h != want {
		t.Fatalf("HELLO = %+v, want %+v", h, want)
	}
}

func TestAutoAck(t *testing.T) {
	fs := newFakeServer(t)
	c, fc, _ := dialFake(t, fs, Options{}, protocol.AuthOK{Epoch: 1})

	fc.push(9, "", "qos1", protocol.FlagAckRequested)
	p := recv(t, c.Pushes())
	if p.MsgID != 9 || !p.AckRequested || string(p.Payload) != "qos1" {
		t.Fatalf("push = %+v", p)
	}
	var ack protocol.Ack
	if err := ack.Decode(fc.expect(protocol.OpAck).Body); err != nil || ack.MsgID != 9 {
		t.Fatalf("ACK = %+v, %v; want 9", ack, err)
	}

	// A duplicate is dropped but still acknowledged (PROTOCOL.md §11).
	fc.push(9, "", "again", protocol.FlagAckRequested)
	if err := ack.Decode(fc.expect(protocol.OpAck).Body); err != nil || ack.MsgID != 9 {
		t.Fatalf("ACK of duplicate = %+v, %v", ack, err)
	}
	fc.push(10, "", "next", 0) // QoS0: no ACK
	if p := recv(t, c.Pushes()); p.MsgID != 10 || p.AckRequested {
		t.Fatalf("push = %+v", p)
	}
	select {
	case p := <-c.Pushes():
		t.Fatalf("unexpected push %+v", p)
	default:
	}
}

// TestRedelivered: a redelivery (FlagDup) of a message already delivered is dropped and
// acknowledged again; one of a message this client never delivered (it lost its cursor,
// say) reaches the application once, marked Redelivered.
func TestRedelivered(t *testing.T) {
	fs := newFakeServer(t)
	c, fc, _ := dialFake(t, fs, Options{}, protocol.AuthOK{Epoch: 1, LastID: 4})
	var ack protocol.Ack
	expectAck := func(id uint64) {
		t.Helper()
		if err := ack.Decode(fc.expect(protocol.OpAck).Body); err != nil || ack.MsgID != id {
			t.Fatalf("ACK = %+v, %v; want %d", ack, err, id)
		}
	}
	fc.push(5, "", "five", protocol.FlagAckRequested|protocol.FlagDup)
	if p := recv(t, c.Pushes()); p.MsgID != 5 || !p.AckRequested || !p.Redelivered || string(p.Payload) != "five" {
		t.Fatalf("push = %+v, want 5 redelivered", p)
	}
	expectAck(5)
	fc.push(5, "", "five", protocol.FlagAckRequested|protocol.FlagDup) // seen: dropped
	expectAck(5)
	fc.push(6, "", "six", protocol.FlagAckRequested)
	if p := recv(t, c.Pushes()); p.MsgID != 6 || p.Redelivered {
		t.Fatalf("push = %+v, want 6 first delivery", p)
	}
	expectAck(6)
	select {
	case p := <-c.Pushes():
		t.Fatalf("unexpected push %+v", p)
	default:
	}
}

func TestDuplicatesDroppedAndResume(t *testing.T) {
	fs := newFakeServer(t)
	c, fc, h := dialFake(t, fs, Options{BackoffMin: time.Millisecond}, protocol.AuthOK{Epoch: 7, LastID: 0})
	if h.ResumeEpoch != 0 || h.ResumeLastID != 0 {
		t.Fatalf("first HELLO resumes %d/%d", h.ResumeEpoch, h.ResumeLastID)
	}

	// User sequence: ids must grow; unsequenced pushes always pass. Rooms
	// are deduplicated per room.
	for _, p := range []struct {
		id uint64
		ch string
	}{{1, ""}, {2, ""}, {2, ""}, {1, ""}, {0, ""}, {3, ""}, {0, ""}, {5, "r"}, {5, "r"}, {1, "s"}, {6, "r"}} {
		fc.push(p.id, p.ch, "x", 0)
	}
	want := []string{"1//x", "2//x", "0//x", "3//x", "0//x", "5/r/x", "1/s/x", "6/r/x"}
	var got []string
	for range want {
		got = append(got, pushString(recv(t, c.Pushes())))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if e, id := c.Cursor(); e != 7 || id != 3 {
		t.Fatalf("Cursor = %d/%d, want 7/3", e, id)
	}

	// Drop the connection without a code: the client reconnects and asks to
	// resume after 3.
	_ = fc.nc.Close()
	fc2 := fs.next()
	h = fc2.accept(protocol.AuthOK{Resume: protocol.ResumeRecovered, Epoch: 7, LastID: 5})
	if h.ResumeEpoch != 7 || h.ResumeLastID != 3 {
		t.Fatalf("HELLO after reconnect resumes %d/%d, want 7/3", h.ResumeEpoch, h.ResumeLastID)
	}
	// Recovered: the server replays from 3 (a duplicate) up to 5; the room
	// marks start afresh on the new connection.
	for _, id := range []uint64{3, 4, 5} {
		fc2.push(id, "", "replay", 0)
	}
	fc2.push(5, "r", "room", 0)
	want = []string{"4//replay", "5//replay", "5/r/room"}
	got = got[:0]
	for range want {
		got = append(got, pushString(recv(t, c.Pushes())))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after resume delivered %v, want %v", got, want)
	}
	if e, id := c.Cursor(); e != 7 || id != 5 {
		t.Fatalf("Cursor = %d/%d, want 7/5", e, id)
	}

	// Not recovered, new epoch: the cursor moves to the server's position.
	_ = fc2.nc.Close()
	fc3 := fs.next()
	fc3.accept(protocol.AuthOK{Resume: protocol.ResumeNotRecovered, Epoch: 8, LastID: 100})
	waitFor(t, "the third connection", func() bool { return c.LastAuth().Epoch == 8 })
	if e, id := c.Cursor(); e != 8 || id != 100 {
		t.Fatalf("Cursor = %d/%d, want 8/100", e, id)
	}
	if c.LastAuth().Resume != protocol.ResumeNotRecovered {
		t.Fatalf("LastAuth().Resume = %v", c.LastAuth().Resume)
	}
}

func TestFramesAfterAuthOKInSameRead(t *testing.T) {
	fs := newFakeServer(t)
	res := make(chan *Client, 1)
	go func() {
		c, err := Dial(context.Background(), fs.addr(), Options{Token: "u1"})
		if err != nil {
			t.Error(err)
		}
		res <- c
	}()
	fc := fs.next()
	f := fc.expect(protocol.OpHello)
	// AUTH_OK and a PUSH in one write: the push must not be lost.
	b, _ := (&protocol.AuthOK{HeartbeatMs: 10_000, UserID: "u1"}).AppendFrame(nil, f.Seq, 0)
	b, _ = (&protocol.Push{Payload: []byte("early")}).AppendFrame(b, 0, 0)
	fc.write(b)
	c := <-res
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	if p := recv(t, c.Pushes()); string(p.Payload) != "early" {
		t.Fatalf("push = %+v", p)
	}
}

func TestGoAwayRetryAfter(t *testing.T) {
	fs := newFakeServer(t)
	var tr testkit.Transitions[State]
	// A backoff of up to an hour would time the test out: the reconnect must
	// use the GOAWAY's retry-after instead. That holds after a stable session
	// (after a short one, see TestGoAwayAfterShortSession): with StableAfter
	// 1ns every session is one.
	c, fc, _ := dialFake(t, fs, Options{OnStateChange: tr.Record, BackoffMin: time.Hour, BackoffMax: time.Hour,
		StableAfter: time.Nanosecond}, protocol.AuthOK{})

	// A request in flight when GOAWAY arrives still gets its answer.
	type result struct {
		out []byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		out, err := c.Send(context.Background(), "r", []byte("q"))
		res <- result{out, err}
	}()
	send := fc.expect(protocol.OpSend)
	const retry = 300 * time.Millisecond
	sent := time.Now()
	fc.send(&protocol.GoAway{Code: protocol.CloseGoingAway, RetryAfterMs: uint32(retry / time.Millisecond), Reason: "drain"}, 0, 0)
	// New requests wait for the next connection rather than use this one.
	waitFor(t, "the client to stop using the draining connection", func() bool {
		_, ready, _ := c.usable()
		return ready != nil
	})
	fc.send(&protocol.SendReply{Payload: []byte("a")}, send.Seq, 0)
	if r := <-res; r.err != nil || string(r.out) != "a" {
		t.Fatalf("Send across GOAWAY = %q, %v", r.out, r.err)
	}
	// With nothing pending, the client closes the connection itself.
	fc.waitClosed()

	fc2 := fs.next()
	fc2.accept(protocol.AuthOK{})
	if waited := time.Since(sent); waited < retry {
		t.Fatalf("reconnected %v after GOAWAY, want >= %v", waited, retry)
	}
	if _, ok := tr.Find(StateReconnecting, closeCode(protocol.CloseGoingAway)); !ok {
		t.Fatalf("transitions %s", tr.Dump())
	}
	waitFor(t, "connected again", func() bool { return c.State() == StateConnected })
}

func TestDeadServerDetected(t *testing.T) {
	fs := newFakeServer(t)
	var tr testkit.Transitions[State]
	c, fc, _ := dialFake(t, fs, Options{OnStateChange: tr.Record, BackoffMin: time.Millisecond},
		protocol.AuthOK{HeartbeatMs: 100})
	start := time.Now()

	// The fake server reads but never answers: after 2 × 100ms of silence the
	// client gives up on it and reconnects.
	fc2 := fs.next()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("reconnected after %v, before 2 × heartbeat", d)
	}
	ops := fc.waitClosed()
	if !slices.Contains(ops, protocol.OpPing) {
		t.Fatalf("client sent %v before giving up, want a PING", ops)
	}
	fc2.accept(protocol.AuthOK{HeartbeatMs: 10_000})
	waitFor(t, "connected again", func() bool { return c.State() == StateConnected })
	if _, ok := tr.Find(StateReconnecting, func(err error) bool { return errors.Is(err, ErrHeartbeatTimeout) }); !ok {
		t.Fatalf("transitions %s", tr.Dump())
	}
}

func TestAnswersServerPing(t *testing.T) {
	fs := newFakeServer(t)
	_, fc, _ := dialFake(t, fs, Options{}, protocol.AuthOK{})
	fc.write(protocol.AppendEmpty(nil, protocol.OpPing, 77))
	if f := fc.expect(protocol.OpPong); f.Seq != 77 {
		t.Fatalf("PONG seq %d, want 77", f.Seq)
	}
}

func TestPendingFailOnDisconnect(t *testing.T) {
	fs := newFakeServer(t)
	c, fc, _ := dialFake(t, fs, Options{BackoffMin: time.Hour, BackoffMax: time.Hour}, protocol.AuthOK{})
	res := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), "r", nil)
		res <- err
	}()
	fc.expect(protocol.OpSend)
	_ = fc.nc.Close()
	if err := <-res; !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Send on a dropped connection = %v, want ErrDisconnected", err)
	}
	// While reconnecting (an hour's backoff at most), SendNoReply fails at
	// once and Send waits until its deadline.
	waitFor(t, "reconnecting", func() bool { return c.State() != StateConnected })
	if err := c.SendNoReply("r", nil); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("SendNoReply while disconnected = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Send(ctx, "r", nil); !errors.Is(err, ErrDisconnected) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send while disconnected = %v", err)
	}
	// Unsubscribe while disconnected only forgets the room.
	if err := c.Unsubscribe(context.Background(), "r"); err != nil {
		t.Fatalf("Unsubscribe while disconnected = %v", err)
	}
}

func TestTerminalAuthFailOnReconnect(t *testing.T) {
	fs := newFakeServer(t)
	var tr testkit.Transitions[State]
	c, fc, _ := dialFake(t, fs, Options{OnStateChange: tr.Record, BackoffMin: time.Millisecond}, protocol.AuthOK{})

	// A reconnect code first: the client comes back...
	fc.send(&protocol.Close{Code: protocol.CloseServerBusy, Reason: "busy"}, 0, 0)
	fc2 := fs.next()
	f := fc2.expect(protocol.OpHello)
	// ...and is refused with a terminal code: it must stop for good.
	fc2.send(&protocol.AuthFail{Code: protocol.CloseTokenExpired, Reason: "expired"}, f.Seq, 0)
	select {
	case <-c.done:
	case <-time.After(waitTimeout):
		t.Fatal("client still running after a terminal AUTH_FAIL")
	}
	if n := c.attempts.Load(); n != 2 {
		t.Fatalf("%d connection attempts, want 2", n)
	}
	if _, ok := tr.Find(StateClosed, closeCode(protocol.CloseTokenExpired)); !ok {
		t.Fatalf("transitions %s", tr.Dump())
	}
	select {
	case fc := <-fs.conns:
		t.Fatalf("client connected again (%v)", fc.nc.RemoteAddr())
	default:
	}
}

func TestHandshakeTimeout(t *testing.T) {
	fs := newFakeServer(t)
	_, err := Dial(context.Background(), fs.addr(), Options{Token: "u", HandshakeTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrHandshakeTimeout) {
		t.Fatalf("Dial to a silent server = %v, want ErrHandshakeTimeout", err)
	}
}

func TestDialContextCancelled(t *testing.T) {
	fs := newFakeServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, fs.addr(), Options{Token: "u"})
		res <- err
	}()
	fs.next().expect(protocol.OpHello)
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a cancelled context = %v", err)
	}
}

func TestServerProtocolViolation(t *testing.T) {
	fs := newFakeServer(t)
	var tr testkit.Transitions[State]
	c, fc, _ := dialFake(t, fs, Options{OnStateChange: tr.Record}, protocol.AuthOK{})
	// A frame of version 2: the client answers CLOSE UNSUPPORTED_VERSION and,
	// the code being terminal, does not come back.
	fc.write([]byte{0, 0, 0, 8, 2, byte(protocol.OpPing), 0, 0, 0, 0, 0, 1})
	f := fc.expect(protocol.OpClose)
	var m protocol.Close
	if err := m.Decode(f.Body); err != nil || m.Code != protocol.CloseUnsupportedVersion {
		t.Fatalf("CLOSE = %+v, %v", m, err)
	}
	waitFor(t, "closed", func() bool { return c.State() == StateClosed })
	x, _ := tr.Find(StateClosed, nil)
	var ce *CloseError
	if !errors.As(x.Err, &ce) || !ce.Local || ce.Code != protocol.CloseUnsupportedVersion {
		t.Fatalf("closed with %v", x.Err)
	}
}

func TestRejoinBeforeRequestsAndRefusal(t *testing.T) {
	fs := newFakeServer(t)
	c, fc, _ := dialFake(t, fs, Options{BackoffMin: time.Millisecond}, protocol.AuthOK{})
	for _, room := range []string{"a", "b"} {
		res := make(chan error, 1)
		go func() { res <- c.Subscribe(context.Background(), room) }()
		f := fc.expect(protocol.OpSubscribe)
		fc.write(protocol.AppendEmpty(nil, protocol.OpOK, f.Seq))
		if err := <-res; err != nil {
			t.Fatalf("Subscribe(%s): %v", room, err)
		}
	}

	_ = fc.nc.Close()
	fc2 := fs.next()
	fc2.accept(protocol.AuthOK{})
	// The rejoins are the first frames after HELLO, ahead of any request.
	joined := map[string]uint32{}
	for range 2 {
		f := fc2.expect(protocol.OpSubscribe)
		var m protocol.Subscribe
		if err := m.Decode(f.Body); err != nil {
			t.Fatal(err)
		}
		joined[m.Room] = f.Seq
	}
	if len(joined) != 2 {
		t.Fatalf("rejoined %v, want a and b", joined)
	}
	// Room b is refused now: the client forgets it.
	fc2.write(protocol.AppendEmpty(nil, protocol.OpOK, joined["a"]))
	fc2.send(&protocol.Error{Code: protocol.ErrorDenied, Message: "banned"}, joined["b"], 0)
	waitFor(t, "room b to be dropped", func() bool { return slices.Equal(c.Rooms(), []string{"a"}) })
}

// TestServerCloseCodes checks the reaction to each class of code a server
// ends an authenticated connection with (PROTOCOL.md §7, §8, §13): terminal
// codes stop the client and reach the application; everything else
// reconnects with backoff and resumes.
func TestServerCloseCodes(t *testing.T) {
	f := func(name string, end protocol.Message, code protocol.CloseCode, terminal bool) {
		t.Run(name, func(t *testing.T) {
			fs := newFakeServer(t)
			var tr testkit.Transitions[State]
			var w testkit.Waits
			c, fc, _ := dialFake(t, fs, Options{OnStateChange: tr.Record, BackoffMin: time.Millisecond,
				BackoffMax: time.Millisecond, onWait: w.Record}, protocol.AuthOK{Epoch: 1})
			fc.push(4, "", "x", 0)
			recv(t, c.Pushes())
			fc.send(end, 0, 0)
			if terminal {
				select {
				case <-c.done:
				case <-time.After(waitTimeout):
					t.Fatal("client still running after a terminal code")
				}
				x, ok := tr.Find(StateClosed, closeCode(code))
				var ce *CloseError
				if !ok || !errors.As(x.Err, &ce) || ce.Local || ce.Op != end.Opcode() || !ce.Terminal() {
					t.Fatalf("transitions %s", tr.Dump())
				}
				if _, err := c.Send(context.Background(), "r", nil); !errors.Is(err, ErrClosed) || !closeCode(code)(err) {
					t.Fatalf("Send after %s = %v, want ErrClosed wrapping the CloseError", name, err)
				}
				// The read goroutine has ended: no reconnect can follow.
				if len(w.Get()) != 0 || len(fs.conns) != 0 {
					t.Fatalf("client reconnected after %s (%d waits)", name, len(w.Get()))
				}
				return
			}
			h := fs.next().accept(protocol.AuthOK{Resume: protocol.ResumeRecovered, Epoch: 1})
			if h.ResumeEpoch != 1 || h.ResumeLastID != 4 {
				t.Fatalf("HELLO after %s resumes %d/%d, want 1/4", name, h.ResumeEpoch, h.ResumeLastID)
			}
			if _, ok := tr.Find(StateReconnecting, closeCode(code)); !ok {
				t.Fatalf("transitions %s", tr.Dump())
			}
			// The session was short: the wait counted it as a failure.
			if got := w.Get(); len(got) != 1 || got[0].Failures != 1 {
				t.Fatalf("waits %v, want one after one failure", got)
			}
		})
	}
	closeWith := func(code protocol.CloseCode) protocol.Message { return &protocol.Close{Code: code, Reason: "r"} }
	// 3503: a newer login on the same device took over. Reconnecting would
	// replace it in turn: the flapping of issue 8.
	f("REPLACED", closeWith(protocol.CloseReplaced), protocol.CloseReplaced, true)
	f("KICKED", closeWith(protocol.CloseKicked), protocol.CloseKicked, true)
	f("TOKEN_EXPIRED", closeWith(protocol.CloseTokenExpired), protocol.CloseTokenExpired, true)
	f("unknown terminal 3999", closeWith(3999), 3999, true)
	f("GOAWAY with a terminal code", &protocol.GoAway{Code: protocol.CloseReplaced}, protocol.CloseReplaced, true)
	// 3002: the server's send budget overflowed; reconnect and resume.
	f("SLOW_CONSUMER", closeWith(protocol.CloseSlowConsumer), protocol.CloseSlowConsumer, false)
	f("GOING_AWAY", closeWith(protocol.CloseGoingAway), protocol.CloseGoingAway, false)
	f("NORMAL not asked for", closeWith(protocol.CloseNormal), protocol.CloseNormal, false)
	f("unassigned 5000", closeWith(5000), 5000, false)
}

// AUTH_OK and AUTH_FAIL echo the HELLO's seq (PROTOCOL.md §6.2, §6.3); servers
// before that revision sent 0. The client takes the answer to its one HELLO
// either way.
func TestAuthReplySeq(t *testing.T) {
	f := func(name string, echo bool, reply func(fc *fakeConn, seq uint32), wantErr protocol.CloseCode) {
		t.Run(name, func(t *testing.T) {
			fs := newFakeServer(t)
			res := make(chan error, 1)
			go func() {
				c, err := Dial(context.Background(), fs.addr(), Options{Token: "u1", NoReconnect: true})
				if err == nil {
					_ = c.Close()
				}
				res <- err
			}()
			fc := fs.next()
			seq := fc.expect(protocol.OpHello).Seq
			if seq == 0 {
				t.Fatal("HELLO with seq 0")
			}
			if !echo {
				seq = 0
			}
			reply(fc, seq)
			err := <-res
			switch {
			case wantErr == 0 && err != nil:
				t.Fatalf("Dial = %v", err)
			case wantErr != 0 && !closeCode(wantErr)(err):
				t.Fatalf("Dial = %v, want a CloseError %v", err, wantErr)
			}
		})
	}
	ok := func(fc *fakeConn, seq uint32) { fc.send(&protocol.AuthOK{HeartbeatMs: 10_000}, seq, 0) }
	fail := func(fc *fakeConn, seq uint32) {
		fc.send(&protocol.AuthFail{Code: protocol.CloseInvalidToken, Reason: "no"}, seq, 0)
	}
	f("AUTH_OK echoing seq", true, ok, 0)
	f("AUTH_OK with seq 0", false, ok, 0)
	f("AUTH_FAIL echoing seq", true, fail, protocol.CloseInvalidToken)
	f("AUTH_FAIL with seq 0", false, fail, protocol.CloseInvalidToken)
}
