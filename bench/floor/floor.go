// Package floor measures what the kernel charges for the work a connection server
// cannot avoid, so that a server's figures can be read as ratios to it: writing one
// small message to each of N sockets (the floor of a push or room fan-out), one
// read plus one write per socket (the floor of answering a heartbeat), and a bare
// accept loop (the floor of accepting connections).
//
// It measures two ways. In process: everything runs on one locked OS thread issuing
// raw system calls, and the CPU time charged is that thread's own (getrusage
// RUSAGE_THREAD), so the client ends of the sockets, which the probe also drives,
// are not counted. On loopback a write also runs the receiving side's TCP processing
// in the writer's context; that is part of the floor, because a server's writes pay
// it too. What it leaves out is everything above the system call, and the wakeup of
// a receiver: nobody is blocked reading the client ends, so no write has a sleeping
// thread to wake.
//
// Fair (when Config.Peer names a peer process): the client ends are in a separate
// process that reads them with goroutines blocked in Go's netpoller, as the load
// suite's loaders do, so every write pays the receiver's wakeup as a server's does;
// the heartbeat floor answers PINGs the peer paces with an epoll loop, so it pays
// epoll_wait too; and the CPU charged is this whole process's utime+stime from
// /proc/self/stat, read exactly as the load suite reads a server's. The fair
// figures are the ones to divide a server's CPU by; the in-process ones show what
// the wakeups cost.
package floor

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-gw/tether/bench/kit"
)

// Config sizes a probe. The zero value keeps the defaults in each field's doc.
type Config struct {
	// N is the number of socket pairs (2N descriptors). Default 5000.
	N int
	// Rounds is how many times each socket is written to or read from. Default 10.
	Rounds int
	// Size is the size of the message written in the write floor, in bytes.
	// Default 60: a PUSH frame with a 32-byte payload and a 16-byte room name.
	Size int
	// Accepts is how many connections the accept loop takes. Default 10000.
	Accepts int

	// Peer is the command line that starts the fair variants' peer process: an
	// executable and the arguments that make it call PeerMain (tether-bench:
	// [its own path, "floor-peer"]). Empty skips the fair variants.
	Peer []string
	// PeerEnv is the peer's environment. Default os.Environ().
	PeerEnv []string
	// Conns is the number of connections of the fair variants. Default 19000, the
	// load suite's, capped by the open-files limit.
	Conns int
	// Src is the peer's source address. Default 127.0.0.1.
	Src string
	// Heartbeat is the fair heartbeat floor's interval: the peer PINGs every
	// connection once per Heartbeat. Default 5s, the idle scenario's.
	Heartbeat time.Duration
	// Window is how long the fair heartbeat floor is measured, after a second of
	// warm-up. Default 10s.
	Window time.Duration
	// Log receives the peer's stderr and stray output. Default: discarded.
	Log func(string)
}

