package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/tether-gw/tether/protocol"
)

// TestEmptyNamesAreBadRequests: SEND with an empty route, and SUBSCRIBE or UNSUBSCRIBE
// with an empty room, are answered ERROR BAD_REQUEST echoing the seq; the handler never
// sees them and the connection stays open.
func TestEmptyNamesAreBadRequests(t *testing.T) {
	var mu sync.Mutex
	var routes []string
	s := startServer(t, func(o *Options) {
		o.Handler = &routeRecorder{mu: &mu, routes: &routes}
	})
	c := dialRaw(t, s)
	c.hello("empty", "d", "ios")
	expectBadRequest := func(what string, seq uint32) {
		t.Helper()
		f := c.expect(protocol.OpError)
		var e protocol.Error
		if err := e.Decode(f.Body); err != nil || e.Code != protocol.ErrorBadRequest || f.Seq != seq {
			t.Fatalf("%s: ERROR %+v seq %d (%v), want BAD_REQUEST seq %d", what, e, f.Seq, err, seq)
		}
	}
	c.send(&protocol.Send{Route: "", Payload: []byte("x")}, 3, 0)
	expectBadRequest("SEND empty route", 3)
	c.send(&protocol.Subscribe{Room: ""}, 4, 0)
	expectBadRequest("SUBSCRIBE empty room", 4)
	b, err := (&protocol.Subscribe{Room: ""}).AppendFrame(nil, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	b[protocol.LengthSize+1] = byte(protocol.OpUnsubscribe)
	c.write(b)
	expectBadRequest("UNSUBSCRIBE empty room", 5)
	c.send(&protocol.Send{Route: "r"}, 6, 0)
	c.expect(protocol.OpSendReply)
	mu.Lock()
	defer mu.Unlock()
	if len(routes) != 1 || routes[0] != "r" {
		t.Fatalf("handler saw routes %q, want only \"r\"", routes)
	}
}

// routeRecorder records the routes OnMessage sees.
type routeRecorder struct {
	NopHandler
	mu     *sync.Mutex
	routes *[]string
}

func (h *routeRecorder) OnMessage(m *Message) ([]byte, error) {
	h.mu.Lock()
	*h.routes = append(*h.routes, m.Route)
	h.mu.Unlock()
	return nil, nil
}

// TestAuthenticatedGaugeNoDrift: one user on one device id logging in and leaving in a
// loop from several goroutines (each login replacing the previous one when it is still
// open, some connections closing before their AUTH_OK) leaves nothing counted once every
// connection is gone: the authenticated gauge, Stats and the hub's user index all return
// to zero. Before the fix, replaced connections and a close racing addUser each left one
// counted.
func TestAuthenticatedGaugeNoDrift(t *testing.T) {
	s := startServer(t, nil)
	addr := s.Addr().String()
	const goroutines, iterations = 4, 500
	hello, err := (&protocol.Hello{Token: "drift#same", DeviceID: "same", Platform: "ios"}).AppendFrame(nil, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		go func(g int) {
			for i := 0; i < iterations; i++ {
				if err := loginOnce(addr, hello, (g+i)%3 != 0); err != nil {
					errs <- fmt.Errorf("goroutine %d iteration %d: %w", g, i, err)
					return
				}
			}
			errs <- nil
		}(g)
	}
	for g := 0; g < goroutines; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every count back to 0", func() bool {
		st := s.Stats()
		return st.Connections == 0 && st.Authenticated == 0 && st.Users == 0 &&
			s.hub.authed.Load() == 0 && len(s.UserConns("drift")) == 0
	})
}

// loginOnce dials addr, sends hello and, if waitAuth, waits for AUTH_OK (a CLOSE
// REPLACED may follow it), then closes.
func loginOnce(addr string, hello []byte, waitAuth bool) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(hello); err != nil {
		return err
	}
	if !waitAuth {
		return nil
	}
	dec := protocol.Decoder{MaxFrame: protocol.MaxFrameLimit}
	errDone := errors.New("done")
	buf := make([]byte, 4096)
	for {
		n, err := nc.Read(buf)
		if n > 0 {
			derr := dec.Decode(buf[:n], func(f protocol.Frame) error {
				if f.Op == protocol.OpAuthOK {
					return errDone
				}
				return fmt.Errorf("got %v before AUTH_OK", f.Op)
			})
			if derr == errDone {
				return nil
			}
			if derr != nil {
				return derr
			}
		}
		if errors.Is(err, syscall.ECONNRESET) {
			// Seen twice, only with other packages' tests churning loopback connections
			// alongside (cause not pinned down; a reused 4-tuple is the likely one): one
			// more way for a login to end, which the counts must survive like the others.
			return nil
		}
		if err != nil {
			return fmt.Errorf("waiting for AUTH_OK: %w", err)
		}
	}
}

// overflow logs user in on a client that does not read, then pushes 8 KiB to it until
// its queue passes MaxOutboundBytes and the server starts closing it, failing the test
// if 20,000 pushes do not get there. It returns the client and its Conn.
func overflow(t *testing.T, s *Server, user string) (*rawConn, *Conn) {
	t.Helper()
	c := dialRaw(t, s)
	c.hello(user, "a", "ios")
	sc := s.UserConns(user)[0]
	payload := bytes.Repeat([]byte("z"), 8<<10)
	for i := 0; i < 20000 && !sc.closing(); i++ {
		if _, err := s.PushUser(user, payload); err != nil {
			t.Fatal(err)
		}
	}
	if !sc.closing() {
		t.Fatal("never became a slow consumer")
	}
	return c, sc
}

