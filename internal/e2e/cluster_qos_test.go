package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/server"
)

// qosLedger records the QoS1 pushes a service had accepted for each user and the ones
// each user's application was handed, to count what a fault lost or duplicated.
type qosLedger struct {
	mu   sync.Mutex
	sent map[string][]string      // accepted, in push order
	got  map[string][]client.Push // handed to the application, in order
	errs []string
}

func newQoSLedger() *qosLedger {
	return &qosLedger{sent: map[string][]string{}, got: map[string][]client.Push{}}
}

// onPush returns the OnPush of user's client: QoS1 pushes go to the ledger, others to
// other (which may be nil).
func (l *qosLedger) onPush(user string, other func(client.Push)) func(client.Push) {
	return func(p client.Push) {
		if !p.AckRequested {
			if other != nil {
				other(p)
			}
			return
		}
		l.mu.Lock()
		l.got[user] = append(l.got[user], p)
		l.mu.Unlock()
	}
}

// pushUntil pushes one QoS1 message to every user through svc every 20 ms until stop
// is closed, recording what was accepted. A refused push is recorded as an error (a
// cluster with its store up refuses none).
func (l *qosLedger) pushUntil(svc *service.Service, users []string, stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for round := 0; ; round++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for _, u := range users {
			payload := fmt.Sprintf("%s/%d", u, round)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := svc.PushUsers(ctx, []string{u}, []byte(payload), service.PushOptions{QoS1: true})
			cancel()
			l.mu.Lock()
			if err != nil {
				l.errs = append(l.errs, fmt.Sprintf("%s: %v", payload, err))
			} else {
				l.sent[u] = append(l.sent[u], payload)
			}
			l.mu.Unlock()
		}
	}
}

// moreRounds waits until n more pushes to user were accepted.
func (l *qosLedger) moreRounds(t *testing.T, user string, n int) {
	t.Helper()
	l.mu.Lock()
	want := len(l.sent[user]) + n
	l.mu.Unlock()
	testkit.WaitFor(t, fmt.Sprintf("%d more QoS1 rounds", n), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.sent[user]) >= want
	})
}

// settle waits until every user's application has at least what was accepted for it,
// then reports per user what was lost (accepted, never handed over) and duplicated
// (handed over twice), and fails on an order or id that went backwards.
func (l *qosLedger) settle(t *testing.T, users []string, within time.Duration) (sent, lost, dup int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		l.mu.Lock()
		behind := 0
		for _, u := range users {
			if len(l.got[u]) < len(l.sent[u]) {
				behind++
			}
		}
		l.mu.Unlock()
		if behind == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		t.Errorf("QoS1 push refused: %s", e)
	}
	for _, u := range users {
		seen := map[string]int{}
		var last uint64
		for _, p := range l.got[u] {
			seen[string(p.Payload)]++
			if p.MsgID <= last {
				t.Errorf("%s: id %d after %d (%q)", u, p.MsgID, last, p.Payload)
			}
			last = p.MsgID
		}
		for _, s := range l.sent[u] {
			sent++
			switch seen[s] {
			case 0:
				lost++
				t.Errorf("%s: %q accepted, never delivered", u, s)
			case 1:
			default:
				dup += seen[s] - 1
				t.Errorf("%s: %q delivered %d times", u, s, seen[s])
			}
		}
		// Delivered in the order accepted.
		var order []string
		for _, p := range l.got[u] {
			order = append(order, string(p.Payload))
		}
		if !slices.Equal(order, l.sent[u]) && len(order) == len(l.sent[u]) {
			t.Errorf("%s: delivered in another order than pushed", u)
		}
	}
	return sent, lost, dup
}

// TestClusterDrainQoS1: SIGTERM to one of three nodes under haproxy while a service on
// another pushes QoS1 messages to every user: the drained node's clients get GOAWAY,
// come back through haproxy on the other nodes, resume from the cluster's stream, and
// every accepted message reaches its user's application exactly once, in order.
func TestClusterDrainQoS1(t *testing.T) {
	const users = 12
	nodes, fe, _ := startCluster(t)
	led := newQoSLedger()
	names := make([]string, users)
	clients := make([]*client.Client, users)
	for i := range users {
		names[i] = "dq" + fmt.Sprint(i)
		c, err := client.Dial(testkit.Context(t, 10*time.Second), fe, client.Options{
			Token: names[i], DeviceID: "dev", BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
			Dialer: fromSource("127.0.0." + fmt.Sprint(90+i)), OnPush: led.onPush(names[i], nil),
		})
		if err != nil {
			t.Fatalf("%s through haproxy: %v", names[i], err)
		}
		t.Cleanup(func() { c.Close() })
		clients[i] = c
	}
	ctx := testkit.Context(t, 60*time.Second)
	drained, pusher := nodes[0], nodes[1]
	held, _, err := drained.online(ctx, names)
	if err != nil || len(held) == 0 {
		t.Fatalf("%s holds %v (%v)", drained.name, held, err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go led.pushUntil(pusher.svc, names, stop, &wg)
	testkit.WaitFor(t, "a few rounds pushed", func() bool {
		led.mu.Lock()
		defer led.mu.Unlock()
		return len(led.sent[names[users-1]]) >= 5
	})
	at := time.Now()
	if err := drained.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Every client it held is connected again, to another node.
	drainedID := uint16(0)
	for u := range held {
		drainedID = server.NodeOf(clients[slices.Index(names, u)].ConnID())
		break
	}
	testkit.WaitFor(t, "the drained node's clients on other nodes", func() bool {
		for u := range held {
			c := clients[slices.Index(names, u)]
			if c.State() != client.StateConnected || server.NodeOf(c.ConnID()) == drainedID {
				return false
			}
		}
		return true
	})
	t.Logf("%d clients of %s moved within %v of SIGTERM", len(held), drained.name, time.Since(at).Round(time.Millisecond))
	<-drained.exited
	led.moreRounds(t, names[users-1], 5) // pushes after the move, too
	close(stop)
	wg.Wait()
	sent, lost, dup := led.settle(t, names, 20*time.Second)
	t.Logf("drain with QoS1: %d messages accepted, %d lost, %d duplicated", sent, lost, dup)
}