func (c Config) withDefaults() Config {
	if c.N <= 0 {
		c.N = 5000
	}
	if c.Rounds <= 0 {
		c.Rounds = 10
	}
	if c.Size <= 0 {
		c.Size = 60
	}
	if c.Accepts <= 0 {
		c.Accepts = 10_000
	}
	_, hard := kit.FileLimit()
	if c.Conns <= 0 {
		c.Conns = 19_000
	}
	c.Conns = min(c.Conns, int(hard)-256)
	if c.PeerEnv == nil {
		c.PeerEnv = os.Environ()
	}
	if c.Src == "" {
		c.Src = "127.0.0.1"
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	return c
}

// Result is the floor, in nanoseconds of CPU time of the thread doing the work per
// operation, and the wall time it took.
type Result struct {
	N, Rounds, Size, Accepts int
	// Write is one write(2) of Size bytes to one socket.
	Write, WriteWall float64
	// ReadWrite is one read(2) of a 12-byte PING and one write(2) of a 12-byte PONG.
	ReadWrite, ReadWriteWall float64
	// EpollReadWrite is ReadWrite plus the socket's share of the epoll_wait calls
	// that report the readable sockets, in batches of up to 256.
	EpollReadWrite float64
	// Accept is one accept4(2) and close(2) of a connection in a bare accept loop
	// on a blocking listener; AcceptRate is the loop's connections per second with
	// four goroutines of this process connecting.
	Accept, AcceptRate float64

	// The fair variants (zero when Config.Peer is empty), in nanoseconds of CPU of
	// this whole process (utime+stime from /proc, 10 ms resolution) per operation.
	// Conns is their number of connections.
	Conns int `json:",omitempty"`
	// FairWrite is one write(2) of Size bytes to a socket whose peer process
	// reads it; FairWriteWall the wall time, FairWritePeer the peer's CPU per
	// message read.
	FairWrite, FairWriteWall, FairWritePeer float64 `json:",omitempty"`
	// FairHeartbeat is one PING answered by an epoll loop: its share of
	// epoll_wait, a read(2) and a write(2); FairHeartbeatPeer is the peer's CPU per
	// PING sent and PONG read. FairHeartbeats were answered in the window, at
	// FairHeartbeatRate a second, FairEventsPerWait ready sockets per epoll_wait
	// that returned some.
	FairHeartbeat, FairHeartbeatPeer float64 `json:",omitempty"`
	FairHeartbeats                   int64   `json:",omitempty"`
	FairHeartbeatRate                float64 `json:",omitempty"`
	FairEventsPerWait                float64 `json:",omitempty"`
}

// Probe measures the floor: the in-process variants, then, when cfg.Peer is set, the
// fair ones. It needs 2*cfg.N+16 free descriptors, and cfg.Conns+16 for the fair
// variants, whose peer process holds as many again.
func Probe(cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	res := &Result{N: cfg.N, Rounds: cfg.Rounds, Size: cfg.Size, Accepts: cfg.Accepts}
	srv, cli, err := pairs(cfg.N)
	defer closeAll(srv)
	defer closeAll(cli)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, cfg.Size)
	ping := make([]byte, 12)
	buf := make([]byte, 4096)

	// Write floor: one message to every socket, then drain the peers untimed.
	var cpu, wall time.Duration
	for range cfg.Rounds {
		c0, w0 := threadCPU(), time.Now()
		for _, fd := range srv {
			if _, err := syscall.Write(fd, msg); err != nil {
				return nil, fmt.Errorf("floor: write: %w", err)
			}
		}
		cpu += threadCPU() - c0
		wall += time.Since(w0)
		drain(cli, buf)
	}
	ops := float64(cfg.N * cfg.Rounds)
	res.Write, res.WriteWall = float64(cpu)/ops, float64(wall)/ops

	// Read+write floor: the peers send a PING (untimed), the server side reads it
	// and writes a PONG.
	cpu, wall = 0, 0
	for range cfg.Rounds {
		for _, fd := range cli {
			if _, err := syscall.Write(fd, ping); err != nil {
				return nil, fmt.Errorf("floor: write: %w", err)
			}
		}
		c0, w0 := threadCPU(), time.Now()
		for _, fd := range srv {
			if _, err := syscall.Read(fd, buf[:12]); err != nil {
				return nil, fmt.Errorf("floor: read: %w", err)
			}
			if _, err := syscall.Write(fd, ping); err != nil {
				return nil, fmt.Errorf("floor: write: %w", err)
			}
		}
		cpu += threadCPU() - c0
		wall += time.Since(w0)
		drain(cli, buf)
	}
	res.ReadWrite, res.ReadWriteWall = float64(cpu)/ops, float64(wall)/ops

	// The same with epoll telling which sockets are readable.
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("floor: epoll_create1: %w", err)
	}
	defer syscall.Close(ep)
	for _, fd := range srv {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, fmt.Errorf("floor: epoll_ctl: %w", err)
		}
	}
	events := make([]syscall.EpollEvent, 256)
	cpu = 0
	for range cfg.Rounds {
		for _, fd := range cli {
			if _, err := syscall.Write(fd, ping); err != nil {
				return nil, fmt.Errorf("floor: write: %w", err)
			}
		}
		c0 := threadCPU()
		for done := 0; done < len(srv); {
			n, err := syscall.EpollWait(ep, events, 1000)
			if err != nil && !errors.Is(err, syscall.EINTR) {
				return nil, fmt.Errorf("floor: epoll_wait: %w", err)
			}
			for _, ev := range events[:max(n, 0)] {
				if _, err := syscall.Read(int(ev.Fd), buf[:12]); err != nil {
					return nil, fmt.Errorf("floor: read: %w", err)
				}
				if _, err := syscall.Write(int(ev.Fd), ping); err != nil {
					return nil, fmt.Errorf("floor: write: %w", err)
				}
			}
			done += max(n, 0)
		}
		cpu += threadCPU() - c0
		drain(cli, buf)
	}
	res.EpollReadWrite = float64(cpu) / ops
	closeAll(srv)
	closeAll(cli)
	srv, cli = nil, nil

	if res.Accept, res.AcceptRate, err = acceptLoop(cfg.Accepts); err != nil {
		return nil, err
	}
	if len(cfg.Peer) > 0 {
		res.Conns = cfg.Conns
		if err := probeFair(cfg, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// acceptLoop accepts n connections on a blocking listener and closes each at once,
// while four goroutines connect and reset theirs (so no port lingers in TIME_WAIT).
func acceptLoop(n int) (perAccept, rate float64, err error) {
	lfd, addr, err := listen()
	if err != nil {
		return 0, 0, err
	}
	defer syscall.Close(lfd)
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(n))
	var dialErr atomic.Pointer[error]
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				c, err := net.Dial("tcp4", addr)
				if err != nil {
					dialErr.CompareAndSwap(nil, &err)
					return
				}
				_ = c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}()
	}
	c0, w0 := threadCPU(), time.Now()
	for i := range n {
		fd, _, err := syscall.Accept4(lfd, syscall.SOCK_CLOEXEC)
		if err != nil {
			if e := dialErr.Load(); e != nil {
				return 0, 0, fmt.Errorf("floor: connect: %w", *e)
			}
			return 0, 0, fmt.Errorf("floor: accept %d: %w", i, err)
		}
		syscall.Close(fd)
	}
	cpu, wall := threadCPU()-c0, time.Since(w0)
	wg.Wait()
	return float64(cpu) / float64(n), float64(n) / wall.Seconds(), nil
}

