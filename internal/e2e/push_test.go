package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// A push to a user reaches every device; offline users are counted, and a push that
// reaches nobody fails with NOT_FOUND.
func TestPushUserEveryDevice(t *testing.T) {
	g := startGateway(t, nil, nil)
	phone, laptop := g.client("alice", "phone"), g.client("alice", "laptop")
	bob := g.client("bob", "phone")
	svc := g.service(nil)
	ctx := context.Background()

	res, err := svc.PushUsers(ctx, []string{"alice"}, []byte("hi alice"), service.PushOptions{})
	if err != nil || res.Delivered != 2 || res.Offline != 0 {
		t.Fatalf("PushUsers(alice) = %+v, %v; want delivered 2, offline 0", res, err)
	}
	if p := nextPush(t, phone); string(p.Payload) != "hi alice" || p.Channel != "" {
		t.Fatalf("phone got %+v", p)
	}
	if p := nextPush(t, laptop); string(p.Payload) != "hi alice" {
		t.Fatalf("laptop got %+v", p)
	}
	noPush(t, bob)

	res, err = svc.PushUsers(ctx, []string{"alice", "ghost", "bob"}, []byte("all"), service.PushOptions{})
	if err != nil || res.Delivered != 3 || res.Offline != 1 {
		t.Fatalf("PushUsers(alice, ghost, bob) = %+v, %v; want delivered 3, offline 1", res, err)
	}
	nextPush(t, phone)
	nextPush(t, laptop)
	nextPush(t, bob)

	res, err = svc.PushUsers(ctx, []string{"ghost"}, []byte("x"), service.PushOptions{})
	if e := serviceErr(t, err, protocol.ErrorNotFound); e.Offline != 1 || res.Offline != 1 {
		t.Fatalf("push to ghost: %+v, result %+v; want offline 1", e, res)
	}
	if !service.IsNotFound(err) {
		t.Fatal("IsNotFound = false")
	}
	if v := g.metric(`tether_control_fails_total{code="4008",reason="NOT_FOUND"}`); v != 1 {
		t.Fatalf("NOT_FOUND fails = %v, want 1", v)
	}

	// Exclude skips one of the user's devices.
	res, err = svc.PushUsers(ctx, []string{"alice"}, []byte("not the phone"), service.PushOptions{Exclude: []uint64{phone.ConnID()}})
	if err != nil || res.Delivered != 1 {
		t.Fatalf("PushUsers exclude = %+v, %v", res, err)
	}
	if p := nextPush(t, laptop); string(p.Payload) != "not the phone" {
		t.Fatalf("laptop got %q", p.Payload)
	}
	noPush(t, phone)
}

// Connection pushes, QoS1 pushes and broadcasts.
func TestPushConnsQoSAndBroadcast(t *testing.T) {
	g := startGateway(t, nil, nil)
	a, b := g.client("alice", "d1"), g.client("bob", "d1")
	svc := g.service(nil)
	ctx := context.Background()

	res, err := svc.PushConns(ctx, []uint64{b.ConnID(), 999999}, []byte("to b"), service.PushOptions{})
	if err != nil || res.Delivered != 1 || res.Offline != 1 {
		t.Fatalf("PushConns = %+v, %v; want delivered 1, offline 1", res, err)
	}
	if p := nextPush(t, b); string(p.Payload) != "to b" {
		t.Fatalf("b got %q", p.Payload)
	}
	noPush(t, a)
	_, err = svc.PushConns(ctx, []uint64{999999}, []byte("x"), service.PushOptions{})
	serviceErr(t, err, protocol.ErrorNotFound)

	res, err = svc.PushUsers(ctx, []string{"alice"}, []byte("qos"), service.PushOptions{QoS1: true})
	if err != nil || res.Delivered != 1 || res.MsgIDs["alice"] == 0 {
		t.Fatalf("QoS1 push = %+v, %v; want delivered 1 and a msg id", res, err)
	}
	if p := nextPush(t, a); !p.AckRequested || p.MsgID != res.MsgIDs["alice"] || string(p.Payload) != "qos" {
		t.Fatalf("QoS1 push arrived as %+v, want acked msg %d", p, res.MsgIDs["alice"])
	}

	res, err = svc.Broadcast(ctx, []byte("everyone"))
	if err != nil || res.Delivered != 2 {
		t.Fatalf("Broadcast = %+v, %v; want delivered 2", res, err)
	}
	nextPush(t, a)
	nextPush(t, b)

	// "all" with exclude is everyone but those connections.
	res, err = svc.Broadcast(ctx, []byte("not a"), a.ConnID())
	if err != nil || res.Delivered != 1 {
		t.Fatalf("Broadcast excluding a = %+v, %v; want delivered 1", res, err)
	}
	if p := nextPush(t, b); string(p.Payload) != "not a" {
		t.Fatalf("b got %q", p.Payload)
	}
	// Excluding everyone reaches nobody: NOT_FOUND, as for any push that reaches nobody.
	_, err = svc.Broadcast(ctx, []byte("nobody"), a.ConnID(), b.ConnID())
	serviceErr(t, err, protocol.ErrorNotFound)
	if _, err := svc.PushUsers(ctx, []string{"alice"}, []byte("marker"), service.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := nextPush(t, a); string(p.Payload) != "marker" {
		t.Fatalf("excluded a got %q before the marker", p.Payload)
	}
}

// Room pushes honour the exclude list; an unknown room fails with NOT_FOUND.
func TestPushRoomWithExclude(t *testing.T) {
	g := startGateway(t, nil, nil)
	ctx := testkit.Context(t, 5*time.Second)
	a, b, c := g.client("alice", "d1"), g.client("bob", "d1"), g.client("carol", "d1")
	for _, cl := range []interface {
		Subscribe(context.Context, string) error
	}{a, b, c} {
		if err := cl.Subscribe(ctx, "match-1"); err != nil {
			t.Fatal(err)
		}
	}
	svc := g.service(nil)
	res, err := svc.PushRoom(ctx, "match-1", []byte("goal"), b.ConnID())
	if err != nil || res.Delivered != 2 {
		t.Fatalf("PushRoom = %+v, %v; want delivered 2", res, err)
	}
	if p := nextPush(t, a); string(p.Payload) != "goal" || p.Channel != "match-1" {
		t.Fatalf("a got %+v", p)
	}
	if p := nextPush(t, c); string(p.Payload) != "goal" {
		t.Fatalf("c got %+v", p)
	}
	// b was excluded: the next thing it gets is a later marker.
	if _, err := svc.PushUsers(ctx, []string{"bob"}, []byte("marker"), service.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := nextPush(t, b); string(p.Payload) != "marker" {
		t.Fatalf("excluded member got %q before the marker", p.Payload)
	}

	// A room push with every member excluded reaches nobody: NOT_FOUND, offline 0.
	_, err = svc.PushRoom(ctx, "match-1", []byte("x"), a.ConnID(), b.ConnID(), c.ConnID())
	if e := serviceErr(t, err, protocol.ErrorNotFound); e.Offline != 0 {
		t.Fatalf("all-excluded room push: offline %d, want 0", e.Offline)
	}
	_, err = svc.PushRoom(ctx, "no-such-room", []byte("x"))
	serviceErr(t, err, protocol.ErrorNotFound)
	_, err = svc.PushRoom(ctx, string(make([]byte, 300)), []byte("x"))
	serviceErr(t, err, protocol.ErrorBadRequest)
}
