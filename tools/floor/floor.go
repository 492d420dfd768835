// Package floor measures what the kernel charges for the work a connection server
// cannot avoid, so that a server's figures can be read as ratios to it: writing one
// small message to each of N sockets (the floor of a push or room fan-out), one
// read plus one write per socket (the floor of answering a heartbeat), and a bare
// accept loop (the floor of accepting connections).
//
// Everything runs on one locked OS thread issuing raw system calls, and the CPU time
// charged is that thread's own (getrusage RUSAGE_THREAD), so the client ends of the
// sockets, which the probe also drives, are not counted. On loopback a write also
// runs the receiving side's TCP processing in the writer's context; that is part of
// the floor, because a server's writes pay it too. What it leaves out is everything
// above the system call: event loop, parsing, bookkeeping, and the epoll_wait that a
// real server needs to learn which sockets are readable (measured separately as
// EpollReadWrite).
package floor

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
}

// Probe measures the floor. It needs 2*cfg.N+16 free descriptors.
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