// listen opens a blocking loopback listener on a free port.
func listen() (int, string, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("floor: socket: %w", err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return -1, "", fmt.Errorf("floor: bind: %w", err)
	}
	if err := syscall.Listen(fd, 4096); err != nil {
		syscall.Close(fd)
		return -1, "", fmt.Errorf("floor: listen: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return -1, "", fmt.Errorf("floor: getsockname: %w", err)
	}
	return fd, fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port), nil
}

// pairs returns n connected loopback TCP socket pairs: the accepted (server) ends,
// blocking, and the connecting (client) ends, non-blocking for draining.
func pairs(n int) (srv, cli []int, err error) {
	lfd, _, err := listen()
	if err != nil {
		return nil, nil, err
	}
	defer syscall.Close(lfd)
	sa, _ := syscall.Getsockname(lfd)
	for range n {
		c, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return srv, cli, fmt.Errorf("floor: socket: %w", err)
		}
		cli = append(cli, c)
		if err := syscall.Connect(c, sa); err != nil {
			return srv, cli, fmt.Errorf("floor: connect: %w", err)
		}
		s, _, err := syscall.Accept4(lfd, syscall.SOCK_CLOEXEC)
		if err != nil {
			return srv, cli, fmt.Errorf("floor: accept: %w", err)
		}
		srv = append(srv, s)
		_ = syscall.SetsockoptInt(s, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		_ = syscall.SetsockoptInt(c, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		if err := syscall.SetNonblock(c, true); err != nil {
			return srv, cli, fmt.Errorf("floor: set non-blocking: %w", err)
		}
	}
	return srv, cli, nil
}

// drain reads every non-blocking socket in fds until it would block.
func drain(fds []int, buf []byte) {
	for _, fd := range fds {
		for {
			n, err := syscall.Read(fd, buf)
			if n <= 0 || err != nil {
				break
			}
		}
	}
}

func closeAll(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// rusageThread is RUSAGE_THREAD from linux/resource.h.
const rusageThread = 1

// threadCPU returns the user plus system CPU time of the calling OS thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Flags binds c's sizes to flags of fs, for the commands that run the probe.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.IntVar(&c.N, "n", 5000, "The number of loopback socket pairs of the in-process floor.")
	fs.IntVar(&c.Rounds, "rounds", 10, "How many times every socket is written to or read from.")
	fs.IntVar(&c.Size, "size", 60, "The size in bytes of the message of the write floor.")
	fs.IntVar(&c.Accepts, "accepts", 10000, "The connections the bare accept loop accepts.")
	fs.IntVar(&c.Conns, "conns", 19000, "The connections of the fair floor, whose client ends a peer process reads.")
	fs.StringVar(&c.Src, "src", "127.0.0.1", "The fair floor's peer's source address.")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 5*time.Second, "The fair heartbeat floor's interval: the peer PINGs every connection once per heartbeat.")
	fs.DurationVar(&c.Window, "window", 10*time.Second, "How long the fair heartbeat floor is measured.")
}
