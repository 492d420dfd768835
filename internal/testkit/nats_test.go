package testkit

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsClient connects to url with reconnection on (forever, 20 ms apart) and reports
// disconnects and reconnects on the returned channels; the connection is closed when
// the test ends.
func natsClient(t *testing.T, url string, opts ...nats.Option) (nc *nats.Conn, down, up <-chan struct{}) {
	t.Helper()
	d, u := make(chan struct{}, 16), make(chan struct{}, 16)
	opts = append([]nats.Option{
		nats.Timeout(2 * time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(20 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { notify(d) }),
		nats.ReconnectHandler(func(*nats.Conn) { notify(u) }),
	}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc, d, u
}

// notify signals ch without blocking nats.go's callback goroutine (a test that does not
// wait for an event must not stall the connection's Close).
func notify(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// pubSub checks that a message published on nc comes back to a subscriber on nc.
func pubSub(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil { // the server has the subscription
		t.Fatalf("flush: %v", err)
	}
	if err := nc.Publish(subject, []byte("hello "+subject)); err != nil {
		t.Fatalf("publish: %v", err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no message on %s: %v", subject, err)
	}
	if string(m.Data) != "hello "+subject {
		t.Fatalf("got %q on %s", m.Data, subject)
	}
}

// jsStore creates (or finds) stream T on t.>, publishes body to t.<n> and checks that
// the stream returns it by its sequence, which it returns.
func jsStore(t *testing.T, nc *nats.Conn, body string) uint64 {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := Context(t, 10*time.Second)
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	ack, err := js.Publish(ctx, "t."+body, []byte(body))
	if err != nil {
		t.Fatalf("JetStream publish: %v", err)
	}
	jsGet(t, st, ack.Sequence, body)
	return ack.Sequence
}

// jsGet checks that st holds body at seq.
func jsGet(t *testing.T, st jetstream.Stream, seq uint64, body string) {
	t.Helper()
	m, err := st.GetMsg(Context(t, 10*time.Second), seq)
	if err != nil {
		t.Fatalf("get message %d: %v", seq, err)
	}
	if string(m.Data) != body {
		t.Fatalf("message %d is %q, want %q", seq, m.Data, body)
	}
}

// stream looks up stream T.
func stream(t *testing.T, nc *nats.Conn) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(Context(t, 10*time.Second), "T")
	if err != nil {
		t.Fatalf("stream T after restart: %v", err)
	}
	return st
}

// TestNATS: the in-process server carries core NATS and JetStream; after Shutdown a
// reconnecting client sees the loss, after Restart it is back on the same URL and what
// JetStream stored is still there.
func TestNATS(t *testing.T) {
	n := NATS(t)
	nc, down, up := natsClient(t, n.URL())
	pubSub(t, nc, "a")
	seq := jsStore(t, nc, "before")

	n.Shutdown()
	Recv(t, down, 10*time.Second)
	if err := nc.Publish("a", nil); err != nil { // buffered for the reconnect, not refused
		t.Fatalf("publish while disconnected: %v", err)
	}
	n.Shutdown() // idempotent

	n.Restart()
	Recv(t, up, 10*time.Second)
	pubSub(t, nc, "b")
	jsGet(t, stream(t, nc), seq, "before")
	jsStore(t, nc, "after")

	n.Restart() // from running: shut down, then started again
	Recv(t, up, 10*time.Second)
	pubSub(t, nc, "c")
}

// TestNATSAuth: with NATSAuth the server refuses a client without credentials and
// accepts one with them.
func TestNATSAuth(t *testing.T) {
	n := NATS(t, NATSAuth("svc", "s3cret"))
	if nc, err := nats.Connect(n.URL(), nats.Timeout(2*time.Second)); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("connect without credentials: %v, want %v", err, nats.ErrAuthorization)
	}
	nc, _, _ := natsClient(t, n.URL(), nats.UserInfo("svc", "s3cret"))
	pubSub(t, nc, "a")
	nc2, _, _ := natsClient(t, fmt.Sprintf("nats://svc:s3cret@127.0.0.1:%d", n.Port()))
	pubSub(t, nc2, "b")
}

// TestNATSProcess: the nats-server binary carries core NATS and JetStream; after Kill a
// reconnecting client sees the loss, after Restart it is back on the same URL with the
// stream recovered, and a message stored before a clean Restart (SIGTERM) is still
// there after it. (A message published just before SIGKILL may not have reached the
// disk yet, so only the stream is required to survive the kill.)
func TestNATSProcess(t *testing.T) {
	p := NATSProcess(t)
	nc, down, up := natsClient(t, p.URL())
	pubSub(t, nc, "a")
	jsStore(t, nc, "before")

	p.Kill()
	Recv(t, down, 10*time.Second)
	p.Kill() // idempotent

	p.Restart()
	Recv(t, up, 10*time.Second)
	pubSub(t, nc, "b")
	stream(t, nc)
	seq := jsStore(t, nc, "after")

	p.Restart() // from running: SIGTERM, then started again
	Recv(t, down, 10*time.Second)
	Recv(t, up, 10*time.Second)
	pubSub(t, nc, "c")
	jsGet(t, stream(t, nc), seq, "after")
}

// TestNATSProcessArgs: extra arguments reach the binary (here: user and password).
func TestNATSProcessArgs(t *testing.T) {
	p := NATSProcess(t, "--user", "svc", "--pass", "s3cret")
	if nc, err := nats.Connect(p.URL(), nats.Timeout(2*time.Second)); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("connect without credentials: %v, want %v", err, nats.ErrAuthorization)
	}
	nc, _, _ := natsClient(t, p.URL(), nats.UserInfo("svc", "s3cret"))
	pubSub(t, nc, "a")
}
