package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
)

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
	ev     Event
	verify error // what Verify said
}

// receiver is a real HTTP endpoint that verifies every request with Verify and
// answers with answer(n) for the n-th request (from 0); a nil answer means 200.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(n int, w http.ResponseWriter) int

	// hold, when set, makes every request wait until release closes it.
	hold     chan struct{}
	arrived  chan int // told of each held request
	released sync.Once

	mu  sync.Mutex
	got []received
}

// newHangingReceiver returns a receiver whose handler holds every request (after
// recording it and telling rc.arrived) until rc.release, at the end of the test at
// the latest.
func newHangingReceiver(t *testing.T) *receiver {
	rc := newReceiver(t, nil)
	rc.hold, rc.arrived = make(chan struct{}), make(chan int, 100)
	return rc
}

// release lets held requests, and later ones, be answered.
func (rc *receiver) release() {
	rc.released.Do(func() {
		if rc.hold != nil {
			close(rc.hold)
		}
	})
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter) int) *receiver {
	rc := &receiver{t: t, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := received{header: r.Header.Clone(), body: body, verify: Verify(testSecret, r.Header, body, 0)}
		_ = json.Unmarshal(body, &got.ev)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, got)
		rc.mu.Unlock()
		if rc.hold != nil {
			rc.arrived <- n
			<-rc.hold
		}
		status := http.StatusOK
		if rc.answer != nil {
			status = rc.answer(n, w)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(func() {
		rc.release() // first: Close waits for the handlers
		rc.srv.Close()
	})
	return rc
}

// requests returns a copy of what the receiver got so far.
func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// waitRequests polls until the receiver got at least n requests and returns them.
func (rc *receiver) waitRequests(n int) []received {
	rc.t.Helper()
	testkit.WaitFor(rc.t, "webhook requests", func() bool { return len(rc.requests()) >= n })
	return rc.requests()
}

// clock is the Sender's Now and its wait between retries: a wait returns at once and
// advances the clock by the wait plus one second, so each attempt's timestamp (unix
// seconds) differs. It starts at the real time so Verify's tolerance accepts it.
type clock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) wait(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d + time.Second)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *clock) recorded() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// newSender starts a Sender posting to url with one worker, the test clock and the
// test secret; mutate adjusts the options. It is closed when the test ends.
func newSender(t *testing.T, url string, clk *clock, mutate func(o *Options)) *Sender {
	t.Helper()
	o := Options{URL: url, Secret: testSecret, Events: true, Workers: 1, Logger: testkit.Logger(),
		BackoffMin: time.Second, BackoffMax: 4 * time.Second}
	if clk != nil {
		o.Now, o.wait = clk.Now, clk.wait
	}
	if mutate != nil {
		mutate(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(testkit.Context(t, 10*time.Second)) })
	return s
}

// metric returns a Sender's metric series (exact name with labels), -1 if absent.
func metric(t *testing.T, s *Sender, name string) float64 {
	t.Helper()
	return testkit.Metric(t, s.WriteMetrics, name)
}

// waitMetric polls until a Sender's metric reaches want.
func waitMetric(t *testing.T, s *Sender, name string, want float64) {
	t.Helper()
	testkit.WaitFor(t, name, func() bool { return metric(t, s, name) >= want })
}

const (
	mOK      = `tether_webhook_deliveries_total{result="ok"}`
	mFailed  = `tether_webhook_deliveries_total{result="failed"}`
	mDropped = `tether_webhook_deliveries_total{result="dropped"}`
	mRetried = `tether_webhook_deliveries_total{result="retried"}`
)
