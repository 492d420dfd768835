package server

import (
	"testing"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// The QoS1 counters move with what they name, on a made-up clock: a message that finds
// the window full, an ack-timeout resend, a reconnect's redelivery, and a connection
// closed because what it had not acknowledged left the buffer.
func TestQoS1Metrics(t *testing.T) {
	s, mc := startManual(t, func(o *Options) {
		o.QoS1Window = 2
		o.AckTimeout = time.Second
		o.Heartbeat = time.Hour
		o.ResumeBuffer = 3
	})
	m := s.metrics
	push := func() {
		t.Helper()
		if _, err := s.PushUsers([]string{"qm"}, []byte("x"), PushOptions{QoS1: true}); err != nil {
			t.Fatal(err)
		}
	}
	pushes := func(r *rawConn, n int, dup bool) {
		t.Helper()
		for range n {
			if f := r.expect(protocol.OpPush); f.Flags.Has(protocol.FlagDup) != dup {
				t.Fatalf("PUSH flags %v, want dup %v", f.Flags, dup)
			}
		}
	}
	want := func(what string, got, want uint64) {
		t.Helper()
		if got != want {
			t.Fatalf("%s = %d, want %d", what, got, want)
		}
	}

	a := dialRaw(t, s)
	ok := a.hello("qm", "dev", "")
	push()
	push()
	push() // the window of 2 is full: it waits
	pushes(a, 2, false)
	want("window full", m.windowFull.Get(), 1)

	mc.advance(mc.now.Load() + int64(2*time.Second)) // no ACK within AckTimeout
	pushes(a, 2, true)
	want("ack_timeout redeliveries", m.redeliveredTimeout.Get(), 2)

	a.c.Close()
	waitFor(t, "first connection gone", func() bool { return s.Conn(ok.ConnID) == nil })
	b := dialRaw(t, s)
	b.hello("qm", "dev", "") // the device acknowledged nothing: 1 and 2 again, with DUP
	pushes(b, 2, true)
	want("reconnect redeliveries", m.redeliveredReconnect.Get(), 2)

	want("lost closes before", m.lostCloses.Get(), 0)
	push() // a fourth message passes ResumeBuffer (3): 1, never acknowledged, leaves
	b.expectClosed(protocol.OpClose, protocol.CloseSlowConsumer)
	want("lost closes", m.lostCloses.Get(), 1)
}
