package floor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/protocol"
)

// The peer is the fair variants' other process. It holds the client ends of the
// connections and reads each with a goroutine blocked in Go's netpoller (epoll), as
// the load suite's loaders do, so a write to the floor's end wakes a real reader.
// It talks to the probe in lines: commands on stdin, JSON events on stdout.
//
//	count       answers {"kind":"count","bytes":N}: the bytes read so far
//	ping RATE   sends a 12-byte PING, round robin over the connections, RATE times a
//	            second in all (0 stops)
//	EOF         closes every connection and exits

// peerEvent is one line from the peer.
type peerEvent struct {
	Kind  string `json:"kind"` // "ready", "count" or "error"
	PID   int    `json:"pid,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
	Err   string `json:"err,omitempty"`
}

// PeerMain runs the peer process with its command line args (without the program
// name): -addr, -n, -src and -max-lifetime. The probe starts it through
// Config.Peer; tether-bench runs it as "tether-bench floor-peer".
func PeerMain(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := kit.FlagSet("floor", "peer", stderr)
	addr := fs.String("addr", "", "The probe's listening address.")
	n := fs.Int("n", 0, "The number of connections to open.")
	src := fs.String("src", "127.0.0.1", "The local address to connect from.")
	life := fs.Duration("max-lifetime", 5*time.Minute, "The time after which the peer exits even if its stdin stays open.")
	if err := kit.Parse(fs, args); err != nil {
		return err
	}
	sa, err := netip.ParseAddr(*src)
	if err != nil {
		return fmt.Errorf("bad source address: %w", err)
	}
	if *addr == "" || *n <= 0 {
		return errors.New("need -addr and a positive -n")
	}
	kit.FileLimit()
	ctx, cancel := context.WithTimeout(context.Background(), *life)
	defer cancel()
	p := &peer{out: json.NewEncoder(stdout)}
	if err := p.connect(ctx, *addr, sa, *n); err != nil {
		p.send(peerEvent{Kind: "error", Err: err.Error()})
		return err
	}
	defer p.close()
	p.send(peerEvent{Kind: "ready", PID: os.Getpid()})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var pingStop chan struct{}
	stopPing := func() {
		if pingStop != nil {
			close(pingStop)
			pingStop = nil
		}
	}
	defer stopPing()
	for {
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-lines:
			if !ok {
				return nil
			}
			cmd, arg, _ := strings.Cut(l, " ")
			switch cmd {
			case "count":
				p.send(peerEvent{Kind: "count", Bytes: p.read.Load()})
			case "ping":
				stopPing()
				if rate, _ := strconv.ParseFloat(arg, 64); rate > 0 {
					pingStop = make(chan struct{})
					go p.ping(pingStop, rate)
				}
			default:
				p.send(peerEvent{Kind: "error", Err: fmt.Sprintf("unknown command %q", l)})
			}
		}
	}
}

type peer struct {
	omu   sync.Mutex
	out   *json.Encoder
	conns []net.Conn
	read  atomic.Int64
	wg    sync.WaitGroup
}

func (p *peer) send(ev peerEvent) {
	p.omu.Lock()
	defer p.omu.Unlock()
	_ = p.out.Encode(ev)
}

// connect opens n connections to addr from src, 64 handshakes at a time, and starts
// a reading goroutine on each.
func (p *peer) connect(ctx context.Context, addr string, src netip.Addr, n int) error {
	d := kit.Dialer(src, 30*time.Second)
	p.conns = make([]net.Conn, n)
	sem := make(chan struct{}, 64)
	var failed atomic.Pointer[error]
	var dials sync.WaitGroup
	kit.Launch(ctx, n, 0, sem, func(i int) {
		dials.Add(1)
		go func() {
			defer dials.Done()
			defer func() { <-sem }()
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
			p.conns[i] = c
		}()
	})
	dials.Wait()
	if e := failed.Load(); e != nil {
		p.close()
		return fmt.Errorf("cannot connect to %s: %w", addr, *e)
	}
	for _, c := range p.conns {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				p.read.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
	return ctx.Err()
}

// ping writes a PING frame to the connections round robin, rate a second in all,
// until stop is closed: the pacing of the load suite's keepalive.
func (p *peer) ping(stop <-chan struct{}, rate float64) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	var credit float64
	last, next := time.Now(), 0
	var seq uint32
	var buf []byte
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			credit += now.Sub(last).Seconds() * rate
			last = now
			for ; credit >= 1; credit-- {
				seq++
				buf = protocol.AppendEmpty(buf[:0], protocol.OpPing, seq)
				_, _ = p.conns[next].Write(buf)
				next = (next + 1) % len(p.conns)
			}
		}
	}
}

func (p *peer) close() {
	for _, c := range p.conns {
		if c != nil {
			_ = kit.CloseReset(c)
		}
	}
	p.wg.Wait()
}
