package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/server"
)

// callTimeout bounds each call of a test: generous for a loaded 2-core machine.
const callTimeout = 10 * time.Second

// connect dials url with the broker's options (no reconnect buffer: fail fast while
// disconnected).
func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func openStreams(t testing.TB, nc *nats.Conn, o StreamOptions) *UserStreams {
	t.Helper()
	u, err := NewUserStreams(ctxT(t), nc, o)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func appendOK(t testing.TB, u *UserStreams, user, payload, target string) (uint64, uint64) {
	t.Helper()
	e, id, err := u.Append(ctxT(t), user, []byte(payload), target)
	if err != nil {
		t.Fatal(err)
	}
	return e, id
}

// expectSince checks Since(epoch, last), reading one by one (walk) and through a
// consumer (scan): the ids returned, recovered, and the position.
func expectSince(t testing.TB, u *UserStreams, user string, epoch, last uint64, wantIDs []uint64, wantRec bool, wantEpoch, wantLast uint64) []StoredMsg {
	t.Helper()
	defer func() { u.walkMax = walkMax }()
	var msgs []StoredMsg
	for _, way := range []struct {
		name    string
		walkMax int
	}{{"walk", math.MaxInt}, {"scan", 0}} {
		u.walkMax = way.walkMax
		var rec bool
		var ce, cl uint64
		var err error
		msgs, rec, ce, cl, err = u.Since(ctxT(t), user, epoch, last)
		if err != nil {
			t.Fatal(err)
		}
		var ids []uint64
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		if !slices.Equal(ids, wantIDs) || rec != wantRec || ce != wantEpoch || cl != wantLast {
			t.Fatalf("Since(%d, %d) by %s = ids %v recovered %v at (%d, %d); want %v %v at (%d, %d)",
				epoch, last, way.name, ids, rec, ce, cl, wantIDs, wantRec, wantEpoch, wantLast)
		}
		if info, err := u.stream.Info(ctxT(t)); err != nil || info.State.Consumers != 0 {
			t.Fatalf("after Since by %s the stream has %d consumers (%v)", way.name, info.State.Consumers, err)
		}
	}
	return msgs
}

func seq(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// The cases run against both servers: the embedded v2.15 (TestUserStreams) and the
// Debian v2.9 binary (TestUserStreamsNATS29). Each has its own prefix, so its own stream.
var userStreamCases = []struct {
	name string
	f    func(t *testing.T, url, prefix string)
}{
	{"ContiguousConcurrent", testContiguousConcurrent},
	{"SinceEveryCursor", testSinceEveryCursor},
	{"CountBound", testCountBound},
	{"AgeBoundNewEpoch", testAgeBound},
	{"AcksMonotonic", testAcksMonotonic},
	{"Live", testLive},
	{"ResumeTable", testResumeTable},
	{"TouchKeepsEpoch", testTouchKeepsEpoch},
	{"TouchWhen", testTouchWhen},
	{"TouchConcurrent", testTouchConcurrent},
	{"MarkersInChain", testMarkersInChain},
	{"Observe", testObserve},
	{"ResumeMarkerHead", testResumeMarkerHead},
}

func TestUserStreams(t *testing.T) {
	ns := testkit.NATS(t)
	for _, c := range userStreamCases {
		t.Run(c.name, func(t *testing.T) { c.f(t, ns.URL(), "e"+c.name) })
	}
}

func TestUserStreamsNATS29(t *testing.T) {
	p := testkit.NATSProcess(t)
	for _, c := range userStreamCases {
		t.Run(c.name, func(t *testing.T) { c.f(t, p.URL(), "p"+c.name) })
	}
}

// Two nodes (two connections, each with its UserStreams, created at once) append for
// one user from many goroutines, interleaved with another user's appends: the ids are
// exactly 1..n, each once, in one epoch, and Since returns them in order.
func testContiguousConcurrent(t *testing.T, url, prefix string) {
	const workers, each = 6, 20 // per node
	o := StreamOptions{Prefix: prefix, Buffer: 1000}
	var nodes [2]*UserStreams
	var wg sync.WaitGroup
	for i := range nodes {
		nc := connect(t, url)
		wg.Go(func() { nodes[i] = openStreams(t, nc, o) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	type pos struct{ epoch, id uint64 }
	got := make(chan pos, 2*workers*each)
	errs := make(chan error, 2*workers)
	for _, u := range nodes {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					e, id, err := u.Append(context.Background(), "alice", []byte(fmt.Sprint(w, i)), "")
					if err != nil {
						errs <- err
						return
					}
					got <- pos{e, id}
					if i%4 == 0 {
						if _, _, err := u.Append(context.Background(), "bob", nil, ""); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	close(got)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var ids []uint64
	var epoch uint64
	for p := range got {
		if epoch == 0 {
			epoch = p.epoch
		}
		if p.epoch != epoch || epoch == 0 || epoch >= 1<<53 {
			t.Fatalf("epoch %d, another append had %d", p.epoch, epoch)
		}
		ids = append(ids, p.id)
	}
	slices.Sort(ids)
	n := uint64(2 * workers * each)
	if !slices.Equal(ids, seq(1, n)) {
		t.Fatalf("ids are not 1..%d each once: %v", n, ids)
	}
	expectSince(t, nodes[1], "alice", epoch, 0, seq(1, n), true, epoch, n)
	expectSince(t, nodes[0], "alice", epoch, n-3, seq(n-2, n), true, epoch, n)
}

// Since from every cursor position of a sequence that starts with Begin's marker, with
// targets and payloads kept, for a user id that is no valid subject token as is; a
// cursor of another epoch, or ahead of the sequence, is not recovered and gets the whole
// buffer.
func testSinceEveryCursor(t *testing.T, url, prefix string) {
	u := openStreams(t, connect(t, url), StreamOptions{Prefix: prefix, Buffer: 20})
	const user = "ü.s er*>/é"
	if ms, rec, ce, cl, err := u.Since(ctxT(t), user, 0, 0); err != nil || len(ms) != 0 || rec || ce != 0 || cl != 0 {
		t.Fatalf("Since on a new user = %v %v (%d, %d) %v", ms, rec, ce, cl, err)
	}
	epoch, last, err := u.Begin(ctxT(t), user)
	if err != nil || epoch == 0 || last != 0 {
		t.Fatalf("Begin = (%d, %d) %v", epoch, last, err)
	}
	if e, l, err := u.Begin(ctxT(t), user); err != nil || e != epoch || l != 0 {
		t.Fatalf("second Begin = (%d, %d) %v; want (%d, 0)", e, l, err, epoch)
	}
	expectSince(t, u, user, epoch, 0, nil, true, epoch, 0)
	const n = 10
	for i := uint64(1); i <= n; i++ {
		target := ""
		if i%3 == 0 {
			target = "dev" + strconv.Itoa(int(i))
		}
		if e, id := appendOK(t, u, user, "m"+strconv.Itoa(int(i)), target); e != epoch || id != i {
			t.Fatalf("append %d = (%d, %d), want (%d, %d)", i, e, id, epoch, i)
		}
		appendOK(t, u, "other", "x", "") // interleaves stream sequences
	}
	for c := uint64(0); c <= n; c++ {
		msgs := expectSince(t, u, user, epoch, c, seq(c+1, n), true, epoch, n)
		for _, m := range msgs {
			wantT := ""
			if m.ID%3 == 0 {
				wantT = "dev" + strconv.Itoa(int(m.ID))
			}
			if string(m.Payload) != "m"+strconv.Itoa(int(m.ID)) || m.Target != wantT || m.Time.IsZero() {
				t.Fatalf("message %d = %q target %q time %v", m.ID, m.Payload, m.Target, m.Time)
			}
		}
	}
	expectSince(t, u, user, epoch, n+1, seq(1, n), false, epoch, n) // ahead
	expectSince(t, u, user, epoch^1, 3, seq(1, n), false, epoch, n) // another epoch
	expectSince(t, u, user, 0, 0, seq(1, n), false, epoch, n)       // no cursor: the caller decides
	if _, _, err := u.Append(ctxT(t), "", nil, ""); err == nil {
		t.Fatal("Append for an empty user id succeeded")
	}
}

// The count bound keeps the last Buffer messages; a cursor at the highest evicted id
// (E) is recovered, one below it is not and gets the buffer from its start. At the last
// id the sequence renews: a new epoch starting at 1.
func testCountBound(t *testing.T, url, prefix string) {
	const buffer, n = 5, 12
	u := openStreams(t, connect(t, url), StreamOptions{Prefix: prefix, Buffer: buffer})
	var epoch uint64
	for range n {
		epoch, _ = appendOK(t, u, "carol", "p", "")
	}
	first := uint64(n - buffer + 1)
	expectSince(t, u, "carol", epoch, first-1, seq(first, n), true, epoch, n)
	expectSince(t, u, "carol", epoch, first-2, seq(first, n), false, epoch, n)
	expectSince(t, u, "carol", epoch, 0, seq(first, n), false, epoch, n)

	u.maxID = n + 1
	if e, id := appendOK(t, u, "carol", "p", ""); e != epoch || id != n+1 {
		t.Fatalf("append = (%d, %d), want (%d, %d)", e, id, epoch, n+1)
	}
	e2, id := appendOK(t, u, "carol", "p", "")
	if e2 == epoch || id != 1 {
		t.Fatalf("append after the last id = (%d, %d), want a new epoch and id 1", e2, id)
	}
	expectSince(t, u, "carol", epoch, n+1, seq(1, 1), false, e2, 1)
	expectSince(t, u, "carol", e2, 0, seq(1, 1), true, e2, 1)

	// Another start with other bounds reconfigures the stream.
	u2 := openStreams(t, connect(t, url), StreamOptions{Prefix: prefix, Buffer: 2 * buffer})
	info, err := u2.stream.Info(ctxT(t))
	if err != nil || info.Config.MaxMsgsPerSubject != 2*buffer {
		t.Fatalf("stream after a restart with Buffer %d: %+v, %v", 2*buffer, info, err)
	}
}

// Once all of a user's messages aged out the sequence is gone: the next message starts
// a new epoch at 1, and a cursor of the old epoch is not recovered.
func testAgeBound(t *testing.T, url, prefix string) {
	const window = time.Second
	u := openStreams(t, connect(t, url), StreamOptions{Prefix: prefix, Window: window})
	var epoch uint64
	for range 3 {
		epoch, _ = appendOK(t, u, "dave", "p", "")
	}
	expectSince(t, u, "dave", epoch, 1, seq(2, 3), true, epoch, 3)
	deadline := time.Now().Add(window + callTimeout)
	for {
		_, _, ce, _, err := u.Since(ctxT(t), "dave", epoch, 3)
		if err != nil {
			t.Fatal(err)
		}
		if ce == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages still stored %v after the window", callTimeout)
		}
		time.Sleep(50 * time.Millisecond) // polling for the server's expiry
	}
	e2, id := appendOK(t, u, "dave", "p", "")
	if e2 == epoch || id != 1 {
		t.Fatalf("append after expiry = (%d, %d), want a new epoch and id 1", e2, id)
	}
	expectSince(t, u, "dave", epoch, 3, seq(1, 1), false, e2, 1)
}

// Acknowledgements from two nodes at once only move forward: each acker sees at least
// its own value afterwards, and the final value is the highest; a lower one and one of
// another epoch do not count for this epoch.
func testAcksMonotonic(t *testing.T, url, prefix string) {
	o := StreamOptions{Prefix: prefix}
	nodes := []*UserStreams{openStreams(t, connect(t, url), o), openStreams(t, connect(t, url), o)}
	const epoch, workers, each = 7, 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for n, u := range nodes {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					id := uint64(1 + (i*workers+w)*2 + n)
					dev := "phone"
					if i%2 == 1 {
						dev = "laptop" // a second device: conflicts on the user's value
					}
					if err := u.Ack(context.Background(), "erin", dev, epoch, id); err != nil {
						errs <- err
						return
					}
					got, known, err := u.Acked(context.Background(), "erin", dev, epoch)
					if err != nil || got < id || !known {
						errs <- fmt.Errorf("after Ack(%s, %d) Acked = %d, %v", dev, id, got, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	maxFor := func(odd int) uint64 {
		var m uint64
		for n := range 2 {
			for w := range workers {
				for i := odd; i < each; i += 2 {
					m = max(m, uint64(1+(i*workers+w)*2+n))
				}
			}
		}
		return m
	}
	for dev, want := range map[string]uint64{"phone": maxFor(0), "laptop": maxFor(1)} {
		if got, _, err := nodes[0].Acked(ctxT(t), "erin", dev, epoch); err != nil || got != want {
			t.Fatalf("Acked(%s) = %d, %v; want %d", dev, got, err, want)
		}
	}
	u := nodes[1]
	if err := u.Ack(ctxT(t), "erin", "phone", epoch, 1); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := u.Acked(ctxT(t), "erin", "phone", epoch); got != maxFor(0) {
		t.Fatalf("a lower Ack moved phone to %d", got)
	}
	if got, known, _ := u.Acked(ctxT(t), "erin", "phone", epoch+1); got != 0 || known {
		t.Fatalf("Acked in another epoch = %d %v, want 0, unknown", got, known)
	}
	if got, known, _ := u.Acked(ctxT(t), "nobody", "phone", epoch); got != 0 || known {
		t.Fatalf("Acked of an unknown user = %d %v, want 0, unknown", got, known)
	}
	if err := u.Ack(ctxT(t), "erin", "tablet", epoch, 0); err != nil {
		t.Fatal(err)
	}
	if got, known, _ := u.Acked(ctxT(t), "erin", "tablet", epoch); got != 0 || !known {
		t.Fatalf("a device recorded at 0: Acked = %d %v, want 0, known", got, known)
	}
}

// A subscriber of LiveSubject sees each stored message once, in id order, with its
// epoch and target, while two nodes append concurrently (refused publishes never show);
// the wildcard subscription sees every user's.
func testLive(t *testing.T, url, prefix string) {
	o := StreamOptions{Prefix: prefix}
	nodes := []*UserStreams{openStreams(t, connect(t, url), o), openStreams(t, connect(t, url), o)}
	const user, each = "gina/ü", 15
	nc := connect(t, url)
	sub, err := nc.SubscribeSync(nodes[0].LiveSubject(user))
	if err != nil {
		t.Fatal(err)
	}
	wild, err := nc.SubscribeSync(nodes[0].LiveSubjects())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the subscriptions are in place
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, u := range nodes {
		for range 2 {
			wg.Go(func() {
				for range each {
					if _, _, err := u.Append(context.Background(), user, []byte("p"), "dev"); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	appendOK(t, nodes[1], "hank", "h", "")
	// Every id once, in one epoch, and in store order the ids increase. (nats-server
	// 2.9 may republish the messages of concurrent publishers out of store order, which
	// is why a subscriber orders by id and reads a gap from the stream.)
	var epoch uint64
	ids := map[uint64]uint64{} // id -> stream sequence
	for i := range 4 * each {
		msg, err := sub.NextMsg(callTimeout)
		if err != nil {
			t.Fatalf("live message %d: %v", i, err)
		}
		gotUser, e, m, err := DecodeLive(msg)
		if err != nil || gotUser != user || m.ID == 0 || m.ID > 4*each || string(m.Payload) != "p" || m.Target != "dev" || m.Time.IsZero() {
			t.Fatalf("live message %d = %q epoch %d %+v, %v", i, gotUser, e, m, err)
		}
		if _, dup := ids[m.ID]; dup {
			t.Fatalf("id %d republished twice", m.ID)
		}
		seq, err := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			t.Fatalf("live message %d has no stream sequence: %v", i, msg.Header)
		}
		ids[m.ID] = seq
		if epoch == 0 {
			epoch = e
		} else if e != epoch {
			t.Fatalf("live message %d in epoch %d, before %d", i, e, epoch)
		}
	}
	for id := uint64(2); id <= 4*each; id++ {
		if ids[id] <= ids[id-1] {
			t.Fatalf("id %d stored at sequence %d, before id %d at %d", id, ids[id], id-1, ids[id-1])
		}
	}
	if msg, err := sub.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("an extra live message: %v", msg.Header)
	}
	for range 4 * each {
		if _, err := wild.NextMsg(callTimeout); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := wild.NextMsg(callTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if gotUser, _, m, err := DecodeLive(msg); err != nil || gotUser != "hank" || m.ID != 1 {
		t.Fatalf("wildcard's last message = %q %+v, %v", gotUser, m, err)
	}
}

// At most MaxDevices devices are remembered: a new one replaces a device of another
// epoch first, then the one furthest behind; a new device furthest behind of all is
// not remembered.
func TestMergeAck(t *testing.T) {
	var recs []ackRecord
	changed := false
	for i := range MaxDevices {
		e := uint64(1)
		if i == 10 {
			e = 2 // the one of another epoch
		}
		recs, changed = mergeAck(recs, ackRecord{Device: strconv.Itoa(i), Epoch: e, ID: uint64(100 + i)})
		if !changed {
			t.Fatalf("device %d not added", i)
		}
	}
	find := func(dev string) *ackRecord {
		for i := range recs {
			if recs[i].Device == dev {
				return &recs[i]
			}
		}
		return nil
	}
	recs, _ = mergeAck(recs, ackRecord{Device: "new1", Epoch: 1, ID: 500})
	if len(recs) != MaxDevices || find("10") != nil || find("new1") == nil {
		t.Fatalf("the other epoch's device was not the one replaced: %v", recs)
	}
	recs, _ = mergeAck(recs, ackRecord{Device: "new2", Epoch: 1, ID: 500})
	if len(recs) != MaxDevices || find("0") != nil || find("new2") == nil {
		t.Fatalf("the device furthest behind (0) was not the one replaced: %v", recs)
	}
	if recs, changed = mergeAck(recs, ackRecord{Device: "late", Epoch: 1, ID: 1}); changed || find("late") != nil {
		t.Fatal("a new device furthest behind of all was remembered")
	}
	if _, changed = mergeAck(recs, ackRecord{Device: "5", Epoch: 1, ID: 50}); changed {
		t.Fatal("a lower acknowledgement changed the record")
	}
	if recs, changed = mergeAck(recs, ackRecord{Device: "5", Epoch: 3, ID: 2}); !changed || find("5").Epoch != 3 {
		t.Fatal("an acknowledgement of another epoch did not replace the record")
	}
}

// With NATS gone (the embedded server shut down, the Debian binary killed), every call
// fails within its context's deadline instead of hanging, and once the client has seen
// the connection drop, at once. When NATS is back (same store) the sequence goes on
// where it was: nothing was stored by the failed calls.
func TestUserStreamsNATSDown(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		ns := testkit.NATS(t)
		testNATSDown(t, ns.URL(), ns.Shutdown, ns.Restart)
	})
	t.Run("nats29-killed", func(t *testing.T) {
		p := testkit.NATSProcess(t)
		testNATSDown(t, p.URL(), p.Kill, p.Restart)
	})
}

func testNATSDown(t *testing.T, url string, stop, restart func()) {
	nc := connect(t, url)
	u := openStreams(t, nc, StreamOptions{Prefix: "down"})
	epoch, _ := appendOK(t, u, "frank", "p", "")
	calls := []struct {
		name string
		f    func(ctx context.Context) error
	}{
		{"Append", func(ctx context.Context) error { _, _, err := u.Append(ctx, "frank", nil, ""); return err }},
		{"Begin", func(ctx context.Context) error { _, _, err := u.Begin(ctx, "frank"); return err }},
		{"Since", func(ctx context.Context) error { _, _, _, _, err := u.Since(ctx, "frank", epoch, 0); return err }},
		{"Touch", func(ctx context.Context) error { _, err := u.Touch(ctx, "frank", 0); return err }},
		{"Ack", func(ctx context.Context) error { return u.Ack(ctx, "frank", "d", epoch, 1) }},
		{"Acked", func(ctx context.Context) error { _, _, err := u.Acked(ctx, "frank", "d", epoch); return err }},
		{"NewUserStreams", func(ctx context.Context) error {
			_, err := NewUserStreams(ctx, nc, StreamOptions{Prefix: "down"})
			return err
		}},
	}
	check := func(limit, bound time.Duration) {
		t.Helper()
		for _, c := range calls {
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			start := time.Now()
			err := c.f(ctx)
			took := time.Since(start)
			cancel()
			if !errors.Is(err, server.ErrClusterUnavailable) {
				t.Errorf("%s with NATS down: %v, want server.ErrClusterUnavailable", c.name, err)
			}
			if took > bound {
				t.Errorf("%s took %v with a %v deadline", c.name, took, limit)
			}
			t.Logf("%s: %v after %v", c.name, err, took)
		}
	}
	stop()
	check(2*time.Second, 3*time.Second) // the first may be sent before the client sees the loss
	deadline := time.Now().Add(callTimeout)
	for nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("the client still thinks it is connected")
		}
		time.Sleep(10 * time.Millisecond) // polling the client's state
	}
	check(time.Hour, 3*time.Second) // disconnected: no call waits for its deadline

	restart()
	for !nc.IsConnected() {
		if time.Now().After(deadline.Add(callTimeout)) {
			t.Fatal("the client did not reconnect")
		}
		time.Sleep(10 * time.Millisecond) // polling the client's state
	}
	var e, id uint64
	var err error
	for { // JetStream may take a moment to have the stream again after a restart
		if e, id, err = u.Append(ctxT(t), "frank", []byte("again"), ""); err == nil || time.Now().After(deadline.Add(2*callTimeout)) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling JetStream's readiness
	}
	if err != nil || e != epoch || id != 2 {
		t.Fatalf("append after NATS came back = (%d, %d), %v; want (%d, 2)", e, id, err, epoch)
	}
	expectSince(t, u, "frank", epoch, 0, seq(1, 2), true, epoch, 2)
}

// benchServers runs f against the embedded server and the Debian v2.9 binary.
func benchServers(b *testing.B, f func(b *testing.B, u *UserStreams)) {
	b.Run("embedded", func(b *testing.B) {
		f(b, openStreams(b, connect(b, testkit.NATS(b).URL()), StreamOptions{Prefix: "bench"}))
	})
	b.Run("nats29", func(b *testing.B) {
		f(b, openStreams(b, connect(b, testkit.NATSProcess(b).URL()), StreamOptions{Prefix: "bench"}))
	})
}

// BenchmarkUserStreamAppend measures appends per second of 128-byte payloads: from one
// goroutine, from 4 goroutines on distinct users, and from 4 on one user (every append
// of the others is a compare-and-set conflict to retry).
func BenchmarkUserStreamAppend(b *testing.B) {
	benchServers(b, func(b *testing.B, u *UserStreams) {
		payload := make([]byte, 128)
		run := func(b *testing.B, goroutines int, sameUser bool) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			var wg sync.WaitGroup
			per := b.N / goroutines
			start := time.Now()
			for g := range goroutines {
				user := fmt.Sprintf("%s-%d", b.Name(), g)
				if sameUser {
					user = b.Name()
				}
				wg.Go(func() {
					for range per {
						if _, _, err := u.Append(context.Background(), user, payload, ""); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(per*goroutines)/time.Since(start).Seconds(), "appends/s")
		}
		b.Run("1goroutine", func(b *testing.B) { run(b, 1, false) })
		b.Run("4goroutines-4users", func(b *testing.B) { run(b, 4, false) })
		b.Run("4goroutines-1user", func(b *testing.B) { run(b, 4, true) })
	})
}

// BenchmarkUserStreamSince measures a resume's read: the newest message only, and a
// full buffer of 256 (one request per message).
func BenchmarkUserStreamSince(b *testing.B) {
	benchServers(b, func(b *testing.B, u *UserStreams) {
		var epoch uint64
		for range 256 {
			epoch, _ = appendOK(b, u, "replay", "0123456789abcdef", "")
		}
		for _, n := range []uint64{1, walkMax, walkMax + 1, 256} {
			b.Run(fmt.Sprintf("msgs=%d", n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					msgs, rec, _, _, err := u.Since(context.Background(), "replay", epoch, 256-n)
					if err != nil || !rec || uint64(len(msgs)) != n {
						b.Fatalf("Since = %d messages, %v, %v", len(msgs), rec, err)
					}
				}
			})
		}
	})
}
