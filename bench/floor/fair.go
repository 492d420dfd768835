package floor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/tether-gw/tether/bench/kit"
)

// The fair variants. The in-process floor writes to sockets whose other ends nobody
// is blocked reading, so the kernel never has a sleeping reader to wake; the load
// suite's servers write to loaders whose goroutines sleep in epoll_wait, and each of
// their writes pays that wakeup. Here the other ends are in a peer process that reads
// them as the loaders do, and the figure is the CPU of this whole process from
// /proc/self/stat (utime+stime), read exactly as a server's is.

// fairRun holds the fair variants' sockets and peer.
type fairRun struct {
	cfg    Config
	cancel context.CancelFunc // ends the peer
	peer   *kit.Child[peerEvent]
	fds    []int // the accepted (server) ends, blocking
}

// probeFair measures the fair variants into res.
func probeFair(cfg Config, res *Result) error {
	f, err := startFair(cfg)
	if err != nil {
		return err
	}
	defer f.close()
	if err := f.write(res); err != nil {
		return err
	}
	return f.heartbeat(res)
}

// startFair starts the peer and accepts its cfg.Conns connections.
func startFair(cfg Config) (*fairRun, error) {
	lfd, addr, err := listen()
	if err != nil {
		return nil, err
	}
	defer syscall.Close(lfd)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	f := &fairRun{cfg: cfg, cancel: cancel}
	args := append(append([]string(nil), cfg.Peer[1:]...), "-addr", addr, "-n", strconv.Itoa(cfg.Conns), "-src", cfg.Src)
	f.peer, err = kit.StartChild(ctx, "floor peer", cfg.Peer[0], args, cfg.PeerEnv, parsePeerEvent, cfg.Log)
	if err != nil {
		cancel()
		return nil, err
	}
	type accepted struct {
		fds []int
		err error
	}
	done := make(chan accepted, 1)
	go func() {
		runtime.LockOSThread() // accept4 blocks its thread
		defer runtime.UnlockOSThread()
		var fds []int
		for range cfg.Conns {
			fd, _, err := syscall.Accept4(lfd, syscall.SOCK_CLOEXEC)
			if err != nil {
				done <- accepted{fds, fmt.Errorf("floor: accept: %w", err)}
				return
			}
			_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
			fds = append(fds, fd)
		}
		done <- accepted{fds, nil}
	}()
	if _, err := f.peer.Await(2*time.Minute, "ready", matchPeer("ready")); err != nil {
		syscall.Shutdown(lfd, syscall.SHUT_RDWR) // unblocks the accept loop
		a := <-done
		f.fds = a.fds
		f.close()
		return nil, err
	}
	a := <-done
	f.fds = a.fds
	if a.err != nil {
		f.close()
		return nil, a.err
	}
	return f, nil
}

func (f *fairRun) close() {
	closeAll(f.fds)
	f.fds = nil
	if f.peer != nil {
		_ = f.peer.Stop(30 * time.Second)
	}
	f.cancel()
}

func parsePeerEvent(b []byte) (peerEvent, bool) {
	var ev peerEvent
	if len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &ev) == nil && ev.Kind != "" {
		return ev, true
	}
	return peerEvent{}, false
}

func matchPeer(kind string) func(peerEvent) (bool, error) {
	return func(ev peerEvent) (bool, error) {
		if ev.Kind == "error" {
			return false, errors.New(ev.Err)
		}
		return ev.Kind == kind, nil
	}
}

// peerRead returns the bytes the peer has read so far.
func (f *fairRun) peerRead() (int64, error) {
	if err := f.peer.Send([]byte("count")); err != nil {
		return 0, err
	}
	ev, err := f.peer.Await(30*time.Second, "count", matchPeer("count"))
	return ev.Bytes, err
}

// cpu returns the CPU seconds of this process and of the peer.
func (f *fairRun) cpu() (self, peer float64) {
	self, _ = kit.ProcCPU(os.Getpid())
	peer, _ = kit.ProcCPU(f.peer.PID())
	return self, peer
}

