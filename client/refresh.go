package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// Token refresh on a live connection (PROTOCOL.md §6.12). The read goroutine keeps the
// schedule: setExpiry turns a token_expires_ms into a time on the connection's monotonic
// clock and sets refreshAt to 80% of the lifetime left; tick starts a refresh when it is
// due. The refresh itself (TokenFunc, then REFRESH and its answer) runs on a goroutine of
// its own, so that a slow token source never stalls reading; it hands its result back
// through refreshRes and wakes the read goroutine, which schedules the next refresh or,
// after a failure, a retry. At most one refresh goroutine runs per connection.

// refreshRetryMin is the shortest wait before retrying a failed refresh.
const refreshRetryMin = 200 * time.Millisecond

// errNoExpiryMs reports a REFRESH_OK the client cannot read.
var errNoExpiryMs = errors.New("client: malformed REFRESH_OK")

// refreshResult is what a refresh goroutine reports.
type refreshResult struct {
	expiresMs int64 // the new token's token_expires_ms, when err is nil
	err       error
}

// setExpiry records that the token expires at expiresMs (Unix ms on the server's
// clock, 0 for never), as learnt at now, and schedules the refresh at 80% of the time
// left. Server time is compared with server time: the AUTH_OK's server_time_ms was the
// server's clock at authAt.
func (cn *conn) setExpiry(expiresMs int64, now time.Duration) {
	cn.expiresAt, cn.refreshAt = 0, 0
	if expiresMs == 0 {
		return
	}
	cn.expiresAt = cn.authAt + time.Duration(expiresMs-cn.auth.ServerTimeMs)*time.Millisecond
	if cn.c.opts.TokenFunc == nil || cn.c.opts.NoRefresh {
		return
	}
	left := max(cn.expiresAt-now, 0)
	cn.refreshAt = max(now+left*8/10, 1)
}

// refreshTick, called by tick, applies a finished refresh's result and starts the
// next refresh when it is due.
func (cn *conn) refreshTick(now time.Duration) {
	if r := cn.refreshRes.Swap(nil); r != nil {
		cn.refreshing = false
		if r.err == nil {
			cn.c.refreshes.Add(1)
			cn.setExpiry(r.expiresMs, now)
		} else {
			cn.c.log.Warn("token refresh failed", "err", r.err)
			if left := cn.expiresAt - now; left > 0 {
				cn.refreshAt = now + max(left/4, refreshRetryMin)
			}
		}
	}
	if cn.refreshAt == 0 || now < cn.refreshAt || cn.refreshing || cn.goaway != nil {
		return
	}
	cn.refreshAt = 0
	cn.refreshing = true
	go cn.refresh()
}

// refresh runs on its own goroutine: it gets a token from TokenFunc, sends it in a
// REFRESH and waits for the answer, all within RequestTimeout, then reports to the read
// goroutine.
func (cn *conn) refresh() {
	r := &refreshResult{}
	ctx, cancel := cn.c.withTimeout(cn.c.ctx)
	defer cancel()
	r.expiresMs, r.err = cn.refreshOnce(ctx)
	cn.refreshRes.Store(r)
	cn.wake()
}

func (cn *conn) refreshOnce(ctx context.Context) (int64, error) {
	tok, err := cn.c.opts.TokenFunc(ctx)
	if err != nil {
		return 0, fmt.Errorf("client: cannot get token: %w", err)
	}
	rep, err := cn.roundTrip(ctx, &protocol.Refresh{Token: tok}, 0)
	if err != nil {
		return 0, err
	}
	var m protocol.RefreshOK
	if rep.op != protocol.OpRefreshOK || m.Decode(rep.payload) != nil {
		return 0, errNoExpiryMs
	}
	return m.TokenExpiresMs, nil
}

// wake makes the read goroutine run tick now: a past read deadline ends its Read, and
// the wakes count tells it to loop even if it set a new deadline after this one.
func (cn *conn) wake() {
	cn.wakes.Add(1)
	_ = cn.nc.SetReadDeadline(time.Unix(1, 0))
}
