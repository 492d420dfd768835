package cluster

import (
	"testing"

	"github.com/tether-gw/tether/protocol"
)

// Every row of PROTOCOL.md §11's resume table, with 12 messages in a buffer of 5 (E =
// 7, L = 12), and what Resume records for the device afterwards.
func testResumeTable(t *testing.T, url, prefix string) {
	u := openStreams(t, connect(t, url), StreamOptions{Prefix: prefix, Buffer: 5})
	const user, L, E = "ivy", 12, 7
	var ep uint64
	for range L {
		ep, _ = appendOK(t, u, user, "p", "")
	}
	for dev, a := range map[string]uint64{"ka7": 7, "ka5": 5, "kb9": 9, "kb0": 0} {
		if err := u.Ack(ctxT(t), user, dev, ep, a); err != nil {
			t.Fatal(err)
		}
	}
	none, rec, lost := protocol.ResumeNone, protocol.ResumeRecovered, protocol.ResumeNotRecovered
	for _, c := range []struct {
		name          string
		device        string
		epoch, last   uint64
		res           protocol.ResumeResult
		lastID, first uint64 // first: the first message returned (0: none)
	}{
		{"no cursor, unknown device", "u1", 0, 0, none, L, 0},
		{"no cursor, no device", "", 0, 0, none, L, 0},
		{"no cursor, known device, A = E", "ka7", 0, 0, none, E, E + 1},
		{"no cursor, known device, A < E", "ka5", 0, 0, lost, L, 0},
		{"another epoch", "", ep ^ 1, 3, lost, L, 0},
		{"cursor ahead", "ka7", ep, L + 1, lost, L, 0},
		{"known device, A above the cursor", "kb9", ep, 5, rec, 9, 10},
		{"known device, both below E", "kb0", ep, E - 1, lost, L, 0},
		{"no device, cursor = E", "", ep, E, rec, E, E + 1},
		{"no device, cursor at L", "", ep, L, rec, L, 0},
		{"unknown device, cursor below E", "u2", ep, E - 1, lost, L, 0},
	} {
		r, err := u.Resume(ctxT(t), user, c.device, c.epoch, c.last)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var want []uint64
		if c.first != 0 {
			want = seq(c.first, L)
		}
		var got []uint64
		for _, m := range r.Msgs {
			got = append(got, m.ID)
		}
		if r.Result != c.res || r.Epoch != ep || r.LastID != c.lastID || len(got) != len(want) || (len(want) > 0 && got[0] != want[0]) {
			t.Fatalf("%s: Resume = %v (%d, %d) msgs %v; want %v (%d, %d) msgs %v", c.name, r.Result, r.Epoch, r.LastID, got, c.res, ep, c.lastID, want)
		}
		if c.device != "" {
			if a, known, err := u.Acked(ctxT(t), user, c.device, ep); err != nil || !known || a < c.lastID {
				t.Fatalf("%s: afterwards Acked = %d %v %v; want at least %d, known", c.name, a, known, err, c.lastID)
			}
		}
	}

	// A new user gets an epoch before any message, and the first message is in it.
	r, err := u.Resume(ctxT(t), "jay", "phone", 0, 0)
	if err != nil || r.Result != none || r.Epoch == 0 || r.LastID != 0 {
		t.Fatalf("new user: Resume = %+v, %v", r, err)
	}
	if e, id := appendOK(t, u, "jay", "p", ""); e != r.Epoch || id != 1 {
		t.Fatalf("first message of a begun sequence = (%d, %d), want (%d, 1)", e, id, r.Epoch)
	}
	if r2, err := u.Resume(ctxT(t), "jay", "phone", 0, 0); err != nil || r2.Result != none || r2.LastID != 0 || len(r2.Msgs) != 1 {
		t.Fatalf("known device of the new user: Resume = %+v, %v; want message 1", r2, err)
	}
}
