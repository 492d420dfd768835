package e2e

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// TestQoS1StreamSurvivesCuts is the hard way: a backend service pushes a
// numbered QoS1 stream to several users through the control port while their
// connections are cut at random moments — closed by the server (a kick with a reconnect
// code), by the client (its socket closed under the SDK), and by GOAWAY. Every client
// must end with every number exactly once, in order.
func TestQoS1StreamSurvivesCuts(t *testing.T) {
	// Room for a whole test stream: a loaded machine may stall a client past the
	// default 256 messages, and the test is about no loss within the window.
	g := startGateway(t, func(o *server.Options) { o.ResumeBuffer = 4096 })
	svc, err := service.Dial(context.Background(), g.port.Addr().String(), service.Options{Secret: testSecret, Name: "streamer"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()

	const users, msgs = 3, 600
	type sink struct {
		mu     sync.Mutex
		got    []uint32
		dialer testkit.CutDialer
	}
	sinks := make([]*sink, users)
	for i := range users {
		sk := &sink{}
		sinks[i] = sk
		c, err := client.Dial(context.Background(), g.srv.Addr().String(), client.Options{
			Token:      streamUser(i),
			DeviceID:   "phone",
			BackoffMin: time.Millisecond,
			BackoffMax: 20 * time.Millisecond,
			Dialer:     sk.dialer.Dial,
			OnPush: func(p client.Push) {
				sk.mu.Lock()
				sk.got = append(sk.got, binary.BigEndian.Uint32(p.Payload))
				sk.mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}

	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	cuts := map[string]int{}
	for n := uint32(0); n < msgs; n++ {
		for i := range users {
			_, err := svc.PushUsers(ctx, []string{streamUser(i)}, binary.BigEndian.AppendUint32(nil, n), service.PushOptions{QoS1: true})
			if err != nil && !service.IsNotFound(err) { // offline between reconnects is fine: buffered
				t.Fatalf("push %d: %v", n, err)
			}
		}
		if rng.IntN(8) != 0 {
			continue
		}
		i := rng.IntN(users)
		switch rng.IntN(3) {
		case 0: // the server closes it, with a code that says "reconnect"
			if cs := g.srv.UserConns(streamUser(i)); len(cs) > 0 {
				if _, err := svc.KickConns(ctx, []uint64{cs[0].ID()}, protocol.CloseServerBusy, "cut"); err == nil {
					cuts["server"]++
				}
			}
		case 1: // the client's socket dies under it
			sinks[i].dialer.Cut()
			cuts["client"]++
		case 2: // the server asks it to move
			if cs := g.srv.UserConns(streamUser(i)); len(cs) > 0 && cs[0].GoAway(0, 100*time.Millisecond, "move") == nil {
				cuts["goaway"]++
			}
		}
	}
	for i, sk := range sinks {
		deadline := time.Now().Add(20 * time.Second)
		for {
			sk.mu.Lock()
			n := len(sk.got)
			sk.mu.Unlock()
			if n >= msgs {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d messages after the stream ended", streamUser(i), n, msgs)
			}
			time.Sleep(5 * time.Millisecond)
		}
		sk.mu.Lock()
		for n, v := range sk.got {
			if v != uint32(n) {
				t.Fatalf("%s: message %d is %d", streamUser(i), n, v)
			}
		}
		if len(sk.got) != msgs {
			t.Fatalf("%s: %d messages, want exactly %d", streamUser(i), len(sk.got), msgs)
		}
		sk.mu.Unlock()
	}
	for _, kind := range []string{"server", "client", "goaway"} {
		if cuts[kind] < 5 {
			t.Fatalf("only %d %s cuts: the test did not exercise them (%v)", cuts[kind], kind, cuts)
		}
	}
	t.Logf("cuts: %v", cuts)
}

func streamUser(i int) string { return "streamer-" + string(rune('a'+i)) }