// TestSlowConsumerGetsClose: a client that stops reading is closed as a slow consumer
// once its queue passes MaxOutboundBytes; the queued backlog is dropped, and when the
// client drains what the kernel already holds it finds CLOSE SLOW_CONSUMER after the
// last PUSH, not a bare EOF. The made-up clock keeps the final-frame grace from firing,
// so the result does not depend on how fast the client drains.
func TestSlowConsumerGetsClose(t *testing.T) {
	s, _ := startManual(t, func(o *Options) { o.MaxOutboundBytes = 64 << 10 })
	c, sc := overflow(t, s, "slowclose")
	if got := sc.closeCode(); got != protocol.CloseSlowConsumer {
		t.Fatalf("close code %v, want SLOW_CONSUMER", got)
	}
	c.expectClosed(protocol.OpClose, protocol.CloseSlowConsumer)
	waitFor(t, "backlog released", func() bool { return s.backlogBytes.Load() == 0 && s.Stats().Connections == 0 })
}

// TestConnSizeClass: Conn stays within the 288-byte allocation size class, which memory
// per idle connection depends on.
func TestConnSizeClass(t *testing.T) {
	// What every idle authenticated connection allocates, each held to the size class it
	// is in (memory per connection is a headline figure: BENCHMARKS.md §1).
	for _, tc := range []struct {
		name       string
		size, want uintptr
	}{
		{"Conn", unsafe.Sizeof(Conn{}), 288},
		{"identity", unsafe.Sizeof(identity{}), 80},
		{"user", unsafe.Sizeof(user{}), 144},
	} {
		if tc.size > tc.want {
			t.Errorf("%s is %d bytes, past the %d-byte size class", tc.name, tc.size, tc.want)
		}
	}
}

// TestCloseWithPendingFinalFrame: Close does not wait on a slow consumer whose CLOSE is
// still queued behind bytes it never reads (the made-up clock keeps its grace timer from
// firing): its socket is closed and every count returns to zero.
func TestCloseWithPendingFinalFrame(t *testing.T) {
	s, _ := startManual(t, func(o *Options) { o.MaxOutboundBytes = 64 << 10 })
	overflow(t, s, "stuck")
	s.Close()
	if st := s.Stats(); st.Connections != 0 || st.Authenticated != 0 || s.backlogBytes.Load() != 0 {
		t.Fatalf("after Close: %+v, backlog %d bytes", st, s.backlogBytes.Load())
	}
}

// TestServerSendsOnlyUTF8: free text from handlers and callers (an ERROR message, a kick
// reason) is cleaned before it reaches the wire, and an authenticator's identity that
// AUTH_OK could not carry is refused with INVALID_TOKEN; every frame the client gets
// decodes (PROTOCOL.md §2: every str is UTF-8).
func TestServerSendsOnlyUTF8(t *testing.T) {
	s := startServer(t, func(o *Options) {
		o.Handler = replyErrorHandler{}
		o.Authenticator = AuthenticatorFunc(func(_ context.Context, req AuthRequest) (Identity, error) {
			if req.Token == "mangled" {
				return Identity{UserID: "\xffbob"}, nil // a custom authenticator's bug
			}
			return Identity{UserID: req.Token}, nil
		})
	})
	c := dialRaw(t, s)
	c.send(&protocol.Hello{Token: "bob"}, 1, 0)
	c.expect(protocol.OpAuthOK)
	c.send(&protocol.Send{Route: "r"}, 2, 0)
	f := c.expect(protocol.OpError)
	var e protocol.Error
	if err := e.Decode(f.Body); err != nil || e.Code != protocol.ErrorDenied {
		t.Fatalf("ERROR %+v: %v; want a decodable DENIED", e, err)
	}
	if n := s.KickUser("bob", protocol.CloseKicked, "bye \xff"); n != 1 {
		t.Fatalf("KickUser kicked %d", n)
	}
	c.expectClosed(protocol.OpClose, protocol.CloseKicked)

	bad := dialRaw(t, s)
	bad.send(&protocol.Hello{Token: "mangled"}, 1, 0)
	bad.expectClosed(protocol.OpAuthFail, protocol.CloseInvalidToken)

	// A client's own invalid UTF-8 is a malformed HELLO.
	raw := dialRaw(t, s)
	raw.write(helloWithRawToken(t, "\xffbob"))
	raw.expectClosed(protocol.OpClose, protocol.CloseProtocolError)
}

// replyErrorHandler fails every message with text that is not UTF-8.
type replyErrorHandler struct{ NopHandler }

func (replyErrorHandler) OnMessage(*Message) ([]byte, error) {
	return nil, &ReplyError{Code: protocol.ErrorDenied, Message: "not \xc3 valid"}
}

// helloWithRawToken builds a HELLO whose token bytes are sent as they are, even when
// the encoder would refuse them (a broken or hostile client).
func helloWithRawToken(t *testing.T, token string) []byte {
	t.Helper()
	ph := strings.Repeat("~", len(token))
	b, err := (&protocol.Hello{Token: ph}).AppendFrame(nil, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Replace(b, []byte(ph), []byte(token), 1)
}
