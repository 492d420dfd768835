package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

const testSecret = "chat-test-secret-0123456789"

// rig is an in-process gateway (embedded: the same code -embedded runs) with the chat
// service connected to its control port over loopback, on a fake clock.
type rig struct {
	t     *testing.T
	gw    *embedded
	chat  *Chat
	store Store
	clock *testkit.FakeClock
}

func newRig(t *testing.T, store Store) *rig {
	t.Helper()
	gw, err := startEmbedded("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", testSecret, testkit.Logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	r := &rig{t: t, gw: gw, store: store, clock: testkit.NewFakeClock()}
	r.chat = NewChat(ChatOptions{Store: store, Now: r.clock.Now, Logger: testkit.Logger()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.chat.Connect(ctx, gw.ControlAddr(), testSecret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.chat.Close() })
	return r
}

// user is one client of the gateway, recording the chat events pushed to it.
type user struct {
	t    *testing.T
	name string
	c    *client.Client
	mu   sync.Mutex
	evs  []Event
}

// login connects name from device with an optional resume cursor (epoch, last id).
func (r *rig) login(name, device string, cursor ...uint64) *user {
	r.t.Helper()
	u := &user{t: r.t, name: name}
	o := client.Options{Token: name, DeviceID: device, NoReconnect: true, OnPush: func(p client.Push) {
		var ev Event
		if err := json.Unmarshal(p.Payload, &ev); err != nil {
			r.t.Errorf("%s: push is not a chat event: %q", name, p.Payload)
			return
		}
		u.mu.Lock()
		u.evs = append(u.evs, ev)
		u.mu.Unlock()
	}}
	if len(cursor) == 2 {
		o.ResumeEpoch, o.ResumeLastID = cursor[0], cursor[1]
	}
	c, err := client.Dial(context.Background(), r.gw.srv.Addr().String(), o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	u.c = c
	return u
}

// call sends req on route and decodes the reply into out (if not nil).
func (u *user) call(route string, req, out any) error {
	b, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := u.c.Send(ctx, route, b)
	if err != nil {
		return err
	}
	if out != nil {
		return json.Unmarshal(reply, out)
	}
	return nil
}

func (u *user) must(route string, req, out any) {
	u.t.Helper()
	if err := u.call(route, req, out); err != nil {
		u.t.Fatalf("%s %s: %v", u.name, route, err)
	}
}

func (u *user) send(conv, text string) Message {
	u.t.Helper()
	var rep messageReply
	u.must(RouteSend, sendRequest{Conv: conv, Type: "text", Text: text}, &rep)
	return rep.Message
}

// wait returns the first event (in arrival order) that ok accepts, polling.
func (u *user) wait(what string, ok func(Event) bool) Event {
	u.t.Helper()
	var found Event
	testkit.WaitFor(u.t, u.name+": "+what, func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		for _, ev := range u.evs {
			if ok(ev) {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

func (u *user) events() []Event {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.evs)
}

func isMessage(text string) func(Event) bool {
	return func(ev Event) bool { return ev.Type == EventMessage && ev.Message.Text == text }
}

// errCode is the ERROR code of a failed call.
func errCode(err error) protocol.ErrorCode {
	var se *client.ServerError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func (r *rig) roomSize(room string) int {
	res, err := r.chat.svc.Presence(context.Background(), nil, []string{room})
	if err != nil {
		r.t.Fatal(err)
	}
	return res.Rooms[room]
}

// TestDirectAndGroup: a one-to-one message reaches both members, a group puts its
// online members in its room and its messages reach every member; outsiders and
// malformed messages are refused.
func TestDirectAndGroup(t *testing.T) {
	r := newRig(t, newMemoryStore())
	alice, bob, carol, dave := r.login("alice", "a1"), r.login("bob", "b1"), r.login("carol", "c1"), r.login("dave", "d1")

	var dm conversationReply
	alice.must(RouteGroups, groupsRequest{Op: "dm", User: "bob"}, &dm)
	if dm.Conv.ID != "dm:alice|bob" || dm.Conv.Kind != KindDM {
		t.Fatalf("dm: %+v", dm.Conv)
	}
	m := alice.send(dm.Conv.ID, "hi bob")
	if m.Seq != 1 || m.From != "alice" {
		t.Fatalf("sent %+v", m)
	}
	got := bob.wait("the direct message", isMessage("hi bob"))
	if got.Conversation == nil || got.Conversation.ID != dm.Conv.ID {
		t.Fatalf("message event without its conversation: %+v", got)
	}
	alice.wait("her own message, for her other devices", isMessage("hi bob"))

	var g conversationReply
	alice.must(RouteGroups, groupsRequest{Op: "create", Name: "team", Members: []string{"bob", "carol", "bob"}}, &g)
	if !slices.Equal(g.Conv.Members, []string{"alice", "bob", "carol"}) {
		t.Fatalf("group members %v", g.Conv.Members)
	}
	testkit.WaitFor(t, "three in the group's room", func() bool { return r.roomSize(g.Conv.ID) == 3 })
	carol.wait("the new group", func(ev Event) bool { return ev.Type == EventConversation && ev.Conversation.ID == g.Conv.ID })
	bob.send(g.Conv.ID, "hello team")
	alice.wait("the group message", isMessage("hello team"))
	carol.wait("the group message", isMessage("hello team"))

	err := dave.call(RouteSend, sendRequest{Conv: g.Conv.ID, Type: "text", Text: "let me in"}, nil)
	if errCode(err) != protocol.ErrorDenied {
		t.Fatalf("outsider's message: %v, want DENIED", err)
	}
	for _, bad := range []sendRequest{
		{Conv: g.Conv.ID, Type: "sticker", Text: "x"},
		{Conv: g.Conv.ID, Type: "text"},
		{Conv: g.Conv.ID, Type: "image"},
		{Conv: g.Conv.ID, Type: "image", Media: &Media{URL: "javascript:alert(1)", Mime: "image/png"}},
	} {
		if err := bob.call(RouteSend, bad, nil); errCode(err) != protocol.ErrorBadRequest {
			t.Errorf("%+v: %v, want BAD_REQUEST", bad, err)
		}
	}
	if err := bob.call(RouteSend, sendRequest{Conv: "g:nope", Type: "text", Text: "x"}, nil); errCode(err) != protocol.ErrorNotFound {
		t.Errorf("unknown conversation: %v, want NOT_FOUND", err)
	}

	// Media messages carry their metadata through.
	md := &Media{URL: "https://cdn.example/v.mp4", Mime: "video/mp4", Size: 1 << 20, DurationMS: 12000, Width: 1280, Height: 720, ThumbURL: "/t.png"}
	var rep messageReply
	carol.must(RouteSend, sendRequest{Conv: g.Conv.ID, Type: "video", Media: md}, &rep)
	ev := alice.wait("the video", func(ev Event) bool { return ev.Type == EventMessage && ev.Message.Type == "video" })
	if *ev.Message.Media != *md {
		t.Fatalf("video media %+v, want %+v", ev.Message.Media, md)
	}

	// dave joins, then bob leaves: the room follows.
	dave.must(RouteGroups, groupsRequest{Op: "join", Conv: g.Conv.ID}, nil)
	testkit.WaitFor(t, "four in the room", func() bool { return r.roomSize(g.Conv.ID) == 4 })
	bob.must(RouteGroups, groupsRequest{Op: "leave", Conv: g.Conv.ID}, nil)
	testkit.WaitFor(t, "three in the room", func() bool { return r.roomSize(g.Conv.ID) == 3 })
	if err := bob.call(RouteSend, sendRequest{Conv: g.Conv.ID, Type: "text", Text: "still here?"}, nil); errCode(err) != protocol.ErrorDenied {
		t.Fatalf("message after leaving: %v, want DENIED", err)
	}
}

// TestGroupRoomOnLogin: a member offline when the group was made is put in its room
// when it logs in (the "online" event), and gets the group in its history.
func TestGroupRoomOnLogin(t *testing.T) {
	r := newRig(t, newMemoryStore())
	alice := r.login("alice", "a1")
	var g conversationReply
	alice.must(RouteGroups, groupsRequest{Op: "create", Name: "later", Members: []string{"erin"}}, &g)
	testkit.WaitFor(t, "alice in the room", func() bool { return r.roomSize(g.Conv.ID) == 1 })
	erin := r.login("erin", "e1")
	testkit.WaitFor(t, "erin joined on login", func() bool { return r.roomSize(g.Conv.ID) == 2 })
	var h historyReply
	erin.must(RouteHistory, historyRequest{}, &h)
	if len(h.Conversations) != 1 || h.Conversations[0].Conv.ID != g.Conv.ID {
		t.Fatalf("erin's first load: %+v", h)
	}
}

// TestRecallWindow: only the sender recalls, only within the window; every member is
// told, and history keeps a tombstone.
func TestRecallWindow(t *testing.T) {
	r := newRig(t, newMemoryStore())
	alice, bob := r.login("alice", "a1"), r.login("bob", "b1")
	var dm conversationReply
	alice.must(RouteGroups, groupsRequest{Op: "dm", User: "bob"}, &dm)
	m := alice.send(dm.Conv.ID, "regret")
	bob.wait("the message", isMessage("regret"))

	if err := bob.call(RouteRecall, recallRequest{Conv: dm.Conv.ID, Seq: m.Seq}, nil); errCode(err) != protocol.ErrorDenied {
		t.Fatalf("recall by the recipient: %v, want DENIED", err)
	}
	r.clock.Advance(DefaultRecallWindow - time.Second)
	var rep messageReply
	alice.must(RouteRecall, recallRequest{Conv: dm.Conv.ID, Seq: m.Seq}, &rep)
	if !rep.Message.Recalled || rep.Message.Text != "" {
		t.Fatalf("recall reply %+v", rep.Message)
	}
	bob.wait("the recall", func(ev Event) bool { return ev.Type == EventRecall && ev.Seq == m.Seq && ev.User == "alice" })
	var h historyReply
	bob.must(RouteHistory, historyRequest{Conv: dm.Conv.ID}, &h)
	if len(h.Page.Messages) != 1 || !h.Page.Messages[0].Recalled || h.Page.Messages[0].Text != "" {
		t.Fatalf("history after recall: %+v", h.Page.Messages)
	}

	late := alice.send(dm.Conv.ID, "too late")
	r.clock.Advance(DefaultRecallWindow + time.Second)
	if err := alice.call(RouteRecall, recallRequest{Conv: dm.Conv.ID, Seq: late.Seq}, nil); errCode(err) != protocol.ErrorDenied {
		t.Fatalf("recall past the window: %v, want DENIED", err)
	}
}

// TestRecallReachesResumedClient: a client offline while a message is sent and
// recalled gets both when it resumes on the same device: it removes the message.
func TestRecallReachesResumedClient(t *testing.T) {
	r := newRig(t, newMemoryStore())
	alice, bob := r.login("alice", "a1"), r.login("bob", "b1")
	var dm conversationReply
	alice.must(RouteGroups, groupsRequest{Op: "dm", User: "bob"}, &dm)
	alice.send(dm.Conv.ID, "before")
	bob.wait("the first message", isMessage("before"))
	epoch, last := bob.c.Cursor()
	bob.c.Close()
	testkit.WaitFor(t, "bob offline", func() bool {
		res, err := r.chat.svc.Presence(context.Background(), []string{"bob"}, nil)
		return err == nil && len(res.Users["bob"]) == 0
	})

	m := alice.send(dm.Conv.ID, "oops")
	alice.must(RouteRecall, recallRequest{Conv: dm.Conv.ID, Seq: m.Seq}, nil)

	bob = r.login("bob", "b1", epoch, last)
	if res := bob.c.LastAuth().Resume; res != protocol.ResumeRecovered {
		t.Fatalf("resume %v, want recovered", res)
	}
	bob.wait("the recall after resuming", func(ev Event) bool { return ev.Type == EventRecall && ev.Seq == m.Seq })
	evs := bob.events()
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Type)
	}
	if len(evs) != 2 || evs[0].Type != EventMessage || evs[0].Message.Seq != m.Seq || evs[1].Type != EventRecall {
		t.Fatalf("after resuming bob got %v, want the missed message then its recall", kinds)
	}
}

// TestHistoryPaging: a first load lists the user's conversations with their newest
// page; pages of one conversation go back to the first message. Both stores.
func TestHistoryPaging(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) Store{
		"memory": func(*testing.T) Store { return newMemoryStore() },
		"sqlite": func(t *testing.T) Store {
			s, err := openSQLite(filepath.Join(t.TempDir(), "chat.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, open(t))
			alice := r.login("alice", "a1")
			var dm, g conversationReply
			alice.must(RouteGroups, groupsRequest{Op: "dm", User: "bob"}, &dm)
			alice.must(RouteGroups, groupsRequest{Op: "create", Name: "g", Members: []string{"bob"}}, &g)
			for i := 1; i <= 7; i++ {
				alice.send(dm.Conv.ID, fmt.Sprint("m", i))
			}
			alice.send(g.Conv.ID, "in the group")

			bob := r.login("bob", "b1")
			var first historyReply
			bob.must(RouteHistory, historyRequest{Limit: 3}, &first)
			if len(first.Conversations) != 2 || first.Conversations[0].Conv.ID != g.Conv.ID {
				t.Fatalf("first load: %+v", first.Conversations)
			}
			p := first.Conversations[1]
			var seen []string
			for {
				for i := len(p.Messages) - 1; i >= 0; i-- {
					seen = append(seen, p.Messages[i].Text)
				}
				if !p.More {
					break
				}
				var h historyReply
				bob.must(RouteHistory, historyRequest{Conv: dm.Conv.ID, Before: p.Messages[0].Seq, Limit: 3}, &h)
				p = *h.Page
			}
			if want := []string{"m7", "m6", "m5", "m4", "m3", "m2", "m1"}; !slices.Equal(seen, want) {
				t.Fatalf("paged back %v, want %v", seen, want)
			}
			carol := r.login("carol", "c1")
			if err := carol.call(RouteHistory, historyRequest{Conv: dm.Conv.ID}, nil); errCode(err) != protocol.ErrorDenied {
				t.Fatalf("history of someone else's conversation: %v, want DENIED", err)
			}
		})
	}
}

// TestReceipts: the recipient's QoS1 ACK (an ack event) becomes a delivery receipt
// pushed to the sender; its chat.read a read receipt; both are kept for history.
func TestReceipts(t *testing.T) {
	r := newRig(t, newMemoryStore())
	alice, bob := r.login("alice", "a1"), r.login("bob", "b1")
	var dm conversationReply
	alice.must(RouteGroups, groupsRequest{Op: "dm", User: "bob"}, &dm)
	m1 := alice.send(dm.Conv.ID, "one")
	m2 := alice.send(dm.Conv.ID, "two")
	bob.wait("the second message", isMessage("two"))
	alice.wait("the delivery receipt", func(ev Event) bool {
		return ev.Type == EventReceipt && ev.Kind == Delivered && ev.User == "bob" && ev.Seq == m2.Seq
	})
	for _, ev := range bob.events() {
		if ev.Type == EventReceipt {
			t.Fatalf("bob got a receipt for his own acknowledgement: %+v", ev)
		}
	}
	bob.must(RouteRead, readRequest{Conv: dm.Conv.ID, Seq: m1.Seq}, nil)
	alice.wait("the read receipt", func(ev Event) bool {
		return ev.Type == EventReceipt && ev.Kind == Read && ev.User == "bob" && ev.Seq == m1.Seq
	})
	var h historyReply
	alice.must(RouteHistory, historyRequest{Conv: dm.Conv.ID}, &h)
	if got := h.Page.Receipts["bob"]; got != (Receipt{Delivered: m2.Seq, Read: m1.Seq}) {
		t.Fatalf("bob's receipts in history: %+v", got)
	}
	// Reading again, or not as far, tells nobody anything new.
	n := len(alice.events())
	bob.must(RouteRead, readRequest{Conv: dm.Conv.ID, Seq: m1.Seq}, nil)
	bob.must(RouteSend, sendRequest{Conv: dm.Conv.ID, Type: "text", Text: "marker"}, nil)
	alice.wait("bob's marker", isMessage("marker"))
	if evs := alice.events()[n:]; len(evs) != 1 {
		t.Fatalf("after a repeated read alice got %+v, want only the marker", evs)
	}
}

// TestDeliveries: the msg-id map turns cumulative acks into delivered messages, also
// when the ack came before the ids were known, and forgets entries past their TTL.
func TestDeliveries(t *testing.T) {
	now := time.Unix(1000, 0)
	d := newDeliveries(time.Minute, 3)
	p := func(id uint64, seq int64) pending { return pending{msgID: id, conv: "c", seq: seq, from: "a", at: now} }
	for _, id := range []uint64{3, 1, 2} {
		if d.add("b", p(id, int64(id))) {
			t.Fatalf("id %d delivered before any ack", id)
		}
	}
	got := d.acked("b", 2, now)
	if len(got) != 2 || got[0].msgID != 1 || got[1].msgID != 2 {
		t.Fatalf("ack 2 delivered %+v", got)
	}
	if !d.add("b", p(2, 9)) {
		t.Fatal("an id already acknowledged is not delivered at once")
	}
	// maxPerUser 3: the oldest goes.
	for _, id := range []uint64{4, 5, 6} {
		d.add("b", p(id, int64(id)))
	}
	if got := d.acked("b", 10, now); len(got) != 3 || got[0].msgID != 4 {
		t.Fatalf("after the cap, ack 10 delivered %+v", got)
	}
	d.add("b", p(11, 11))
	if got := d.acked("b", 11, now.Add(2*time.Minute)); len(got) != 0 {
		t.Fatalf("an entry past its TTL was delivered: %+v", got)
	}
}
