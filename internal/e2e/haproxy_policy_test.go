package e2e

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// The PROXY policy without haproxy, byte by byte: what the gateway does with headers a
// real haproxy does not send (v1 typed by hand, LOCAL, split across reads, from the
// wrong source, missing).

// proxyV2 returns a PROXY v2 header: PROXY TCP4 from src to dst, or LOCAL when local.
func proxyV2(local bool, src, dst netip.AddrPort) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	if local {
		return append(b, 0x20, 0x00, 0, 0)
	}
	b = append(b, 0x21, 0x11, 0, 12)
	s, d := src.Addr().As4(), dst.Addr().As4()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// rawFrom dials addr from the loopback address src; closed when the test ends.
func rawFrom(t *testing.T, addr, src string) *testkit.FrameConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return testkit.NewFrameConn(t, nc)
}

// helloFrame is a HELLO for token.
func helloFrame(t *testing.T, token string) []byte {
	t.Helper()
	b, err := (&protocol.Hello{Token: token, DeviceID: "d"}).AppendFrame(nil, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantOp reads the next frame and requires op.
func wantOp(t *testing.T, fc *testkit.FrameConn, op protocol.Opcode) protocol.Frame {
	t.Helper()
	f, err := fc.Next(5 * time.Second)
	if err != nil || f.Op != op {
		t.Fatalf("got %v (%v), want %v", f.Op, err, op)
	}
	return f
}

// wantClosed reads until the connection ends, within d, and returns the CLOSE code it
// got before the end (0 for none).
func wantClosed(t *testing.T, fc *testkit.FrameConn, d time.Duration) protocol.CloseCode {
	t.Helper()
	var code protocol.CloseCode
	for {
		f, err := fc.Next(d)
		if err != nil {
			if !testkit.IsClosed(err) {
				t.Fatalf("connection not closed within %v: %v", d, err)
			}
			return code
		}
		if f.Op == protocol.OpClose {
			var m protocol.Close
			if err := m.Decode(f.Body); err != nil {
				t.Fatal(err)
			}
			code = m.Code
		}
	}
}

// TestProxyPolicy: from the trusted network, a v1 header typed by hand and a v2 header
// split at every byte both name the client; a LOCAL header leaves the socket's address;
// a first frame that is no PROXY header is refused; from an untrusted source a header is
// refused with CLOSE PROTOCOL_ERROR, and a connection without one is served under its
// own address.
func TestProxyPolicy(t *testing.T) {
	auth := &authRecorder{}
	g := proxyGateway(t, auth, nil)
	addr := g.srv.Addr().String()
	gw := netip.MustParseAddrPort(addr)

	t.Run("v1", func(t *testing.T) {
		fc := rawFrom(t, addr, "127.0.0.1")
		fc.Write(append([]byte("PROXY TCP4 198.51.100.7 127.0.0.1 40001 7000\r\n"), helloFrame(t, "v1user")...))
		wantOp(t, fc, protocol.OpAuthOK)
		if got := auth.addr("v1user"); got == nil || got.String() != "198.51.100.7:40001" {
			t.Fatalf("Authenticator saw %v, want 198.51.100.7:40001", got)
		}
	})
	t.Run("v2 split", func(t *testing.T) {
		// Every split point of the header and the first byte of the HELLO after it.
		hdr := proxyV2(false, netip.MustParseAddrPort("203.0.113.9:40002"), gw)
		for i := 1; i <= len(hdr); i++ {
			token := "split" + strconv.Itoa(i)
			fc := rawFrom(t, addr, "127.0.0.1")
			b := append(append([]byte(nil), hdr...), helloFrame(t, token)...)
			fc.Write(b[:i])
			time.Sleep(2 * time.Millisecond) // likely a separate read on the gateway; not a wait for a result
			fc.Write(b[i:])
			wantOp(t, fc, protocol.OpAuthOK)
			if got := auth.addr(token); got == nil || got.String() != "203.0.113.9:40002" {
				t.Fatalf("split at %d: Authenticator saw %v, want 203.0.113.9:40002", i, got)
			}
			fc.Conn.Close()
		}
	})
	t.Run("v2 local", func(t *testing.T) {
		fc := rawFrom(t, addr, "127.0.0.1")
		fc.Write(append(proxyV2(true, netip.AddrPort{}, netip.AddrPort{}), helloFrame(t, "localuser")...))
		wantOp(t, fc, protocol.OpAuthOK)
		if got := hostOf(auth.addr("localuser")); got != "127.0.0.1" {
			t.Fatalf("Authenticator saw %v after LOCAL, want the socket's 127.0.0.1", auth.addr("localuser"))
		}
	})
	t.Run("trusted without header", func(t *testing.T) {
		before := g.serverMetric(`tether_proxy_headers_total{result="refused"}`)
		fc := rawFrom(t, addr, "127.0.0.1")
		fc.Write(helloFrame(t, "noheader"))
		wantClosed(t, fc, 5*time.Second)
		if auth.addr("noheader") != nil {
			t.Fatal("a HELLO without the PROXY header reached the Authenticator")
		}
		if after := g.serverMetric(`tether_proxy_headers_total{result="refused"}`); after != max(before, 0)+1 {
			t.Fatalf("refused headers %v -> %v, want one more", before, after)
		}
	})
	t.Run("untrusted with header", func(t *testing.T) {
		fc := rawFrom(t, addr, "127.0.0.5")
		fc.Write(append(proxyV2(false, netip.MustParseAddrPort("192.0.2.1:1"), gw), helloFrame(t, "forger")...))
		if code := wantClosed(t, fc, 5*time.Second); code != protocol.CloseProtocolError {
			t.Fatalf("CLOSE %v, want PROTOCOL_ERROR", code)
		}
		if auth.addr("forger") != nil {
			t.Fatal("a forged PROXY header reached the Authenticator")
		}
		if n := g.serverMetric(`tether_proxy_headers_total{result="untrusted"}`); n != 1 {
			t.Fatalf("untrusted headers %v, want 1", n)
		}
	})
	t.Run("untrusted without header", func(t *testing.T) {
		fc := rawFrom(t, addr, "127.0.0.6")
		fc.Write(helloFrame(t, "direct"))
		wantOp(t, fc, protocol.OpAuthOK)
		if got := hostOf(auth.addr("direct")); got != "127.0.0.6" {
			t.Fatalf("Authenticator saw %v, want 127.0.0.6", auth.addr("direct"))
		}
	})
}

// TestProxyHeaderDeadline: a connection from the trusted network that sends nothing is
// closed once the 3 s PROXY header deadline has passed, with nothing written to it (the
// balancer's side gets no tether frame), and counted as a refused header, as the
// metric's doc in server/metrics.go says ("refused": malformed, missing from a trusted
// source).
func TestProxyHeaderDeadline(t *testing.T) {
	g := proxyGateway(t, &authRecorder{}, nil)
	fc := rawFrom(t, g.srv.Addr().String(), "127.0.0.1")
	start := time.Now()
	if code := wantClosed(t, fc, 10*time.Second); code != 0 {
		t.Fatalf("CLOSE %v written before the PROXY header", code)
	}
	if d := time.Since(start); d < 2500*time.Millisecond {
		t.Fatalf("closed after %v, before the 3 s header deadline", d)
	}
	if n := g.serverMetric(`tether_proxy_headers_total{result="refused"}`); n != 1 {
		t.Fatalf("tether_proxy_headers_total{result=\"refused\"} is %v after a missing header, want 1", n)
	}
}
