package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/msg"
	"github.com/tether-gw/tether/protocol"
)

// ringSize bounds a connection's unanswered SENDs; their due times sit in a ring
// indexed by seq. Replies come back in order, so slots never collide.
const ringSize = 128

var errNotConnected = errors.New("not connected")

// lconn is one simulated client. Its goroutine (run) dials, reads and reconnects;
// pacers write to it under wmu.
type lconn struct {
	l    *loader
	i    int
	user string

	wmu sync.Mutex
	nc  net.Conn // nil between connections

	authed   atomic.Bool
	dropping atomic.Bool
	dropAt   atomic.Int64
	pipe     atomic.Bool
	seq      atomic.Uint32
	inflight atomic.Int32
	due      [ringSize]atomic.Int64

	// The user stream's cursor and the payload sequence numbers delivered, touched
	// by the reading goroutine only; distinct and maxK are read by reports.
	epoch, lastID  uint64
	seen           []uint64
	distinct, maxK atomic.Int64
	// pongs counts the PONGs this connection has had, for Config.Pings; touched by
	// the reading goroutine only.
	pongs int
}

// write sends b on the current connection.
func (c *lconn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.nc == nil {
		return errNotConnected
	}
	_, err := c.nc.Write(b)
	return err
}

// appendSend appends a SEND with the next seq to buf and notes when it was due; it
// returns nil when the connection has too many unanswered.
func (c *lconn) appendSend(buf, payload []byte, due int64) []byte {
	if c.inflight.Load() >= ringSize-1 {
		c.l.skipped.Add(1)
		return nil
	}
	seq := c.seq.Add(1)
	c.due[seq%ringSize].Store(due)
	c.inflight.Add(1)
	c.l.sent.Add(1)
	b, err := (&protocol.Send{Route: "echo", Payload: payload}).AppendFrame(buf, seq, 0)
	if err != nil {
		panic("BUG: loadgen: cannot encode SEND: " + err.Error())
	}
	return b
}

// closeConn closes the current connection with a reset, so no port lingers in
// TIME_WAIT to slow the next run's loaders.
func (c *lconn) closeConn() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.nc != nil {
		_ = kit.CloseReset(c.nc)
		c.nc = nil
	}
}

// drop closes the connection on purpose (churn); run reconnects. It reports false if
// the connection was already being dropped.
func (c *lconn) drop() bool {
	if c.dropping.Swap(true) {
		return false
	}
	c.dropAt.Store(time.Now().UnixNano())
	c.closeConn()
	return true
}

// run keeps the connection going until ctx ends, it fails, or the server closes it.
func (c *lconn) run(ctx context.Context) {
	defer c.l.wg.Done()
	initial := true
	finishInitial := func() {
		if initial {
			initial = false
			c.l.initialDone()
		}
	}
	defer finishInitial()
	for ctx.Err() == nil {
		nc, err := c.dial(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.l.failed.Add(1)
				c.l.fail(reason("dial", err))
			}
			return
		}
		err = c.serve(ctx, nc, finishInitial)
		if ctx.Err() != nil {
			return
		}
		if !c.dropping.Swap(false) {
			if err != nil {
				c.l.fail(err.Error())
			}
			return
		}
	}
}

// dial connects and sends HELLO, resuming the user stream when there is a cursor.
func (c *lconn) dial(ctx context.Context) (net.Conn, error) {
	l := c.l
	t0 := time.Now()
	l.firstDial.CompareAndSwap(0, t0.UnixNano())
	dctx, cancel := context.WithTimeout(ctx, l.cfg.HandshakeTimeout)
	nc, err := l.dial.Dial(dctx, l.cfg.Addr)
	cancel()
	if err != nil {
		return nil, err
	}
	if c.dropAt.Load() == 0 {
		l.handshakeLat.Record(time.Since(t0).Microseconds())
	}
	l.dialed.Add(1)
	hello, err := (&protocol.Hello{Token: c.user, DeviceID: l.cfg.DeviceID, Platform: "loadgen", ClientVersion: l.cfg.ClientVersion,
		ResumeEpoch: c.epoch, ResumeLastID: c.lastID}).AppendFrame(nil, 1, 0)
	if err != nil {
		panic("BUG: loadgen: cannot encode HELLO: " + err.Error())
	}
	c.wmu.Lock()
	c.nc = nc
	c.wmu.Unlock()
	if _, err := nc.Write(hello); err != nil {
		c.closeConn()
		return nil, err
	}
	return nc, nil
}

