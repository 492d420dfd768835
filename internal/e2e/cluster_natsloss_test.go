package e2e

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// natsLossCluster starts three nodes behind haproxy with users clients in one room and
// returns node1, a user node1 holds and its client, a user another node holds and its
// push sink, and the NATS server.
func natsLossCluster(t *testing.T, users int, room string) (n1 *tetherdProc, local string, lc *client.Client, remote string, rsink chan string, ns *testkit.NATSProc) {
	t.Helper()
	nodes, fe, ns := startCluster(t)
	names := make([]string, users)
	clients := make([]*client.Client, users)
	sinks := make([]chan string, users)
	for i := range users {
		names[i] = "nl" + strconv.Itoa(i)
		sinks[i] = make(chan string, 16)
		ch := sinks[i]
		c, err := client.Dial(testkit.Context(t, 10*time.Second), fe, client.Options{
			Token: names[i], DeviceID: "dev", BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
			Dialer: fromSource("127.0.0." + strconv.Itoa(120+i)),
			OnPush: func(p client.Push) {
				select {
				case ch <- string(p.Payload):
				default:
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Subscribe(testkit.Context(t, 5*time.Second), room); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	n1 = nodes[0]
	testkit.WaitFor(t, "node1 sees the whole room", func() bool { return roomSize(n1, room) == users })
	on, _, err := n1.online(testkit.Context(t, 5*time.Second), names)
	if err != nil {
		t.Fatal(err)
	}
	li, ri := -1, -1
	for i, u := range names {
		if on[u] > 0 {
			li = i
		} else {
			ri = i
		}
	}
	if li < 0 || ri < 0 {
		t.Fatalf("node1 holds %v of %v: want some but not all", on, names)
	}
	return n1, names[li], clients[li], names[ri], sinks[ri], ns
}

// failCode returns err's FAIL code, or 0.
func failCode(err error) protocol.ErrorCode {
	var se *service.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// TestClusterNATSLoss: NATS (the nats-server binary) is killed with SIGKILL under a
// running cluster. Node1 goes on serving its own clients (a push to a user it holds is
// delivered, its client's PING is answered); a push through node1 to a user held by
// another node fails at once (well under the service's request timeout) with a FAIL
// saying the cluster is unavailable, not NOT_FOUND; the outage shows in node1's metrics.
// When NATS comes back every node reconnects, and pushes through node1 reach the other
// node's user again.
func TestClusterNATSLoss(t *testing.T) {
	const room = "nl-room"
	n1, local, lc, remote, rsink, ns := natsLossCluster(t, 6, room)
	ctx := testkit.Context(t, 60*time.Second)

	ns.Kill()
	testkit.WaitFor(t, "node1 sees NATS gone", func() bool { return clusterGauge(t, n1, "tether_cluster_nats_connected") == 0 })
	errsBefore := clusterGauge(t, n1, "tether_cluster_publish_errors_total")

	start := time.Now()
	_, err := n1.svc.PushUsers(ctx, []string{remote}, []byte("lost"), service.PushOptions{})
	took := time.Since(start)
	t.Logf("push through node1 to %s on another node without NATS: %v (code %d) in %v", remote, err, failCode(err), took)
	if err == nil || service.IsNotFound(err) || !strings.Contains(err.Error(), "cluster unavailable") {
		t.Fatalf("push to a user on another node without NATS: %v, want a FAIL saying the cluster is unavailable", err)
	}
	if took > time.Second {
		t.Fatalf("the failing push took %v, want it to fail fast", took)
	}
	if after := clusterGauge(t, n1, "tether_cluster_publish_errors_total"); after <= errsBefore {
		t.Fatalf("tether_cluster_publish_errors_total %v -> %v: the outage does not show", errsBefore, after)
	}
	// Local service goes on.
	if res, err := n1.svc.PushUsers(ctx, []string{local}, []byte("local"), service.PushOptions{}); err != nil || res.Delivered != 1 {
		t.Fatalf("local push to %s without NATS: %+v, %v", local, res, err)
	}
	if _, err := lc.Ping(ctx); err != nil {
		t.Fatalf("node1's client PING without NATS: %v", err)
	}

	ns.Restart()
	testkit.WaitFor(t, "node1 back on NATS", func() bool { return clusterGauge(t, n1, "tether_cluster_nats_connected") == 1 })
	testkit.WaitFor(t, "node1 sees the whole room again", func() bool { return roomSize(n1, room) == 6 })
	// Delivered counts the other node's connections as it announced them, so it says 1
	// as soon as node1 is back, even while the other node is still reconnecting (and a
	// push published then is lost: cross-node pushes are at most once). So the test
	// pushes until one arrives.
	testkit.WaitFor(t, "a push through node1 reaching "+remote+" after NATS returned", func() bool {
		res, err := n1.svc.PushUsers(ctx, []string{remote}, []byte("back"), service.PushOptions{})
		if err != nil || res.Delivered != 1 {
			return false
		}
		for {
			select {
			case p := <-rsink:
				if p == "lost" {
					t.Fatalf("%s got the push refused during the outage", remote)
				}
				if p == "back" {
					return true
				}
			case <-time.After(200 * time.Millisecond):
				return false
			}
		}
	})
}
