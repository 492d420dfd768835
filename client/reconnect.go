package client

import (
	"errors"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// run is the client's one goroutine: it serves the current connection and,
// when it ends, sleeps and reconnects until Close, a terminal code, or a lost
// connection with reconnecting disabled.
//
// Reconnect policy (PROTOCOL.md §13): after a GOAWAY the wait is its
// retry-after, taken as is and not counted as a failure; otherwise attempt n
// (from 0) waits backoff(n). n grows with every attempt that does not reach
// AUTH_OK and returns to 0 once a connection has stayed up for a heartbeat
// interval, so a flapping server does not get a storm of instant reconnects.
func (c *Client) run(cn *conn) {
	attempt := 0
	for {
		end := cn.serve()
		c.unready(cn, true)
		cn.failPending()
		if c.ctx.Err() != nil {
			c.finish(nil)
			return
		}
		c.log.Info("disconnected", "conn", cn.auth.ConnID, "err", end.err)
		if end.terminal || c.opts.NoReconnect {
			c.finish(end.err)
			return
		}
		if cn.upFor() >= cn.hb {
			attempt = 0
		}
		for {
			wait := end.retryAfter
			if !end.goaway {
				wait = backoff(attempt, c.opts.BackoffMin, c.opts.BackoffMax, c.randN)
			}
			c.setState(StateReconnecting, end.err)
			if !c.sleep(wait) {
				c.finish(nil)
				return
			}
			c.setState(StateConnecting, nil)
			next, err := c.connect(c.ctx)
			if err == nil {
				cn = next
				break
			}
			if c.ctx.Err() != nil {
				c.finish(nil)
				return
			}
			c.log.Info("reconnect failed", "attempt", attempt, "err", err)
			end = endingOf(err)
			if end.terminal {
				c.finish(err)
				return
			}
			if !end.goaway {
				attempt++
			}
		}
		if !c.attach(cn) {
			c.finish(nil)
			return
		}
	}
}

// ending says why a connection (or an attempt) ended and what to do next.
type ending struct {
	err        error
	terminal   bool          // do not reconnect
	goaway     bool          // wait retryAfter instead of the backoff
	retryAfter time.Duration // remaining GOAWAY wait
}

// endingOf classifies a failed connection attempt.
func endingOf(err error) ending {
	var ce *CloseError
	if errors.As(err, &ce) {
		e := ending{err: err, terminal: ce.Terminal()}
		if ce.RetryAfter > 0 || ce.Op == protocol.OpGoAway {
			e.goaway, e.retryAfter = true, ce.RetryAfter
		}
		return e
	}
	return ending{err: err}
}

// backoff returns the wait before reconnect attempt n (from 0): uniform in
// [0, min(hi, lo·2ⁿ)] ("full jitter"), so that clients dropped together do
// not come back together. randN(k) must be uniform in [0, k).
func backoff(n int, lo, hi time.Duration, randN func(int64) int64) time.Duration {
	ceil := lo
	for i := 0; i < n && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	if ceil <= 0 {
		return 0
	}
	return time.Duration(randN(int64(ceil) + 1))
}

// sleep waits d on the client's timer; it reports false if the client was
// closed meanwhile.
func (c *Client) sleep(d time.Duration) bool {
	if d <= 0 {
		return c.ctx.Err() == nil
	}
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d)
	}
	select {
	case <-c.timer.C:
		return true
	case <-c.ctx.Done():
		c.timer.Stop()
		return false
	}
}
