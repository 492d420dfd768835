package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// The tests in this file run against the real gateway from package server and look at
// the client's unexported state (heartbeats sent, dial attempts, its read goroutine);
// the tests that need only the exported API are in internal/e2e.

func TestHeartbeatKeepsIdleConnectionAlive(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s.Addr().String(), Options{})
	id := c.ConnID()
	// The server closes a connection silent for 1.5 × heartbeat; wait for
	// four client heartbeats, i.e. well past that.
	waitFor(t, "four heartbeat PINGs", func() bool { return c.pings.Load() >= 4 })
	if c.ConnID() != id || c.State() != StateConnected || c.attempts.Load() != 1 {
		t.Fatalf("connection changed: conn %d (was %d), state %v, %d attempts", c.ConnID(), id, c.State(), c.attempts.Load())
	}
	if conns := s.UserConns(userName(t)); len(conns) != 1 || conns[0].ID() != id {
		t.Fatal("the server dropped the idle connection")
	}
}

func TestNoReconnectAfterTerminalKick(t *testing.T) {
	s := startServer(t, nil)
	var tr testkit.Transitions[State]
	c := dial(t, s.Addr().String(), Options{OnStateChange: tr.Record, BackoffMin: time.Millisecond})
	s.KickUser(userName(t), protocol.CloseKicked, "bye")

	select {
	case <-c.done: // the read goroutine ended by itself
	case <-time.After(waitTimeout):
		t.Fatal("client still running after a terminal kick")
	}
	if c.State() != StateClosed || c.attempts.Load() != 1 {
		t.Fatalf("state %v after %d attempts, want closed after 1", c.State(), c.attempts.Load())
	}
	x, ok := tr.Find(StateClosed, closeCode(protocol.CloseKicked))
	if !ok {
		t.Fatalf("no closed transition with KICKED: %+v", tr.Dump())
	}
	var ce *CloseError
	if !errors.As(x.Err, &ce) || !ce.Terminal() || ce.Reason != "bye" || ce.Op != protocol.OpClose {
		t.Fatalf("closed with %v", x.Err)
	}
	_, err := c.Send(context.Background(), "echo", nil)
	if !errors.Is(err, ErrClosed) || !errors.As(err, &ce) {
		t.Fatalf("Send after terminal kick = %v, want ErrClosed wrapping the CloseError", err)
	}
}

func TestNoReconnectOption(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s.Addr().String(), Options{NoReconnect: true})
	s.KickUser(userName(t), protocol.CloseServerBusy, "busy")
	waitFor(t, "the client to close", func() bool { return c.State() == StateClosed })
	if n := c.attempts.Load(); n != 1 {
		t.Fatalf("%d attempts with NoReconnect", n)
	}
}
