package cluster

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// lastSeq is the stream's last sequence: it moves whenever anything is stored.
func lastSeq(t testing.TB, u *UserStreams) uint64 {
	t.Helper()
	info, err := u.stream.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

func touchOK(t testing.TB, u *UserStreams, user string, olderThan time.Duration, want bool) {
	t.Helper()
	if touched, err := u.Touch(ctxT(t), user, olderThan); err != nil || touched != want {
		t.Fatalf("Touch(%q, %v) = %v, %v; want %v", user, olderThan, touched, err, want)
	}
}

// A user touched more often than Window keeps their epoch for longer than 2×Window
// although every message aged out: the next message is the one after the last, in the
// same epoch, and a cursor below the last aged-out message is not recovered.
func testTouchKeepsEpoch(t *testing.T, url, prefix string) {
	const window = 2 * time.Second
	u := openStreams(t, connect(t, url), StreamOptions{Prefix: prefix, Window: window})
	const user = "kim"
	epoch, _ := appendOK(t, u, user, "p", "")
	appendOK(t, u, user, "p", "")
	start := time.Now()
	deadline := start.Add(2*window + 3*callTimeout)
	touches := 0
	for {
		touched, err := u.Touch(ctxT(t), user, window/4)
		if err != nil {
			t.Fatal(err)
		}
		if touched {
			touches++
		}
		msgs, _, ce, cl, err := u.Since(ctxT(t), user, epoch, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ce != epoch || cl != 2 {
			t.Fatalf("after %v of touches the position is (%d, %d), want (%d, 2)", time.Since(start), ce, cl, epoch)
		}
		if len(msgs) == 0 && time.Since(start) > 2*window {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages %v still stored after %v", msgs, time.Since(start))
		}
		time.Sleep(50 * time.Millisecond) // the sweeper's pace, well under window/4
	}
	if touches < 2 {
		t.Fatalf("%d touches in %v", touches, time.Since(start))
	}
	if e, id := appendOK(t, u, user, "p3", ""); e != epoch || id != 3 {
		t.Fatalf("append after the touches = (%d, %d), want (%d, 3)", e, id, epoch)
	}
	expectSince(t, u, user, epoch, 2, seq(3, 3), true, epoch, 3)
	expectSince(t, u, user, epoch, 1, seq(3, 3), false, epoch, 3)
}

// Touch stores nothing for a user with nothing stored, nor when the head is younger
// than olderThan (cached or read); it stores one marker otherwise, at the head's
// position, also when its cached head is stale; appends go on after it.
func testTouchWhen(t *testing.T, url, prefix string) {
	o := StreamOptions{Prefix: prefix}
	u := openStreams(t, connect(t, url), o)
	u2 := openStreams(t, connect(t, url), o)
	appendOK(t, u, "other", "x", "") // the stream is not empty
	before := lastSeq(t, u)
	touchOK(t, u, "nobody", 0, false)
	if got := lastSeq(t, u); got != before {
		t.Fatalf("Touch of a user with nothing stored stored something: last sequence %d, was %d", got, before)
	}
	expectSince(t, u, "nobody", 0, 0, nil, false, 0, 0)
	if _, err := u.Touch(ctxT(t), "", 0); !errors.Is(err, ErrEmptyUser) {
		t.Fatalf("Touch of an empty user = %v, want ErrEmptyUser", err)
	}

	const user = "lee"
	epoch, _ := appendOK(t, u, user, "p", "")
	before = lastSeq(t, u)
	touchOK(t, u, user, time.Hour, false)  // the cached head
	touchOK(t, u2, user, time.Hour, false) // read
	if got := lastSeq(t, u); got != before {
		t.Fatalf("Touch of a recent head stored something: last sequence %d, was %d", got, before)
	}
	touchOK(t, u, user, 0, true)
	if got := lastSeq(t, u); got != before+1 {
		t.Fatalf("after a touch the last sequence is %d, want %d", got, before+1)
	}
	expectSince(t, u, user, epoch, 1, nil, true, epoch, 1)
	expectSince(t, u, user, epoch, 0, seq(1, 1), true, epoch, 1)
	// u2's cached head is the message before the marker: its append is refused once.
	if e, id := appendOK(t, u2, user, "p", ""); e != epoch || id != 2 {
		t.Fatalf("append after a touch = (%d, %d), want (%d, 2)", e, id, epoch)
	}
	// u's cached head is the marker, stale now: Touch reads the head and touches it.
	touchOK(t, u, user, 0, true)
	expectSince(t, u, user, epoch, 0, seq(1, 2), true, epoch, 2)
	if e, id := appendOK(t, u, user, "p", ""); e != epoch || id != 3 {
		t.Fatalf("append after a second touch = (%d, %d), want (%d, 3)", e, id, epoch)
	}
	// Begin after a touch is at the marker's position.
	touchOK(t, u, user, 0, true)
	if e, l, err := u2.Begin(ctxT(t), user); err != nil || e != epoch || l != 3 {
		t.Fatalf("Begin after a touch = (%d, %d) %v; want (%d, 3)", e, l, err, epoch)
	}
}

// Two nodes, two goroutines each, append for one user with a forced touch after each
// append: the ids are exactly 1..n in one epoch, and Since returns them all, in order,
// whichever way it reads.
func testTouchConcurrent(t *testing.T, url, prefix string) {
	const each = 15
	o := StreamOptions{Prefix: prefix}
	nodes := []*UserStreams{openStreams(t, connect(t, url), o), openStreams(t, connect(t, url), o)}
	const user = "moe"
	type pos struct{ epoch, id uint64 }
	got := make(chan pos, 4*each)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for _, u := range nodes {
		for range 2 {
			wg.Go(func() {
				for range each {
					e, id, err := u.Append(ctxT(t), user, []byte("p"), "")
					if err != nil {
						errs <- err
						return
					}
					got <- pos{e, id}
					if _, err := u.Touch(ctxT(t), user, 0); err != nil {
						errs <- err
						return
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
		if p.epoch != epoch {
			t.Fatalf("epoch %d, another append had %d", p.epoch, epoch)
		}
		ids = append(ids, p.id)
	}
	slices.Sort(ids)
	const n = 4 * each
	if !slices.Equal(ids, seq(1, n)) {
		t.Fatalf("ids are not 1..%d each once: %v", n, ids)
	}
	expectSince(t, nodes[0], user, epoch, 0, seq(1, n), true, epoch, n)
	expectSince(t, nodes[1], user, epoch, n-3, seq(n-2, n), true, epoch, n)
	expectSince(t, nodes[1], user, epoch, n, nil, true, epoch, n)
}

// Markers anywhere in the chain: Since (by walk and by scan) returns exactly the
// messages after the cursor, and a marker with id k stands for k+1 in deciding whether
// the buffer still reaches the cursor.
func testMarkersInChain(t *testing.T, url, prefix string) {
	u := openStreams(t, connect(t, url), StreamOptions{Prefix: prefix, Buffer: 3})
	const user = "ned"
	var epoch uint64
	for range 3 {
		epoch, _ = appendOK(t, u, user, "p", "")
	}
	touchOK(t, u, user, 0, true) // [2 3 M3]
	expectSince(t, u, user, epoch, 3, nil, true, epoch, 3)
	expectSince(t, u, user, epoch, 1, seq(2, 3), true, epoch, 3)
	expectSince(t, u, user, epoch, 0, seq(2, 3), false, epoch, 3)
	touchOK(t, u, user, 0, true) // [3 M3 M3]
	expectSince(t, u, user, epoch, 2, seq(3, 3), true, epoch, 3)
	expectSince(t, u, user, epoch, 1, seq(3, 3), false, epoch, 3)
	touchOK(t, u, user, 0, true) // [M3 M3 M3]
	expectSince(t, u, user, epoch, 3, nil, true, epoch, 3)
	expectSince(t, u, user, epoch, 2, nil, false, epoch, 3)
	expectSince(t, u, user, epoch, 4, nil, false, epoch, 3) // ahead
	if e, id := appendOK(t, u, user, "p", ""); e != epoch || id != 4 {
		t.Fatalf("append after markers only = (%d, %d), want (%d, 4)", e, id, epoch)
	}
	// [M3 M3 4]
	expectSince(t, u, user, epoch, 3, seq(4, 4), true, epoch, 4)
	expectSince(t, u, user, epoch, 2, seq(4, 4), false, epoch, 4)
	appendOK(t, u, user, "p", "")
	touchOK(t, u, user, 0, true)
	appendOK(t, u, user, "p", "") // [5 M5 6]
	expectSince(t, u, user, epoch, 4, seq(5, 6), true, epoch, 6)
	expectSince(t, u, user, epoch, 5, seq(6, 6), true, epoch, 6)
	expectSince(t, u, user, epoch, 3, seq(5, 6), false, epoch, 6)

	// A longer chain, starting with Begin's marker and a touch of it, then M4 at the head.
	u = openStreams(t, connect(t, url), StreamOptions{Prefix: prefix + "b", Buffer: 20})
	const user2 = "oda"
	epoch, _, err := u.Begin(ctxT(t), user2)
	if err != nil {
		t.Fatal(err)
	}
	touchOK(t, u, user2, 0, true)               // M0 M0
	for i, touches := range []int{0, 2, 0, 1} { // then M0 1 M1 M1 2 3 M3 4
		if e, id := appendOK(t, u, user2, "m"+strconv.Itoa(i+1), ""); e != epoch || id != uint64(i+1) {
			t.Fatalf("append %d = (%d, %d), want (%d, %d)", i+1, e, id, epoch, i+1)
		}
		for range touches {
			touchOK(t, u, user2, 0, true)
		}
	}
	for c := uint64(0); c <= 4; c++ {
		msgs := expectSince(t, u, user2, epoch, c, seq(c+1, 4), true, epoch, 4)
		for _, m := range msgs {
			if string(m.Payload) != "m"+strconv.Itoa(int(m.ID)) || m.Mark {
				t.Fatalf("message %d = %q mark %v", m.ID, m.Payload, m.Mark)
			}
		}
	}
	expectSince(t, u, user2, epoch, 5, seq(1, 4), false, epoch, 4)
	touchOK(t, u, user2, 0, true) // the head is a marker
	for c := uint64(0); c <= 4; c++ {
		expectSince(t, u, user2, epoch, c, seq(c+1, 4), true, epoch, 4)
	}
	expectSince(t, u, user2, epoch^1, 2, seq(1, 4), false, epoch, 4)
}

// Observe decodes markers (Begin's and Touch's) with Mark set and messages without, and
// caches the newest head it saw: a Touch of a user whose observed head is recent then
// makes no request (it succeeds with the node's connection closed), one of a user whose
// head is old tries to store.
func testObserve(t *testing.T, url, prefix string) {
	o := StreamOptions{Prefix: prefix}
	a := openStreams(t, connect(t, url), o)
	ncB, err := nats.Connect(url, nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer ncB.Close()
	b := openStreams(t, ncB, o)
	sub, err := ncB.SubscribeSync(b.LiveSubjects())
	if err != nil {
		t.Fatal(err)
	}
	if err := ncB.Flush(); err != nil {
		t.Fatal(err)
	}
	epoch, _ := appendOK(t, a, "may", "p", "")
	touchOK(t, a, "may", 0, true)
	ned, _, err := a.Begin(ctxT(t), "ned")
	if err != nil {
		t.Fatal(err)
	}
	var live [3]*nats.Msg
	for i := range live {
		if live[i], err = sub.NextMsg(callTimeout); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []struct {
		user  string
		epoch uint64
		id    uint64
		mark  bool
	}{{"may", epoch, 1, false}, {"may", epoch, 1, true}, {"ned", ned, 0, true}} {
		user, e, m, err := b.Observe(live[i])
		if err != nil || user != want.user || e != want.epoch || m.ID != want.id || m.Mark != want.mark || m.Time.IsZero() {
			t.Fatalf("Observe(live %d) = %q %d %+v, %v; want %+v", i, user, e, m, err, want)
		}
		if _, _, dm, err := DecodeLive(live[i]); err != nil || dm.Mark != want.mark {
			t.Fatalf("DecodeLive(live %d) = %+v, %v; want mark %v", i, dm, err, want.mark)
		}
	}
	b.Observe(live[0]) // older than the cached head: ignored
	markSeq, _ := strconv.ParseUint(live[1].Header.Get("Nats-Sequence"), 10, 64)
	if h, ok := b.cachedHead(b.userSubject("may"), false); !ok || h.seq != markSeq || h.id != 1 || h.epoch != epoch {
		t.Fatalf("cached head of may = %+v %v, want the marker at sequence %d", h, ok, markSeq)
	}
	ncB.Close()
	touchOK(t, b, "may", time.Hour, false)
	touchOK(t, b, "ned", time.Hour, false)
	if _, err := b.Touch(ctxT(t), "may", 0); !errors.Is(err, server.ErrClusterUnavailable) {
		t.Fatalf("Touch of an old head with the connection closed = %v, want ErrClusterUnavailable", err)
	}
}

// Resume of a user whose buffer holds only markers: a cursor at the last id is
// recovered with nothing to send, one below it is not; the next message follows.
func testResumeMarkerHead(t *testing.T, url, prefix string) {
	u := openStreams(t, connect(t, url), StreamOptions{Prefix: prefix, Buffer: 2})
	const user = "pat"
	appendOK(t, u, user, "p", "")
	epoch, _ := appendOK(t, u, user, "p", "")
	touchOK(t, u, user, 0, true)
	touchOK(t, u, user, 0, true) // [M2 M2]
	rec, lost, none := protocol.ResumeRecovered, protocol.ResumeNotRecovered, protocol.ResumeNone
	check := func(device string, e, l uint64, res protocol.ResumeResult, want []uint64) {
		t.Helper()
		r, err := u.Resume(ctxT(t), user, device, e, l)
		if err != nil {
			t.Fatal(err)
		}
		var ids []uint64
		for _, m := range r.Msgs {
			ids = append(ids, m.ID)
		}
		wantLast := uint64(2)
		if len(want) > 0 {
			wantLast = want[0] - 1
		}
		if r.Result != res || r.Epoch != epoch || r.LastID != wantLast || !slices.Equal(ids, want) {
			t.Fatalf("Resume(%q, %d, %d) = %v (%d, %d) %v; want %v (%d, %d) %v", device, e, l, r.Result, r.Epoch, r.LastID, ids, res, epoch, wantLast, want)
		}
	}
	check("d", epoch, 2, rec, nil)
	check("d2", epoch, 1, lost, nil)
	check("", 0, 0, none, nil)
	if e, id := appendOK(t, u, user, "p", ""); e != epoch || id != 3 {
		t.Fatalf("append after the markers = (%d, %d), want (%d, 3)", e, id, epoch)
	}
	check("d", epoch, 2, rec, seq(3, 3))
}
