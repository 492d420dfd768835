package kit

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// Dialer returns a TCP dialer whose connections come from src with a port the kernel
// picks at connect (IP_BIND_ADDRESS_NO_PORT), so that each loader can own a loopback
// source address and its whole port range.
func Dialer(src netip.Addr, timeout time.Duration) *net.Dialer {
	return &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: timeout, Control: bindAddressNoPort}
}

// bindAddressNoPort sets IP_BIND_ADDRESS_NO_PORT on a socket about to be bound to a
// source address, so the kernel picks its port at connect, by the whole 4-tuple,
// instead of at bind. Without it every bind searches the source address's ports for
// one that is free, which with ten thousand in use (and more in TIME_WAIT from the
// previous server's loaders) cost the loaders seconds of system CPU and slowed the
// connection rate to a quarter (measured with tether-memtest).
func bindAddressNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT from linux/in.h, which package
// syscall does not define.
const ipBindAddressNoPort = 24

// CloseReset closes c with a reset (linger 0) rather than leaving its port in
// TIME_WAIT for a minute, where it would slow the port search of the next run. For
// a TLS or WebSocket connection it resets the TCP connection underneath (see TCP):
// no close_notify or close frame is sent.
func CloseReset(c net.Conn) error {
	raw := TCP(c)
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return raw.Close()
}

// Launch calls start(i) for i = 0 .. n-1, the i-th no earlier than i/rate seconds
// after the call (rate 0: as fast as sem allows), each after taking a slot of sem;
// start's work gives the slot back when it is done with it, which bounds the
// handshakes in progress. It returns when every start was called or ctx ended.
func Launch(ctx context.Context, n int, rate float64, sem chan struct{}, start func(i int)) {
	t0 := time.Now()
	for i := range n {
		if rate > 0 {
			due := t0.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if wait := time.Until(due); wait > time.Millisecond {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		start(i)
	}
}

// DescribeClose renders the code and reason of an AUTH_FAIL, CLOSE or GOAWAY frame.
func DescribeClose(f protocol.Frame) string {
	if f.Op == protocol.OpGoAway {
		var g protocol.GoAway
		if g.Decode(f.Body) == nil {
			return fmt.Sprintf("%v %s", g.Code, g.Reason)
		}
	} else {
		var m protocol.Close // AUTH_FAIL has the same layout
		if m.Decode(f.Body) == nil {
			return fmt.Sprintf("%v %s", m.Code, m.Reason)
		}
	}
	return "undecodable body"
}
