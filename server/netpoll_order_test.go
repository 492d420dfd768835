package server

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
)

// TestNetpollCallbackOrder pins the netpoll behaviour the server's raw-descriptor writes
// and its cleanup rely on (doc.go, "netpoll callback order"): per connection OnPrepare,
// then OnConnect, then OnRequest calls that never overlap, then the close callbacks; an
// OnRequest never starts after them; and a close callback added in OnConnect runs while
// the descriptor is still open, before netpoll's own callback (registered at init) closes
// it, because close callbacks run newest first. It covers a close by the peer and a close
// by the server from another goroutine. If a netpoll upgrade changes any of this, this
// test fails before a write reaches a recycled descriptor.
func TestNetpollCallbackOrder(t *testing.T) {
	for _, serverCloses := range []bool{false, true} {
		name := map[bool]string{false: "peer closes", true: "server closes"}[serverCloses]
		t.Run(name, func(t *testing.T) {
			rec := &orderRecorder{closed: make(chan struct{}), conns: make(chan netpoll.Connection, 1)}
			ln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			el, err := netpoll.NewEventLoop(rec.onRequest,
				netpoll.WithOnPrepare(rec.onPrepare),
				netpoll.WithOnConnect(rec.onConnect),
				netpoll.WithOnDisconnect(rec.onDisconnect),
			)
			if err != nil {
				t.Fatal(err)
			}
			go el.Serve(ln)
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = el.Shutdown(ctx)
			}()

			c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "OnRequest", func() bool { return rec.saw("request") })
			if serverCloses {
				nc := <-rec.conns
				_ = nc.Close()
			} else {
				c.Close()
			}
			select {
			case <-rec.closed:
			case <-time.After(10 * time.Second):
				t.Fatal("close callback never ran")
			}

			rec.mu.Lock()
			defer rec.mu.Unlock()
			if rec.overlap {
				t.Error("OnRequest calls overlapped")
			}
			if rec.fdErr != nil {
				t.Errorf("descriptor already closed in the close callback: %v", rec.fdErr)
			}
			// OnDisconnect (peer close only) may come before or after the last
			// OnRequest; the rest is fixed.
			var got []string
			for _, e := range rec.events {
				if e != "disconnect" {
					got = append(got, e)
				}
			}
			want := []string{"prepare", "connect", "request", "close"}
			if len(got) < len(want) || got[0] != "prepare" || got[1] != "connect" || got[len(got)-1] != "close" {
				t.Fatalf("callback order %v, want prepare, connect, request..., close", rec.events)
			}
			for _, e := range got[2 : len(got)-1] {
				if e != "request" {
					t.Fatalf("callback order %v, want prepare, connect, request..., close", rec.events)
				}
			}
		})
	}
}

// orderRecorder records netpoll's callbacks for one connection.
type orderRecorder struct {
	mu      sync.Mutex
	events  []string
	inReq   bool
	overlap bool
	fdErr   error
	closed  chan struct{}
	conns   chan netpoll.Connection
}

func (r *orderRecorder) add(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *orderRecorder) saw(e string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.events {
		if x == e {
			return true
		}
	}
	return false
}

func (r *orderRecorder) onPrepare(nc netpoll.Connection) context.Context {
	r.add("prepare")
	return context.Background()
}

func (r *orderRecorder) onConnect(ctx context.Context, nc netpoll.Connection) context.Context {
	r.add("connect")
	fd := nc.(netpoll.Conn).Fd()
	want, _ := syscall.Getsockname(fd)
	_ = nc.AddCloseCallback(func(netpoll.Connection) error {
		// The descriptor must still be this socket: open, and bound to the same address.
		got, err := syscall.Getsockname(fd)
		r.mu.Lock()
		switch {
		case err != nil:
			r.fdErr = err
		case !sameSockaddr(got, want):
			r.fdErr = syscall.EBADF
		}
		r.mu.Unlock()
		r.add("close")
		close(r.closed)
		return nil
	})
	r.conns <- nc
	return ctx
}

func (r *orderRecorder) onRequest(ctx context.Context, nc netpoll.Connection) error {
	r.mu.Lock()
	if r.inReq {
		r.overlap = true
	}
	r.inReq = true
	r.events = append(r.events, "request")
	r.mu.Unlock()
	rd := nc.Reader()
	_ = rd.Skip(rd.Len())
	_ = rd.Release()
	r.mu.Lock()
	r.inReq = false
	r.mu.Unlock()
	return nil
}

func (r *orderRecorder) onDisconnect(ctx context.Context, nc netpoll.Connection) {
	r.add("disconnect")
}

// sameSockaddr compares two IPv4 socket addresses.
func sameSockaddr(a, b syscall.Sockaddr) bool {
	x, ok1 := a.(*syscall.SockaddrInet4)
	y, ok2 := b.(*syscall.SockaddrInet4)
	return ok1 && ok2 && x.Port == y.Port && x.Addr == y.Addr
}
