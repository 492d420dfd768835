package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// TestClusterNATSLongOutage: while node1 is cut off from NATS, even past the node
// timeout (7 s, checked on the 3 s heartbeat tick), it keeps the other nodes (it cannot
// tell them dead: it is the one cut off) and answers a kick of, and a push to, a user
// held elsewhere with FAIL 4009 UNAVAILABLE, never NOT_FOUND or "offline".
func TestClusterNATSLongOutage(t *testing.T) {
	n1, _, _, remote, _, ns := natsLossCluster(t, 6, "gap-room")
	ns.Kill()
	testkit.WaitFor(t, "node1 sees NATS gone", func() bool { return clusterGauge(t, n1, "tether_cluster_nats_connected") == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, kerr := n1.svc.KickUsers(ctx, []string{remote}, protocol.CloseKicked, "gap")
	// Past the node timeout (and a heartbeat tick): a node cut off from NATS keeps the
	// other nodes, since it cannot tell, and answers for their users UNAVAILABLE.
	end := time.Now().Add(clusterNodeTimeout + clusterHeartbeat + time.Second)
	<-time.After(time.Until(end)) // the behaviour under test is what happens after it
	if n := clusterGauge(t, n1, "tether_cluster_nodes"); n != 3 {
		t.Errorf("node1 forgot the other nodes while it was the one cut off: %v nodes", n)
	}
	_, perr := n1.svc.PushUsers(ctx, []string{remote}, []byte("long"), service.PushOptions{})
	if failCode(kerr) != protocol.ErrorUnavailable {
		t.Errorf("kick of %s (another node's user) without NATS: %v (code %d), want the cluster-unavailable FAIL", remote, kerr, failCode(kerr))
	}
	if failCode(perr) != protocol.ErrorUnavailable {
		t.Errorf("push to %s (another node's user) after %v without NATS: %v (code %d), want the cluster-unavailable FAIL, not offline",
			remote, clusterNodeTimeout, perr, failCode(perr))
	}
}
