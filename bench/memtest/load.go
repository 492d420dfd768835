package memtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/protocol"
)

// LoadConfig configures a load child. The zero value keeps the defaults in each
// field's doc.
type LoadConfig struct {
	// Addr is the server's address. Required.
	Addr string
	// N is how many connections to open. Required.
	N int
	// Src is the local address connections are made from, so several loaders use
	// disjoint ephemeral port ranges. Default 127.0.0.1.
	Src string
	// ID distinguishes loaders in user ids (tokens "u<ID>-<i>"). Default 0.
	ID int
	// Rate caps new connections per second. Default 2000.
	Rate float64
	// Concurrency caps handshakes (dial to AUTH_OK) in progress at once, so a burst
	// cannot overflow the server's accept queue. Default 256.
	Concurrency int
	// Pings is how many PING/PONG exchanges make a connection ready. Default 2.
	Pings int
	// PingInterval is the time between PINGs. Default: the heartbeat the server
	// announces in AUTH_OK, as a real client does. The first PING of each
	// connection comes after a random fraction of it, to spread the load.
	PingInterval time.Duration
	// HandshakeTimeout bounds dial, HELLO and AUTH_OK for one connection. Default 30s.
	HandshakeTimeout time.Duration
	// MaxLifetime ends the child even if nobody closes its stdin. Default 10m.
	MaxLifetime time.Duration
}

func (c LoadConfig) withDefaults() LoadConfig {
	if c.Src == "" {
		c.Src = "127.0.0.1"
	}
	if c.Rate <= 0 {
		c.Rate = 2000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 256
	}
	if c.Pings <= 0 {
		c.Pings = 2
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 30 * time.Second
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = 10 * time.Minute
	}
	return c
}

// loader holds one load child's connections. Each connection has its own goroutine
// doing blocking I/O: the loaders' memory is not what is measured, and this is the
// simplest client that keeps a connection alive by the protocol's rules.
type loader struct {
	cfg    LoadConfig
	dial   *net.Dialer
	lw     *lineWriter
	sem    chan struct{}
	wg     sync.WaitGroup
	reason sync.Once

	dialed, authed, ready, failed, lost atomic.Int64
}

// Load runs a load child: it opens cfg.N connections to cfg.Addr at cfg.Rate,
// authenticates each, exchanges cfg.Pings PINGs on each, and keeps them alive with
// PINGs until in closes (or "quit" arrives) or cfg.MaxLifetime passes. It prints
// "progress" lines twice a second, an "authed" line the moment the last connection
// authenticates, a "ready" line the moment the last one completes its pings, a
// "fail" line for the first connection that fails, and "done" when all are closed.
func Load(cfg LoadConfig, in io.Reader, out io.Writer) error {
	cfg = cfg.withDefaults()
	if cfg.Addr == "" || cfg.N <= 0 {
		return errors.New("load: need an address and a positive connection count")
	}
	src, err := netip.ParseAddr(cfg.Src)
	if err != nil {
		return fmt.Errorf("load: bad source address: %w", err)
	}
	l := &loader{
		cfg:  cfg,
		dial: kit.Dialer(src, cfg.HandshakeTimeout),
		lw:   &lineWriter{w: out},
		sem:  make(chan struct{}, cfg.Concurrency),
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.MaxLifetime)
	defer cancel()
	go func() {
		// Any line or EOF on stdin that is not blank ends the load.
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			if sc.Text() == "quit" {
				break
			}
		}
		cancel()
	}()
	go l.reportProgress(ctx)

	l.lw.emit("started", "n", cfg.N, "src", cfg.Src, "pid", os.Getpid())
	l.dialAll(ctx)
	<-ctx.Done()
	l.wg.Wait()
	l.emitProgress("done")
	return nil
}

// dialAll starts the connections at the configured rate and concurrency.
func (l *loader) dialAll(ctx context.Context) {
	kit.Launch(ctx, l.cfg.N, l.cfg.Rate, l.sem, func(i int) {
		l.wg.Add(1)
		go l.conn(ctx, i)
	})
}

func (l *loader) reportProgress(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.emitProgress("progress")
		}
	}
}

func (l *loader) emitProgress(kind string) {
	l.lw.emit(kind, "dialed", l.dialed.Load(), "authed", l.authed.Load(), "ready", l.ready.Load(),
		"failed", l.failed.Load(), "lost", l.lost.Load())
}

// fail records a connection that failed before it was ready; the first failure is
// reported with its reason.
func (l *loader) fail(i int, err error) {
	l.failed.Add(1)
	l.reason.Do(func() { l.lw.emit("fail", "conn", i, "err", err.Error()) })
}

// connState is one connection's protocol state, touched only by its goroutine.
type connState struct {
	authed  bool
	hb      time.Duration
	pongs   int
	pending bool // a PING is unanswered
	sentAt  time.Time
	closed  error // CLOSE, GOAWAY or AUTH_FAIL received
}

