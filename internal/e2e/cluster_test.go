package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// TestClusterBehindHAProxy: three tetherd processes on a real nats-server (the Debian
// binary), behind haproxy with PROXY v2 and /readyz checks. Clients spread over the
// nodes; a service on one node's control port reaches every one of them by user, by
// room and by broadcast, and kicks a user who is on another node.
func TestClusterBehindHAProxy(t *testing.T) {
	const users = 9
	nodes, fe, _ := startCluster(t) // cluster_fault_test.go: nats-server, three tetherd, haproxy

	var mu sync.Mutex
	got := map[string][]string{}
	names := make([]string, users)
	clients := make([]*client.Client, users)
	for i := range users {
		u := "member" + strconv.Itoa(i)
		names[i] = u
		c, err := client.Dial(testkit.Context(t, 10*time.Second), fe, client.Options{
			Token: u, DeviceID: "dev", NoReconnect: true, Dialer: fromSource("127.0.0." + strconv.Itoa(40+i)),
			OnPush: func(p client.Push) {
				mu.Lock()
				got[u] = append(got[u], string(p.Payload))
				mu.Unlock()
			},
		})
		if err != nil {
			t.Fatalf("%s through haproxy: %v", u, err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Subscribe(testkit.Context(t, 5*time.Second), "all-hands"); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	ctx := testkit.Context(t, 60*time.Second)
	// Round robin spread them: every node holds some (PRESENCE names each connection's
	// node, and answers for the whole cluster from any node).
	pr, err := nodes[0].svc.Presence(ctx, names, nil)
	if err != nil {
		t.Fatal(err)
	}
	where := map[string]uint16{}
	held := map[uint16]int{}
	for u, cs := range pr.Users {
		if len(cs) != 1 {
			t.Fatalf("%s has %d connections in the cluster's presence", u, len(cs))
		}
		where[u] = cs[0].Node
		held[cs[0].Node]++
	}
	if len(held) != 3 || pr.Nodes != 3 {
		t.Fatalf("connections per node %v (%d nodes answered): haproxy did not spread the clients", held, pr.Nodes)
	}
	st, err := nodes[0].svc.Stats(ctx)
	if err != nil || st.Authenticated != users {
		t.Fatalf("cluster stats from node1: %+v, %v; want %d authenticated", st, err, users)
	}
	has := func(u, payload string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range got[u] {
			if p == payload {
				return true
			}
		}
		return false
	}
	svc := nodes[0].svc
	// The nodes learn each other's users and room members within the count flush.
	testkit.WaitFor(t, "the room's size across the cluster", func() bool {
		r, err := svc.Presence(ctx, nil, []string{"all-hands"})
		return err == nil && r.Rooms["all-hands"] == users
	})
	for _, u := range names {
		res, err := svc.PushUsers(ctx, []string{u}, []byte("hi "+u), service.PushOptions{})
		if err != nil || res.Delivered != 1 {
			t.Fatalf("push to %s through node1: %+v, %v", u, res, err)
		}
	}
	if res, err := svc.PushRoom(ctx, "all-hands", []byte("room")); err != nil || res.Delivered != users {
		t.Fatalf("room push through node1: %+v, %v; want %d delivered", res, err, users)
	}
	if _, err := svc.Broadcast(ctx, []byte("everyone")); err != nil {
		t.Fatal(err)
	}
	for _, u := range names {
		for _, want := range []string{"hi " + u, "room", "everyone"} {
			testkit.WaitFor(t, u+" got "+want, func() bool { return has(u, want) })
		}
	}
	// A kick through node1 of a user held by another node.
	victim := -1
	for i, u := range names {
		if where[u] != st.Node {
			victim = i
			break
		}
	}
	if victim < 0 {
		t.Fatal("no user on another node than node1")
	}
	if _, err := svc.KickUsers(ctx, []string{names[victim]}, protocol.CloseKicked, "bye"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, names[victim]+" kicked on its node", func() bool { return clients[victim].State() == client.StateClosed })

	// A node's /metrics carries the cluster series and passes promtool.
	resp, err := http.Get("http://" + nodes[1].admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"tether_cluster_nodes 3", "tether_cluster_nats_connected 1", "tether_cluster_sent_messages_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	testkit.Promtool(t, string(body))
}
