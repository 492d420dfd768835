package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// TestClusterNATSLongOutageGap pins two gaps of the NATS-loss semantics (issue 11:
// "cross-node operations fail fast with a typed error the service sees"); it FAILS on
// the code as it stands:
//   - a kick through node1 of a user held by another node, while NATS is down, answers
//     NOT_FOUND ("no addressed user or connection is online"): Server.KickUser drops
//     the publish error;
//   - once NATS has been down longer than the node timeout (7 s, checked on the 3 s
//     heartbeat tick), node1 has forgotten every other node (they fell silent), so a
//     push to a user held elsewhere answers NOT_FOUND with offline 1, as if the user
//     were offline, instead of the cluster-unavailable FAIL it got in the first seconds.
func TestClusterNATSLongOutageGap(t *testing.T) {
	n1, _, _, remote, _, ns := natsLossCluster(t, 6, "gap-room")
	ns.Kill()
	testkit.WaitFor(t, "node1 sees NATS gone", func() bool { return clusterGauge(t, n1, "tether_cluster_nats_connected") == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, kerr := n1.svc.KickUsers(ctx, []string{remote}, protocol.CloseKicked, "gap")
	// Node1 forgets the silent nodes: the event the second check waits for.
	deadline := time.Now().Add(clusterNodeTimeout + clusterHeartbeat + 5*time.Second)
	for clusterGauge(t, n1, "tether_cluster_nodes") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("node1 never forgot the other nodes while NATS was down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, perr := n1.svc.PushUsers(ctx, []string{remote}, []byte("long"), service.PushOptions{})
	if kerr == nil || service.IsNotFound(kerr) {
		t.Errorf("kick of %s (another node's user) without NATS: %v (code %d), want the cluster-unavailable FAIL", remote, kerr, failCode(kerr))
	}
	if perr == nil || service.IsNotFound(perr) {
		t.Errorf("push to %s (another node's user) after %v without NATS: %v (code %d), want the cluster-unavailable FAIL, not offline",
			remote, clusterNodeTimeout, perr, failCode(perr))
	}
}
