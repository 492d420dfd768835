package cluster_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// TestClusterSimultaneousLogins: one device logging in on two nodes at the same moment,
// before either node has heard of the other's connection: exactly one connection stays,
// the other is closed with REPLACED, every time. A device logging in on one node after
// the other's login is known still replaces the older one.
func TestClusterSimultaneousLogins(t *testing.T) {
	_, nodes := startCluster(t, 2, func(o *server.Options) { o.DevicePolicy = server.DevicesOnePerUser })
	for round := range 10 {
		user := fmt.Sprintf("twin%d", round)
		var wg sync.WaitGroup
		cs := make([]*client.Client, 2)
		trs := make([]*testkit.Transitions[client.State], 2)
		for i := range 2 {
			trs[i] = &testkit.Transitions[client.State]{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				cs[i] = dial(t, nodes[i], user, "phone", client.Options{OnStateChange: trs[i].Record})
			}()
		}
		wg.Wait()
		testkit.WaitFor(t, "one of the two closed", func() bool {
			return cs[0].State() == client.StateClosed || cs[1].State() == client.StateClosed
		})
		// The survivor stays: both nodes agree on it.
		alive := 0
		for i := range 2 {
			if cs[i].State() != client.StateClosed {
				alive++
				continue
			}
			if _, ok := trs[i].Find(client.StateClosed, closeCode(protocol.CloseReplaced)); !ok {
				t.Fatalf("round %d: node %d's connection closed without REPLACED: %s", round, i, trs[i].Dump())
			}
		}
		if alive != 1 {
			t.Fatalf("round %d: %d connections of one device stay", round, alive)
		}
		for _, n := range nodes {
			testkit.WaitFor(t, "the cluster counts one connection", func() bool {
				local := len(n.srv.UserConns(user))
				return local+n.broker.RemoteCount(server.CountUser, user) == 1
			})
		}
		for _, c := range cs {
			c.Close()
		}
	}
}
