package faults

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// reply is the first frame that settles a handshake: its opcode and, for AUTH_FAIL,
// CLOSE, GOAWAY and control FAIL, its code (0 for AUTH_OK and control RESULT).
type reply struct {
	Op   protocol.Opcode
	Code int
}

// String renders r as "AUTH_OK", "CLOSE 3006" and so on.
func (r reply) String() string {
	name := r.Op.String()
	if wn := wire.OpName(r.Op); wn != "" && r.Op >= wire.OpAuth {
		name = wn
	}
	if r.Code != 0 {
		return fmt.Sprintf("%s %d", name, r.Code)
	}
	return name
}

// errEOF is a connection closed before any settling frame.
var errEOF = errors.New("connection closed without a reply")

// dial opens a TCP connection from src (zero: any) to addr.
func dial(src netip.Addr, addr string, timeout time.Duration) (net.Conn, error) {
	if !src.IsValid() {
		return net.DialTimeout("tcp", addr, timeout)
	}
	return kit.Dialer(src, timeout).Dial("tcp", addr)
}

// hello sends HELLO with token on c and reads until AUTH_OK, AUTH_FAIL, CLOSE or
// GOAWAY, answering nothing, within timeout.
func hello(c net.Conn, token, device string, timeout time.Duration) (reply, error) {
	b, err := (&protocol.Hello{Token: token, DeviceID: device, Platform: "bench"}).AppendFrame(nil, 1, 0)
	if err != nil {
		return reply{}, err
	}
	if _, err := c.Write(b); err != nil {
		return reply{}, err
	}
	return readReply(c, timeout, []protocol.Opcode{protocol.OpAuthOK, protocol.OpAuthFail, protocol.OpClose, protocol.OpGoAway})
}

// controlAuth sends the control port's AUTH with secret on c and reads until RESULT,
// FAIL or CLOSE within timeout.
func controlAuth(c net.Conn, secret string, timeout time.Duration) (reply, error) {
	b, err := wire.AppendFrame(nil, wire.OpAuth, 1, &wire.Auth{Secret: secret, Name: "bench"}, nil)
	if err != nil {
		return reply{}, err
	}
	if _, err := c.Write(b); err != nil {
		return reply{}, err
	}
	return readReply(c, timeout, []protocol.Opcode{wire.OpResult, wire.OpFail, protocol.OpClose})
}

// controlStats sends STATS (seq 2) on an authenticated control connection and
// reads its RESULT or FAIL.
func controlStats(c net.Conn, timeout time.Duration) (reply, error) {
	b, err := wire.AppendFrame(nil, wire.OpStats, 2, struct{}{}, nil)
	if err != nil {
		return reply{}, err
	}
	if _, err := c.Write(b); err != nil {
		return reply{}, err
	}
	return readReply(c, timeout, []protocol.Opcode{wire.OpResult, wire.OpFail, protocol.OpClose})
}

// readReply reads frames from c until one whose opcode is in want.
func readReply(c net.Conn, timeout time.Duration, want []protocol.Opcode) (reply, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return reply{}, err
	}
	defer c.SetReadDeadline(time.Time{})
	var dec protocol.Decoder
	dec.Retain = true
	buf := make([]byte, 4096)
	var got *reply
	for got == nil {
		n, err := c.Read(buf)
		if n > 0 {
			derr := dec.Decode(buf[:n], func(f protocol.Frame) error {
				if got != nil || !slices.Contains(want, f.Op) {
					return nil
				}
				r := reply{Op: f.Op}
				switch f.Op {
				case protocol.OpAuthFail, protocol.OpClose:
					var m protocol.Close // AUTH_FAIL has the same layout
					if m.Decode(f.Body) == nil {
						r.Code = int(m.Code)
					}
				case protocol.OpGoAway:
					var m protocol.GoAway
					if m.Decode(f.Body) == nil {
						r.Code = int(m.Code)
					}
				case wire.OpFail:
					var m wire.Fail
					if _, err := wire.DecodeBody(f.Body, &m); err == nil {
						r.Code = int(m.Code)
					}
				}
				got = &r
				return nil
			})
			if derr != nil {
				return reply{}, derr
			}
		}
		if got != nil {
			break
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) || isEOF(err) {
				return reply{}, fmt.Errorf("%w (%v)", errEOF, err)
			}
			return reply{}, err
		}
	}
	return *got, nil
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) }
