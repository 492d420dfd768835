package client

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tether-gw/tether/protocol"
)

// These tests check that Close leaves nothing running, whatever the client
// was doing: serving a connection with a request in flight, sleeping out a
// backoff, handshaking, or blocked on a full Pushes channel. They use the
// fake server, which they stop before checking, so that every goroutine left
// is one of the client's.

func TestCloseLeavesNoGoroutines(t *testing.T) {
	f := func(name string, setup func(t *testing.T, fs *fakeServer) *Client) {
		t.Run(name, func(t *testing.T) {
			opt := goleak.IgnoreCurrent()
			fs := newFakeServer(t)
			c := setup(t, fs)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if c.State() != StateClosed {
				t.Fatalf("state %v after Close", c.State())
			}
			_ = c.Close() // idempotent
			fs.close()
			goleak.VerifyNone(t, opt)
		})
	}

	// Connected, one request waiting for its reply and one push undelivered.
	f("connected", func(t *testing.T, fs *fakeServer) *Client {
		c, fc, _ := dialFake(t, fs, Options{}, protocol.AuthOK{})
		res := make(chan error, 1)
		go func() {
			_, err := c.Send(context.Background(), "r", nil)
			res <- err
		}()
		fc.expect(protocol.OpSend)
		fc.push(1, "", "x", 0)
		t.Cleanup(func() {
			if err := <-res; err == nil {
				t.Error("Send succeeded without a reply")
			}
		})
		return c
	})

	// Sleeping out an hour's backoff after the server went away.
	f("backoff", func(t *testing.T, fs *fakeServer) *Client {
		c, fc, _ := dialFake(t, fs, Options{BackoffMin: time.Hour, BackoffMax: time.Hour,
			randN: func(n int64) int64 { return n - 1 }}, protocol.AuthOK{})
		_ = fc.nc.Close()
		waitFor(t, "reconnecting", func() bool { return c.State() == StateReconnecting })
		return c
	})

	// In the middle of a reconnect handshake the server never answers.
	f("handshake", func(t *testing.T, fs *fakeServer) *Client {
		c, fc, _ := dialFake(t, fs, Options{BackoffMin: time.Millisecond}, protocol.AuthOK{})
		_ = fc.nc.Close()
		fs.next().expect(protocol.OpHello)
		return c
	})

	// The read goroutine blocked on a full Pushes channel nobody reads.
	f("blocked push", func(t *testing.T, fs *fakeServer) *Client {
		c, fc, _ := dialFake(t, fs, Options{PushBuffer: 1}, protocol.AuthOK{})
		for i := range 3 {
			fc.push(uint64(i+1), "", "x", 0)
		}
		waitFor(t, "the channel to fill", func() bool { return len(c.Pushes()) == 1 })
		return c
	})

	// Closed by a terminal code before Close is called.
	f("terminal", func(t *testing.T, fs *fakeServer) *Client {
		c, fc, _ := dialFake(t, fs, Options{}, protocol.AuthOK{})
		fc.send(&protocol.Close{Code: protocol.CloseReplaced, Reason: "newer login"}, 0, 0)
		waitFor(t, "closed", func() bool { return c.State() == StateClosed })
		return c
	})
}

func TestCloseSendsClose(t *testing.T) {
	fs := newFakeServer(t)
	c, fc, _ := dialFake(t, fs, Options{}, protocol.AuthOK{})
	_ = c.Close()
	f := fc.expect(protocol.OpClose)
	var m protocol.Close
	if err := m.Decode(f.Body); err != nil || m.Code != protocol.CloseNormal {
		t.Fatalf("CLOSE = %+v, %v", m, err)
	}
	fc.waitClosed()
	if _, err := c.Send(context.Background(), "r", nil); err != ErrClosed {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}
