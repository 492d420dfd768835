package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
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

// The tests in this file push a numbered QoS1 stream to clients while their connections
// are cut, from the Go API and through the control port, and require every client to end
// with every number exactly once, in order.

// The gateway's resume counters, as its /metrics exposition names them.
const (
	recovered    = `tether_resumes_total{result="recovered"}`
	notRecovered = `tether_resumes_total{result="not_recovered"}`
)

// streamSink is one client of a numbered stream: the numbers it was pushed, in arrival
// order, and the dialer that can cut its connection.
type streamSink struct {
	mu     sync.Mutex
	got    []uint32
	dialer testkit.CutDialer
}

// dialSink connects a client for user on device that reconnects quickly and appends each
// push's big-endian number to a new sink; mutate (may be nil) adjusts the options. The
// client is closed when the test ends.
func dialSink(t *testing.T, addr, user, device string, mutate func(o *client.Options)) *streamSink {
	t.Helper()
	sk := &streamSink{}
	o := client.Options{
		Token:      user,
		DeviceID:   device,
		BackoffMin: time.Millisecond,
		BackoffMax: 20 * time.Millisecond,
		Dialer:     sk.dialer.Dial,
		OnPush: func(p client.Push) {
			sk.mu.Lock()
			sk.got = append(sk.got, binary.BigEndian.Uint32(p.Payload))
			sk.mu.Unlock()
		},
	}
	if mutate != nil {
		mutate(&o)
	}
	c, err := client.Dial(context.Background(), addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return sk
}

// wantStream waits up to 20 s for msgs numbers and then requires exactly 0..msgs-1, in
// order; status says what else to report when they do not arrive in time.
func (sk *streamSink) wantStream(t *testing.T, user string, msgs int, status func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		sk.mu.Lock()
		n := len(sk.got)
		sk.mu.Unlock()
		if n >= msgs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d messages; %s", user, n, msgs, status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	sk.mu.Lock()
	defer sk.mu.Unlock()
	for n, v := range sk.got {
		if v != uint32(n) {
			t.Fatalf("%s: message %d is %d (got %d messages)", user, n, v, len(sk.got))
		}
	}
	if len(sk.got) != msgs {
		t.Fatalf("%s: %d messages, want exactly %d", user, len(sk.got), msgs)
	}
}

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
	g := startGateway(t, func(o *server.Options) { o.Heartbeat = time.Second; o.ResumeBuffer = msgs }, nil)
	s := g.srv
	sinks := make([]*streamSink, users)
	for i := range users {
		sinks[i] = dialSink(t, s.Addr().String(), cutUser(i), "dev", func(o *client.Options) {
			// Every session counts as stable, so the backoff stays at its floor and
			// reconnects keep up with the cuts (this test is about loss, not pacing).
			o.StableAfter = time.Nanosecond
		})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := uint32(0); n < msgs; n++ {
		for i := range users {
			if _, err := s.PushUsers([]string{cutUser(i)}, binary.BigEndian.AppendUint32(nil, n), server.PushOptions{QoS1: true}); err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(10) == 0 { // about 50 cuts per user over the run
			i := rng.IntN(users)
			switch rng.IntN(3) {
			case 0:
				s.KickUser(cutUser(i), protocol.CloseServerBusy, "cut")
			case 1:
				sinks[i].dialer.Cut()
			case 2:
				for _, c := range s.UserConns(cutUser(i)) {
					c.Close(protocol.CloseGoingAway, "moving")
				}
			}
		}
		if n%20 == 0 {
			time.Sleep(time.Millisecond) // let reconnects interleave with the stream
		}
	}
	for i, sk := range sinks {
		sk.wantStream(t, cutUser(i), msgs, func() string {
			return fmt.Sprintf("resumes recovered %v, not recovered %v", g.serverMetric(recovered), g.serverMetric(notRecovered))
		})
	}
	if r := g.serverMetric(recovered); r < 50 {
		t.Fatalf("only %v resumes: the cuts did not bite", r)
	}
	t.Logf("%v resumes, %v messages replayed", g.serverMetric(recovered), g.serverMetric("tether_resume_replayed_total"))
	if f := g.serverMetric(notRecovered); f != 0 {
		t.Fatalf("%v resumes failed", f)
	}
}

func cutUser(i int) string { return "stream-" + string(rune('a'+i)) }

// TestQoS1StreamSurvivesCuts is the hard way: a backend service pushes a
// numbered QoS1 stream to several users through the control port while their
// connections are cut at random moments — closed by the server (a kick with a reconnect
// code), by the client (its socket closed under the SDK), and by GOAWAY. Every client
// must end with every number exactly once, in order.
func TestQoS1StreamSurvivesCuts(t *testing.T) {
	// Room for a whole test stream: a loaded machine may stall a client past the
	// default 256 messages, and the test is about no loss within the window.
	g := startGateway(t, func(o *server.Options) { o.ResumeBuffer = 4096 }, nil)
	svc, err := service.Dial(context.Background(), g.port.Addr().String(), service.Options{Secret: testSecret, Name: "streamer"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()

	const users, msgs = 3, 600
	sinks := make([]*streamSink, users)
	for i := range users {
		sinks[i] = dialSink(t, g.srv.Addr().String(), streamUser(i), "phone", nil)
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
		sk.wantStream(t, streamUser(i), msgs, func() string { return "after the stream ended" })
	}
	for _, kind := range []string{"server", "client", "goaway"} {
		if cuts[kind] < 5 {
			t.Fatalf("only %d %s cuts: the test did not exercise them (%v)", cuts[kind], kind, cuts)
		}
	}
	t.Logf("cuts: %v", cuts)
}

func streamUser(i int) string { return "streamer-" + string(rune('a'+i)) }
