package e2e

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// The gateway's resume counters, as its /metrics exposition names them.
const (
	recovered    = `tether_resumes_total{result="recovered"}`
	notRecovered = `tether_resumes_total{result="not_recovered"}`
)

// TestQoS1NoLossUnderCuts is the hard way: a backend pushes a numbered QoS1 stream to
// several users while their connections are cut at random moments, from the server side
// (kick with a reconnect code), the client side (socket closed under the SDK) and by
// GOAWAY-like drains of single connections. Every client must end with every number
// exactly once and in order.
func TestQoS1NoLossUnderCuts(t *testing.T) {
	const users, msgs = 4, 2000
	// The resume buffer holds the whole stream: this test is about losing nothing
	// within the resume window, and on a loaded machine a client may stall for longer
	// than the default 256 messages take to push (then "not recovered" is correct).
	g := startGateway(t, func(o *server.Options) { o.Heartbeat = time.Second; o.ResumeBuffer = msgs })
	s := g.srv
	type sink struct {
		mu  sync.Mutex
		got []uint32
	}
	sinks := make([]*sink, users)
	conns := make([]*client.Client, users)
	var dialers [users]*testkit.CutDialer
	for i := range users {
		sk := &sink{}
		sinks[i] = sk
		dialers[i] = &testkit.CutDialer{}
		c, err := client.Dial(context.Background(), s.Addr().String(), client.Options{
			Token:      userName(i),
			DeviceID:   "dev",
			BackoffMin: time.Millisecond,
			BackoffMax: 20 * time.Millisecond,
			// Every session counts as stable, so the backoff stays at its floor and
			// reconnects keep up with the cuts (this test is about loss, not pacing).
			StableAfter: time.Nanosecond,
			Dialer:      dialers[i].Dial,
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
		conns[i] = c
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := uint32(0); n < msgs; n++ {
		for i := range users {
			if _, err := s.PushUsers([]string{userName(i)}, binary.BigEndian.AppendUint32(nil, n), server.PushOptions{QoS1: true}); err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(10) == 0 { // about 50 cuts per user over the run
			i := rng.IntN(users)
			switch rng.IntN(3) {
			case 0:
				s.KickUser(userName(i), protocol.CloseServerBusy, "cut")
			case 1:
				dialers[i].Cut()
			case 2:
				for _, c := range s.UserConns(userName(i)) {
					c.Close(protocol.CloseGoingAway, "moving")
				}
			}
		}
		if n%20 == 0 {
			time.Sleep(time.Millisecond) // let reconnects interleave with the stream
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
				t.Fatalf("%s: %d of %d messages; resumes recovered %v, not recovered %v",
					userName(i), n, msgs, g.serverMetric(recovered), g.serverMetric(notRecovered))
			}
			time.Sleep(5 * time.Millisecond)
		}
		sk.mu.Lock()
		for n, v := range sk.got {
			if v != uint32(n) {
				sk.mu.Unlock()
				t.Fatalf("%s: message %d is %d (got %d messages)", userName(i), n, v, len(sk.got))
			}
		}
		if len(sk.got) != msgs {
			t.Fatalf("%s: %d messages, want %d", userName(i), len(sk.got), msgs)
		}
		sk.mu.Unlock()
	}
	if r := g.serverMetric(recovered); r < 50 {
		t.Fatalf("only %v resumes: the cuts did not bite", r)
	}
	t.Logf("%v resumes, %v messages replayed", g.serverMetric(recovered), g.serverMetric("tether_resume_replayed_total"))
	if f := g.serverMetric(notRecovered); f != 0 {
		t.Fatalf("%v resumes failed", f)
	}
}

func userName(i int) string { return "stream-" + string(rune('a'+i)) }