// conn runs connection i until ctx is done or the connection fails.
func (l *loader) conn(ctx context.Context, i int) {
	defer l.wg.Done()
	handshaking := true
	defer func() {
		if handshaking {
			<-l.sem
		}
	}()
	nc, err := l.dial.DialContext(ctx, "tcp", l.cfg.Addr)
	if err != nil {
		if ctx.Err() == nil {
			l.fail(i, fmt.Errorf("cannot dial %s from %s: %w", l.cfg.Addr, l.cfg.Src, err))
		}
		return
	}
	defer nc.Close()
	// Closing the socket is what unblocks a goroutine sitting in Read when the load
	// ends; AfterFunc does that without a goroutine per connection. The close resets
	// the connection (linger 0) rather than leaving its port in TIME_WAIT for a
	// minute, where it would slow the port search of the next run's loaders.
	stop := context.AfterFunc(ctx, func() { _ = kit.CloseReset(nc) })
	defer stop()
	l.dialed.Add(1)

	hello, err := (&protocol.Hello{Token: fmt.Sprintf("u%d-%d", l.cfg.ID, i), DeviceID: "memtest", Platform: "loadgen"}).AppendFrame(nil, 1, 0)
	if err != nil {
		panic("BUG: memtest: cannot encode HELLO: " + err.Error())
	}
	if _, err := nc.Write(hello); err != nil {
		l.fail(i, fmt.Errorf("cannot send HELLO: %w", err))
		return
	}
	var (
		st      connState
		dec     protocol.Decoder
		buf     = make([]byte, 512)
		seq     = uint32(1)
		readyAt = l.cfg.Pings
	)
	deadline := time.Now().Add(l.cfg.HandshakeTimeout)
	var nextPing time.Time
	onFrame := func(f protocol.Frame) error {
		switch f.Op {
		case protocol.OpAuthOK:
			var m protocol.AuthOK
			if err := m.Decode(f.Body); err != nil {
				return err
			}
			st.authed, st.hb = true, time.Duration(m.HeartbeatMs)*time.Millisecond
		case protocol.OpPong:
			if st.pending && f.Seq == seq {
				st.pending = false
				st.pongs++
			}
		case protocol.OpPing:
			_, err := nc.Write(protocol.AppendEmpty(nil, protocol.OpPong, f.Seq))
			return err
		case protocol.OpAuthFail, protocol.OpClose, protocol.OpGoAway:
			st.closed = fmt.Errorf("server sent %v: %s", f.Op, kit.DescribeClose(f))
		}
		return nil
	}
	for {
		_ = nc.SetReadDeadline(deadline)
		n, rerr := nc.Read(buf)
		wasAuthed, pongs := st.authed, st.pongs
		if n > 0 {
			if err := dec.Decode(buf[:n], onFrame); err != nil {
				rerr = fmt.Errorf("bad frame from server: %w", err)
			}
		}
		if st.closed != nil {
			rerr = st.closed
		}
		if st.authed && !wasAuthed {
			handshaking = false
			<-l.sem
			if l.authed.Add(1) == int64(l.cfg.N) {
				l.lw.emit("authed", "n", l.cfg.N)
			}
			interval := l.interval(st.hb)
			nextPing = time.Now().Add(rand.N(interval) + time.Millisecond)
			deadline = nextPing
		}
		if st.pongs == readyAt && pongs < readyAt {
			if l.ready.Add(1) == int64(l.cfg.N) {
				l.lw.emit("ready", "n", l.cfg.N)
			}
		}
		if rerr != nil {
			var ne net.Error
			if !errors.As(rerr, &ne) || !ne.Timeout() || !st.authed {
				if ctx.Err() != nil {
					return
				}
				if st.pongs >= readyAt {
					l.lost.Add(1)
					l.reason.Do(func() { l.lw.emit("fail", "conn", i, "err", "lost after ready: "+rerr.Error()) })
				} else {
					l.fail(i, rerr)
				}
				return
			}
			// The read deadline is the ping timer.
			now := time.Now()
			if st.pending && now.Sub(st.sentAt) > 2*st.hb {
				l.lost.Add(1)
				l.reason.Do(func() { l.lw.emit("fail", "conn", i, "err", "no PONG within 2 heartbeats") })
				return
			}
			if !now.Before(nextPing) {
				seq++
				if _, err := nc.Write(protocol.AppendEmpty(nil, protocol.OpPing, seq)); err != nil {
					if ctx.Err() == nil {
						l.fail(i, fmt.Errorf("cannot send PING: %w", err))
					}
					return
				}
				if !st.pending {
					st.sentAt = now // a PING sent while one is unanswered does not restart the wait
				}
				st.pending = true
				nextPing = nextPing.Add(l.interval(st.hb))
			}
			deadline = nextPing
		}
	}
}

// interval is the time between PINGs for a server announcing heartbeat hb.
func (l *loader) interval(hb time.Duration) time.Duration {
	if l.cfg.PingInterval > 0 {
		return l.cfg.PingInterval
	}
	if hb <= 0 {
		return protocol.DefaultHeartbeatMs * time.Millisecond
	}
	return hb
}