// write measures the write floor: Rounds rounds of one Size-byte write(2) to every
// connection, back to back like a room broadcast burst, and the peer's reading of
// them.
func (f *fairRun) write(res *Result) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	base, err := f.peerRead()
	if err != nil {
		return err
	}
	msg := make([]byte, f.cfg.Size)
	c0, p0 := f.cpu()
	w0 := time.Now()
	for range f.cfg.Rounds {
		for _, fd := range f.fds {
			if _, err := rawWrite(fd, msg); err != nil {
				return fmt.Errorf("floor: write: %w", err)
			}
		}
	}
	c1, _ := f.cpu()
	wall := time.Since(w0)
	want := base + int64(len(f.fds)*f.cfg.Rounds*f.cfg.Size)
	for deadline := time.Now().Add(time.Minute); ; {
		got, err := f.peerRead()
		if err != nil {
			return err
		}
		if got >= want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("floor: the peer read %d of %d bytes", got-base, want-base)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, p1 := f.cpu()
	ops := float64(len(f.fds) * f.cfg.Rounds)
	res.FairWrite = (c1 - c0) * 1e9 / ops
	res.FairWriteWall = float64(wall) / ops
	res.FairWritePeer = (p1 - p0) * 1e9 / ops
	return nil
}

// heartbeat measures the heartbeat floor: the peer PINGs every connection once per
// Heartbeat, round robin, and this process answers on one thread with an epoll loop
// (epoll_wait, then read(2) and write(2) back per ready socket), as an event-loop
// server does. The figure is this process's CPU over Window, after a second of
// warm-up, per PING answered.
func (f *fairRun) heartbeat(res *Result) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("floor: epoll_create1: %w", err)
	}
	defer syscall.Close(ep)
	for _, fd := range f.fds {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return fmt.Errorf("floor: epoll_ctl: %w", err)
		}
	}
	rate := float64(len(f.fds)) / f.cfg.Heartbeat.Seconds()
	if err := f.peer.Send([]byte("ping " + strconv.FormatFloat(rate, 'f', 1, 64))); err != nil {
		return err
	}
	defer func() { _ = f.peer.Send([]byte("ping 0")) }()
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 4096)
	start := time.Now()
	measureAt, endAt := start.Add(time.Second), start.Add(time.Second+f.cfg.Window)
	var bytes, waits, ready int64
	var c0, p0 float64
	var w0 time.Time
	measuring := false
	for {
		n, err := epollWait(ep, events, 10)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("floor: epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			r, err := rawRead(int(ev.Fd), buf)
			if err != nil || r <= 0 {
				return fmt.Errorf("floor: read: %v (%d bytes)", err, r)
			}
			if _, err := rawWrite(int(ev.Fd), buf[:r]); err != nil {
				return fmt.Errorf("floor: write: %w", err)
			}
			bytes += int64(r)
		}
		if n > 0 {
			waits++
			ready += int64(n)
		}
		now := time.Now()
		switch {
		case !measuring && !now.Before(measureAt):
			measuring = true
			c0, p0 = f.cpu()
			w0 = now
			bytes, waits, ready = 0, 0, 0
		case measuring && !now.Before(endAt):
			c1, p1 := f.cpu()
			beats := float64(bytes) / pingSize
			if beats == 0 {
				return errors.New("floor: no heartbeat arrived")
			}
			res.FairHeartbeat = (c1 - c0) * 1e9 / beats
			res.FairHeartbeatPeer = (p1 - p0) * 1e9 / beats
			res.FairHeartbeats = int64(beats)
			res.FairHeartbeatRate = beats / now.Sub(w0).Seconds()
			res.FairEventsPerWait = float64(ready) / float64(max(waits, 1))
			return nil
		}
	}
}

// pingSize is the size of a PING frame: a bare 12-byte header.
const pingSize = 12

// The fair variants issue their system calls raw, as a C server would: no
// entersyscall/exitsyscall around them, and no handing of the P to another thread
// while the loop sleeps in epoll_wait. (The Go runtime's bookkeeping is what a Go
// server adds above the floor, not part of it.)

func epollWait(ep int, events []syscall.EpollEvent, msec int) (int, error) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(msec), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func rawRead(fd int, b []byte) (int, error) {
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func rawWrite(fd int, b []byte) (int, error) {
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