// serve reads nc until it ends and returns why, as a failure reason (nil when the
// connection was dropped on purpose or the load is over).
func (c *lconn) serve(ctx context.Context, nc net.Conn, authedFirst func()) error {
	l := c.l
	start := time.Now()
	_ = nc.SetReadDeadline(start.Add(l.cfg.HandshakeTimeout))
	var (
		dec      protocol.Decoder
		buf      = make([]byte, 4096)
		out      []byte
		closeErr error
		ack      uint64
		replies  int
		authed   bool
	)
	defer func() {
		if c.authed.Swap(false) {
			l.open.Add(-1)
		}
		// Unanswered requests will not be answered now.
		for i := range c.due {
			if c.due[i].Swap(0) != 0 {
				c.inflight.Add(-1)
			}
		}
		c.closeConn()
	}()
	onAuth := func(ok *protocol.AuthOK) {
		authed = true
		now := time.Now()
		_ = nc.SetReadDeadline(time.Time{})
		if ok != nil {
			l.hb.CompareAndSwap(0, int64(ok.HeartbeatMs)*int64(time.Millisecond))
			switch {
			case ok.Resume == protocol.ResumeRecovered:
			case ok.Resume == protocol.ResumeNotRecovered:
				l.notRecovered.Add(1)
				c.epoch, c.lastID = ok.Epoch, ok.LastID
			default:
				c.epoch, c.lastID = ok.Epoch, ok.LastID
			}
		}
		if c.dropAt.Load() != 0 {
			l.reconnects.Add(1)
			l.reconnectLat.Record(now.Sub(time.Unix(0, c.dropAt.Load())).Microseconds())
		} else {
			if l.authed.Add(1) == int64(l.cfg.N) {
				l.ew.Send(msg.Event{Kind: "authed"})
			}
			l.lastAuth.Store(now.UnixNano())
			l.connectLat.Record(now.Sub(start).Microseconds())
		}
		l.open.Add(1)
		c.authed.Store(true)
		authedFirst()
	}
	onReply := func(seq uint32, isErr bool) {
		if t := c.due[seq%ringSize].Swap(0); t != 0 {
			c.inflight.Add(-1)
			l.lat[c.i%histShards].Record((time.Now().UnixNano() - t) / 1000)
			if isErr {
				l.errors.Add(1)
			} else {
				l.replies.Add(1)
			}
			replies++
		}
	}
	onFrame := func(f protocol.Frame) error {
		switch f.Op {
		case protocol.OpAuthOK:
			var m protocol.AuthOK
			if err := m.Decode(f.Body); err != nil {
				return err
			}
			onAuth(&m)
		case protocol.OpHello: // a bare echo server
			if l.cfg.Bare && !authed {
				onAuth(nil)
			}
		case protocol.OpPong:
			c.pong()
		case protocol.OpPing:
			if l.cfg.Bare {
				c.pong()
			} else {
				out = protocol.AppendEmpty(out, protocol.OpPong, f.Seq)
			}
		case protocol.OpSendReply:
			onReply(f.Seq, false)
		case protocol.OpSend:
			if l.cfg.Bare {
				onReply(f.Seq, false)
			}
		case protocol.OpOK:
			l.subOKs.Add(1)
		case protocol.OpError:
			var m protocol.Error
			_ = m.Decode(f.Body)
			l.fmu.Lock()
			l.errCodes[m.Code.String()]++
			l.fmu.Unlock()
			if c.due[f.Seq%ringSize].Load() != 0 {
				onReply(f.Seq, true)
			} else {
				l.errors.Add(1)
			}
		case protocol.OpPush:
			if a := c.push(f); a > ack {
				ack = a
			}
		case protocol.OpAuthFail, protocol.OpClose, protocol.OpGoAway:
			closeErr = fmt.Errorf("%v %s", f.Op, kit.DescribeClose(f))
		}
		return nil
	}
	for {
		n, err := nc.Read(buf)
		if n > 0 {
			out, ack, replies = out[:0], 0, 0
			if derr := dec.Decode(buf[:n], onFrame); derr != nil && err == nil {
				err = fmt.Errorf("bad frame: %w", derr)
			}
			if ack > 0 {
				out, _ = (&protocol.Ack{MsgID: ack}).AppendFrame(out, c.seq.Add(1), 0)
			}
			if replies > 0 && c.pipe.Load() {
				if p := l.echoPayload.Load(); p != nil {
					now := time.Now().UnixNano()
					for range replies {
						if b := c.appendSend(out, *p, now); b != nil {
							out = b
						}
					}
				}
			}
			if len(out) > 0 {
				_ = c.write(out)
			}
		}
		if closeErr != nil && err == nil {
			err = closeErr
		}
		if err != nil {
			if ctx.Err() != nil || c.dropping.Load() {
				return nil
			}
			if !authed {
				l.failed.Add(1)
				if closeErr != nil {
					err = closeErr
				}
				return errors.New(reason("handshake", err))
			}
			l.lost.Add(1)
			if closeErr != nil {
				err = closeErr
			}
			return errors.New(reason("lost", err))
		}
	}
}

