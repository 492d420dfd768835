package service

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// fakeGateway accepts one control connection, answers AUTH, and then lets handle
// read the rest.
func fakeGateway(t *testing.T, handle func(nc net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		buf := make([]byte, 4096)
		n, _ := nc.Read(buf)
		f, _, err := protocol.Parse(buf[:n], 0)
		if err != nil {
			return
		}
		res, _ := wire.AppendFrame(nil, wire.OpResult, f.Seq, &wire.AuthResult{Session: 1, MaxFrame: 1 << 20}, nil)
		nc.Write(res)
		handle(nc)
	}()
	return ln.Addr().String()
}

// A request with no answer times out with ErrTimeout; the caller's own cancellation
// is reported as such.
func TestRequestTimeout(t *testing.T) {
	addr := fakeGateway(t, func(nc net.Conn) { io.Copy(io.Discard, nc) })
	svc, err := Dial(context.Background(), addr, Options{Secret: "x", RequestTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, err := svc.Stats(context.Background()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Stats = %v, want ErrTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := svc.Stats(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stats with a cancelled context = %v, want context.Canceled", err)
	}
}

// A CLOSE from the gateway ends requests in flight with the *CloseError.
func TestGatewayClose(t *testing.T) {
	addr := fakeGateway(t, func(nc net.Conn) {
		buf := make([]byte, 4096)
		nc.Read(buf) // the request
		cl, _ := (&protocol.Close{Code: protocol.CloseSlowConsumer, Reason: "slow"}).AppendFrame(nil, 0, 0)
		nc.Write(cl)
	})
	svc, err := Dial(context.Background(), addr, Options{Secret: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	_, err = svc.Stats(context.Background())
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseSlowConsumer || ce.Terminal() {
		t.Fatalf("Stats = %v, want CloseError SLOW_CONSUMER", err)
	}
	<-svc.Done()
}
