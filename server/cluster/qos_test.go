package cluster_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// recvQoS reads n QoS1 pushes from c and returns them, failing on one without
// ACK_REQUESTED.
func recvQoS(t *testing.T, c *client.Client, n int) []client.Push {
	t.Helper()
	var ps []client.Push
	for range n {
		p := testkit.Recv(t, c.Pushes(), wait)
		if !p.AckRequested || p.MsgID == 0 {
			t.Fatalf("push %q (id %d) without ACK_REQUESTED", p.Payload, p.MsgID)
		}
		ps = append(ps, p)
	}
	return ps
}

// quiet fails if c receives a push within d.
func quiet(t *testing.T, c *client.Client, d time.Duration) {
	t.Helper()
	select {
	case p := <-c.Pushes():
		t.Fatalf("unexpected push %q (id %d)", p.Payload, p.MsgID)
	case <-time.After(d):
	}
}

// TestClusterQoS1ResumeAcrossNodes: the user's QoS1 stream is the cluster's. A push
// from node A reaches the device on node B; pushes made while the device is offline
// are kept; the device reconnecting to node C with its cursor gets exactly what it
// missed, in order, with the ids continuing; a push from B then reaches it on C.
func TestClusterQoS1ResumeAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	o := client.Options{}
	cl := dial(t, b, "liz", "phone", o)
	seen(t, nodes, b, server.CountUser, "liz", 1)
	res, err := a.srv.PushUsers([]string{"liz"}, []byte("q1"), server.PushOptions{QoS1: true})
	if err != nil || res.Delivered != 1 || res.Offline != 0 || res.MsgIDs["liz"] != 1 {
		t.Fatalf("QoS1 push from the other node: %+v, %v", res, err)
	}
	if p := recvQoS(t, cl, 1)[0]; string(p.Payload) != "q1" || p.MsgID != 1 {
		t.Fatalf("got %q id %d, want q1 id 1", p.Payload, p.MsgID)
	}
	epoch, last := cl.Cursor()
	if epoch != cl.LastAuth().Epoch || last != 1 {
		t.Fatalf("cursor (%d, %d), AUTH_OK epoch %d", epoch, last, cl.LastAuth().Epoch)
	}
	cl.Close()
	seen(t, nodes, b, server.CountUser, "liz", 0)

	// Offline everywhere: kept by the cluster, and said to be offline.
	for i, n := range []*node{a, b} {
		res, err := n.srv.PushUsers([]string{"liz"}, []byte(fmt.Sprintf("q%d", i+2)), server.PushOptions{QoS1: true})
		if err != nil || res.Offline != 1 || res.MsgIDs["liz"] != uint64(i+2) {
			t.Fatalf("QoS1 push for a user on no node: %+v, %v", res, err)
		}
	}
	// Back on another node with her cursor: exactly q2, q3.
	o.ResumeEpoch, o.ResumeLastID = epoch, last
	c2 := dial(t, c, "liz", "phone", o)
	if got := c2.LastAuth(); got.Resume != protocol.ResumeRecovered || got.Epoch != epoch || got.LastID != 1 {
		t.Fatalf("resume on node C: %+v", got)
	}
	ps := recvQoS(t, c2, 2)
	for i, p := range ps {
		if want := fmt.Sprintf("q%d", i+2); string(p.Payload) != want || p.MsgID != uint64(i+2) {
			t.Fatalf("replay %d: %q id %d, want %s id %d", i, p.Payload, p.MsgID, want, i+2)
		}
	}
	seen(t, nodes, c, server.CountUser, "liz", 1)
	res, err = b.srv.PushUsers([]string{"liz"}, []byte("q4"), server.PushOptions{QoS1: true})
	if err != nil || res.Delivered != 1 {
		t.Fatalf("push from B: %+v, %v", res, err)
	}
	if p := recvQoS(t, c2, 1)[0]; string(p.Payload) != "q4" || p.MsgID != 4 {
		t.Fatalf("got %q id %d, want q4 id 4", p.Payload, p.MsgID)
	}
	quiet(t, c2, 200*time.Millisecond)

	// A second device, new to the stream, on node A without a cursor: only what
	// comes from now on; and a push by connection id reaches only that device.
	d2 := dial(t, a, "liz", "tablet", client.Options{})
	if got := d2.LastAuth(); got.Resume != protocol.ResumeNone || got.Epoch != epoch || got.LastID != 4 {
		t.Fatalf("new device: %+v", got)
	}
	res, err = a.srv.PushConns([]uint64{d2.LastAuth().ConnID}, []byte("tab"), server.PushOptions{QoS1: true})
	if err != nil || res.Delivered != 1 || res.MsgIDs["liz"] != 5 {
		t.Fatalf("QoS1 push by id: %+v, %v", res, err)
	}
	if p := recvQoS(t, d2, 1)[0]; string(p.Payload) != "tab" || p.MsgID != 5 {
		t.Fatalf("tablet got %q id %d", p.Payload, p.MsgID)
	}
	// Excluding the phone (held by node C) from node B: only the tablet gets it.
	res, err = b.srv.PushUsers([]string{"liz"}, []byte("not-phone"), server.PushOptions{QoS1: true, Exclude: []uint64{c2.LastAuth().ConnID}})
	if err != nil {
		t.Fatal(err)
	}
	if p := recvQoS(t, d2, 1)[0]; string(p.Payload) != "not-phone" || p.MsgID != 6 {
		t.Fatalf("tablet got %q id %d", p.Payload, p.MsgID)
	}
	quiet(t, c2, 300*time.Millisecond)

	// A QoS1 push by id from node B to the tablet's connection on node A, and to an
	// id of node A that does not exist.
	gone := d2.LastAuth().ConnID + 1000
	res, err = b.srv.PushConns([]uint64{d2.LastAuth().ConnID, gone}, []byte("by-id"), server.PushOptions{QoS1: true})
	if err != nil || res.Delivered != 1 || res.Offline != 1 || res.MsgIDs["liz"] != 7 {
		t.Fatalf("QoS1 push by id to another node: %+v, %v", res, err)
	}
	if p := recvQoS(t, d2, 1)[0]; string(p.Payload) != "by-id" || p.MsgID != 7 {
		t.Fatalf("tablet got %q id %d", p.Payload, p.MsgID)
	}
	quiet(t, c2, 300*time.Millisecond)
}

