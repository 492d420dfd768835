package control

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// benchClients connects n raw-socket clients (users u0…u<n-1>) to srv. Each reads in a
// goroutine of its own and counts the PUSH frames it decodes into got. stop closes
// them and waits for the readers.
func benchClients(b *testing.B, srv *server.Server, n int, got *atomic.Int64) (stop func()) {
	b.Helper()
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	for i := range n {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			b.Fatalf("dial client %d: %v", i, err)
		}
		conns[i] = c
		hello, _ := (&protocol.Hello{Token: "u" + strconv.Itoa(i), DeviceID: "d"}).AppendFrame(nil, 1, 0)
		if _, err := c.Write(hello); err != nil {
			b.Fatal(err)
		}
		authed := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dec protocol.Decoder
			buf := make([]byte, 64<<10)
			first := true
			for {
				n, err := c.Read(buf)
				if n > 0 {
					pushes := int64(0)
					dec.Decode(buf[:n], func(f protocol.Frame) error {
						switch f.Op {
						case protocol.OpAuthOK:
							if first {
								first = false
								authed <- nil
							}
						case protocol.OpPush:
							pushes++
						}
						return nil
					})
					got.Add(pushes)
				}
				if err != nil {
					if first {
						authed <- err
					}
					return
				}
			}
		}()
		if err := <-authed; err != nil {
			b.Fatalf("client %d: %v", i, err)
		}
	}
	// Pushes reach a connection only once the gateway has made it ready.
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Authenticated < int64(n) || len(srv.UserConns("u"+strconv.Itoa(n-1))) == 0 {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d clients authenticated", srv.Stats().Authenticated, n)
		}
		time.Sleep(time.Millisecond)
	}
	return func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}
}

// BenchmarkControlPush measures control-port push throughput end to end: a service
// pushes 64-byte messages over the control port (one request at a time, each waiting
// for its RESULT) to N clients connected to a real gateway over loopback, which read
// them on raw sockets. delivered/s counts PUSH frames decoded by the clients per
// second of wall time, including the wait until the last one arrived.
//
//	go test -run '^$' -bench BenchmarkControlPush -benchtime 2s ./server/control
//
// Each case runs twice: via=control (a service on the control port) and via=goapi (the
// same push through the gateway's Go API in-process), the baseline that isolates the
// control port's own cost from the fan-out's.
func BenchmarkControlPush(b *testing.B) {
	payload := make([]byte, 64)
	for _, n := range []int{100, 1000} {
		for _, mode := range []string{"all", "room", "users100"} {
			for _, via := range []string{"control", "goapi"} {
				b.Run(fmt.Sprintf("%s/clients=%d/via=%s", mode, n, via), func(b *testing.B) {
					benchPush(b, n, mode, via, payload)
				})
			}
		}
	}
}

// goAPIPush is the baseline path: the same push through the server's Go API.
func goAPIPush(srv *server.Server, mode string, users []string, payload []byte) (int, error) {
	switch mode {
	case "all":
		return srv.Broadcast(payload)
	case "room":
		return srv.PushRoom("bench", payload)
	default:
		res, err := srv.PushUsers(users, payload, server.PushOptions{})
		return res.Delivered, err
	}
}

func benchPush(b *testing.B, n int, mode, via string, payload []byte) {
	p, err := New(Options{Addr: "127.0.0.1:0", Secret: testSecret, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Options{Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: server.InsecureAuthenticator{},
		Handler: p, Logger: testLogger(), MaxConnsPerIP: -1, ConnectRate: -1, MaxRoomsPerConn: 4})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	if err := p.Start(srv); err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	var got atomic.Int64
	stop := benchClients(b, srv, n, &got)
	defer stop()
	svc, err := service.Dial(context.Background(), p.Addr().String(), service.Options{Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	users := make([]string, n)
	for i := range users {
		users[i] = "u" + strconv.Itoa(i)
	}
	if mode == "room" {
		if _, err := svc.JoinUsers(ctx, "bench", users...); err != nil {
			b.Fatal(err)
		}
	}
	if via == "goapi" {
		svc.Close()
	}
	// perOp is how many clients one request reaches; users100 spreads its batches
	// of 100 users round the whole population.
	perOp := n
	if mode == "users100" {
		perOp = min(100, n)
	}

	b.ReportAllocs()
	b.SetBytes(int64(len(payload) * perOp))
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if via == "goapi" {
			off := (i * perOp) % n
			if d, err := goAPIPush(srv, mode, users[off:off+perOp], payload); err != nil || d != perOp {
				b.Fatalf("push %d: delivered %d, %v", i, d, err)
			}
			continue
		}
		var res service.PushResult
		switch mode {
		case "all":
			res, err = svc.Broadcast(ctx, payload)
		case "room":
			res, err = svc.PushRoom(ctx, "bench", payload)
		case "users100":
			off := (i * perOp) % n
			res, err = svc.PushUsers(ctx, users[off:off+perOp], payload, service.PushOptions{})
		}
		if err != nil || res.Delivered != perOp {
			b.Fatalf("push %d: %+v, %v", i, res, err)
		}
	}
	want := int64(b.N) * int64(perOp)
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("clients got %d of %d pushes", got.Load(), want)
		}
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(want)/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pushes/s")
}