// pong counts a heartbeat answer, and the connection ready at its Config.Pings-th.
func (c *lconn) pong() {
	l := c.l
	l.pongs.Add(1)
	c.pongs++
	if c.pongs == l.cfg.Pings && l.ready.Add(1) == int64(l.cfg.N) {
		l.ew.Send(msg.Event{Kind: "ready"})
	}
}

// push handles one PUSH and returns the msg_id to acknowledge (0 for none). The
// payload starts with the Unix ns it was sent at and a sequence number: the
// broadcast id for room pushes, the user's push number for direct ones.
func (c *lconn) push(f protocol.Frame) uint64 {
	l := c.l
	var p protocol.Push
	if p.Decode(f.Body) != nil {
		l.errors.Add(1)
		return 0
	}
	now := time.Now().UnixNano()
	l.pushes.Add(1)
	var ts int64
	var k uint64
	if len(p.Payload) >= 16 {
		ts = int64(binary.BigEndian.Uint64(p.Payload))
		k = binary.BigEndian.Uint64(p.Payload[8:])
	}
	var ack uint64
	if f.Flags.Has(protocol.FlagAckRequested) {
		ack = p.MsgID
	}
	if p.Channel == "" && p.MsgID != 0 {
		if p.MsgID <= c.lastID {
			l.dups.Add(1) // a replay of what this stream already has: drop it
			return ack
		}
		c.lastID = p.MsgID
		if k > 0 && k < 1<<24 {
			w := int(k / 64)
			if w >= len(c.seen) {
				c.seen = append(c.seen, make([]uint64, w+1-len(c.seen))...)
			}
			if c.seen[w]&(1<<(k%64)) != 0 {
				l.appDups.Add(1)
			} else {
				c.seen[w] |= 1 << (k % 64)
				c.distinct.Add(1)
				if int64(k) > c.maxK.Load() {
					c.maxK.Store(int64(k))
				}
			}
		}
	}
	if ts > 0 {
		l.lat[c.i%histShards].Record((now - ts) / 1000)
	}
	if p.Channel != "" {
		l.recordBcast(k, now)
	}
	return ack
}

// reason classifies a failure for the report: the phase and the errno or close code.
func reason(phase string, err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return fmt.Sprintf("%s: %s", phase, errno.Error())
	case errors.Is(err, os.ErrDeadlineExceeded):
		return phase + ": timeout"
	case errors.Is(err, io.EOF):
		return phase + ": closed by server"
	}
	return fmt.Sprintf("%s: %v", phase, err)
}