// TestClusterQoS1Order: two nodes pushing to one user at once, connected to a third:
// the device gets every message once, ids 1..N with no gap, in that order.
func TestClusterQoS1Order(t *testing.T) {
	_, nodes := startCluster(t, 3, nil)
	cl := dial(t, nodes[2], "max", "d", client.Options{})
	seen(t, nodes, nodes[2], server.CountUser, "max", 1)
	const per = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				if _, err := nodes[i].srv.PushUsers([]string{"max"}, []byte(fmt.Sprintf("%d-%d", i, j)), server.PushOptions{QoS1: true}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ps := recvQoS(t, cl, 2*per)
	next := map[byte]int{}
	for i, p := range ps {
		if p.MsgID != uint64(i+1) {
			t.Fatalf("push %d has id %d", i, p.MsgID)
		}
		var from, seq int
		fmt.Sscanf(string(p.Payload), "%d-%d", &from, &seq)
		if seq != next[byte(from)] {
			t.Fatalf("from node %d: got %d, want %d (a node's own pushes reordered)", from, seq, next[byte(from)])
		}
		next[byte(from)]++
	}
	quiet(t, cl, 200*time.Millisecond)
}

// TestClusterQoS1StoreDown: with NATS gone a QoS1 push is refused (nothing stored, so
// nothing is sent that a resume could not find), a plain push to a local user still
// works, and a client still authenticates; when NATS returns QoS1 works again.
func TestClusterQoS1StoreDown(t *testing.T) {
	ns, nodes := startCluster(t, 2, nil)
	a := nodes[0]
	cl := dial(t, a, "nat", "d", client.Options{})
	ns.Shutdown()
	testkit.WaitFor(t, "node A sees NATS gone", func() bool { return a.srv.ClusterDown() })
	if _, err := a.srv.PushUsers([]string{"nat"}, []byte("q"), server.PushOptions{QoS1: true}); err == nil {
		t.Fatal("QoS1 push with the store gone succeeded")
	} else if !errors.Is(err, server.ErrClusterUnavailable) {
		t.Fatalf("QoS1 push with the store gone: %v, want ErrClusterUnavailable", err)
	}
	if res, err := a.srv.PushUsers([]string{"nat"}, []byte("plain"), server.PushOptions{}); err != nil || res.Delivered != 1 {
		t.Fatalf("plain push to a local user: %+v, %v", res, err)
	}
	if got := push(t, cl); got != "plain" {
		t.Fatalf("got %q", got)
	}
	ended := make(chan error, 4)
	c2 := dial(t, a, "nat2", "d", client.Options{OnStateChange: func(st client.State, err error) {
		if err != nil {
			ended <- err
		}
	}})
	if c2.LastAuth().Epoch == 0 {
		t.Fatal("AUTH_OK without an epoch while the store is down")
	}
	ns.Restart()
	testkit.WaitFor(t, "node A back on NATS", func() bool { return !a.srv.ClusterDown() })
	testkit.WaitFor(t, "QoS1 works again", func() bool {
		_, err := a.srv.PushUsers([]string{"nat"}, []byte("again"), server.PushOptions{QoS1: true})
		return err == nil
	})
	if p := recvQoS(t, cl, 1)[0]; string(p.Payload) != "again" {
		t.Fatalf("after the outage: %q", p.Payload)
	}
	// The connection made during the outage was served a stream of this node's own:
	// it is sent away to resume from the cluster's.
	if err := testkit.Recv(t, ended, wait); !closeCode(protocol.CloseGoingAway)(err) {
		t.Fatalf("connection made during the outage ended with %v, want GOING_AWAY", err)
	}
}

// TestClusterQoS1EpochOutlivesWindow: a user connected for longer than the resume
// window without a QoS1 message keeps the stream's epoch (the node touches it), so the
// next push continues the ids on the same connection instead of starting an epoch
// that would have to close it.
func TestClusterQoS1EpochOutlivesWindow(t *testing.T) {
	const window = 3 * time.Second
	_, nodes := startCluster(t, 2, func(o *server.Options) { o.ResumeWindow = window })
	a, b := nodes[0], nodes[1]
	cl := dial(t, b, "old", "d", client.Options{})
	seen(t, nodes, b, server.CountUser, "old", 1)
	if _, err := a.srv.PushUsers([]string{"old"}, []byte("first"), server.PushOptions{QoS1: true}); err != nil {
		t.Fatal(err)
	}
	if p := recvQoS(t, cl, 1)[0]; p.MsgID != 1 {
		t.Fatalf("first push id %d", p.MsgID)
	}
	epoch := cl.LastAuth().Epoch
	// The time that passes is the test: more than twice the window, connected.
	end := time.Now().Add(2*window + time.Second)
	for time.Now().Before(end) {
		if cl.State() != client.StateConnected {
			t.Fatalf("connection closed while idle: %v", cl.State())
		}
		time.Sleep(100 * time.Millisecond)
	}
	res, err := a.srv.PushUsers([]string{"old"}, []byte("later"), server.PushOptions{QoS1: true})
	if err != nil || res.MsgIDs["old"] != 2 {
		t.Fatalf("push after 2 windows: %+v, %v (want id 2 in the same epoch)", res, err)
	}
	if p := recvQoS(t, cl, 1)[0]; string(p.Payload) != "later" || p.MsgID != 2 {
		t.Fatalf("got %q id %d", p.Payload, p.MsgID)
	}
	if e, _ := cl.Cursor(); e != epoch || cl.State() != client.StateConnected {
		t.Fatalf("epoch %d (was %d), state %v", e, epoch, cl.State())
	}
}
