package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
)

func TestNewValidates(t *testing.T) {
	f := func(name string, o Options, want error) {
		t.Helper()
		s, err := New(o)
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
		if s != nil {
			_ = s.Close(context.Background())
		}
	}
	f("no URL", Options{Secret: testSecret}, ErrNoURL)
	f("not http", Options{URL: "ftp://x/y", Secret: testSecret}, ErrNoURL)
	f("no host", Options{URL: "http:///hook", Secret: testSecret}, ErrNoURL)
	f("no secret", Options{URL: "http://127.0.0.1:1/hook"}, ErrWeakSecret)
	f("short secret", Options{URL: "http://127.0.0.1:1/hook", Secret: "short"}, ErrWeakSecret)
	f("valid", Options{URL: "http://127.0.0.1:1/hook", Secret: testSecret}, nil)
}

// An event arrives signed, with the headers and body docs/WEBHOOKS.md describes.
func TestDeliverEvent(t *testing.T) {
	rc := newReceiver(t, nil)
	clk := newClock()
	s := newSender(t, rc.srv.URL, clk, nil)
	s.Offer(&Event{Type: TypeOffline, Conn: 42, User: "alice", Device: "d1", Platform: "ios", Code: 3502, Reason: "KICKED"})
	r := rc.waitRequests(1)[0]
	if r.verify != nil {
		t.Fatalf("Verify: %v", r.verify)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	ev := r.ev
	if ev.Type != "offline" || ev.Conn != 42 || ev.User != "alice" || ev.Device != "d1" || ev.Platform != "ios" ||
		ev.Code != 3502 || ev.Reason != "KICKED" || ev.Node != 0 {
		t.Errorf("body %s", r.body)
	}
	if ev.ID == "" || r.header.Get(HeaderID) != ev.ID {
		t.Errorf("id %q, header %q", ev.ID, r.header.Get(HeaderID))
	}
	if !ev.Time.Equal(clk.Now()) || !strings.Contains(string(r.body), `"time":"`+clk.Now().UTC().Format(time.RFC3339Nano)+`"`) {
		t.Errorf("time: %s", r.body)
	}
	waitMetric(t, s, mOK, 1)
	if err := s.Close(testkit.Context(t, 10*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// 503s are retried with backoff, keeping the id and body and signing each attempt
// afresh, until a 2xx.
func TestRetryThenSuccess(t *testing.T) {
	rc := newReceiver(t, func(n int, _ http.ResponseWriter) int {
		if n < 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	clk := newClock()
	s := newSender(t, rc.srv.URL, clk, nil)
	s.Offer(&Event{Type: TypeOnline, Conn: 1, User: "alice"})
	waitMetric(t, s, mOK, 1)
	got := rc.requests()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	for i, r := range got {
		if r.verify != nil {
			t.Errorf("attempt %d: Verify: %v", i, r.verify)
		}
		if r.ev.ID != got[0].ev.ID || string(r.body) != string(got[0].body) {
			t.Errorf("attempt %d: id %s body %s; want those of the first", i, r.ev.ID, r.body)
		}
		if i > 0 && (r.header.Get(HeaderSignature) == got[i-1].header.Get(HeaderSignature) ||
			r.header.Get(HeaderTimestamp) == got[i-1].header.Get(HeaderTimestamp)) {
			t.Errorf("attempt %d kept the timestamp or signature of the one before", i)
		}
	}
	// Full jitter: the n-th wait is within [0, min(Max, Min·2ⁿ)].
	waits := clk.recorded()
	if len(waits) != 2 || waits[0] > time.Second || waits[1] > 2*time.Second {
		t.Errorf("waits %v, want 2 within 1s and 2s", waits)
	}
	if r, f := metric(t, s, mRetried), metric(t, s, mFailed); r != 2 || f != 0 {
		t.Errorf("retried %v failed %v, want 2 and 0", r, f)
	}
}

// A 429's Retry-After replaces the backoff, capped at BackoffMax.
func TestRetryAfterHonoured(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter) int {
		switch n {
		case 0:
			w.Header().Set("Retry-After", "3")
			return http.StatusTooManyRequests
		case 1:
			w.Header().Set("Retry-After", "3600")
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	clk := newClock()
	s := newSender(t, rc.srv.URL, clk, nil)
	s.Offer(&Event{Type: TypeOnline, Conn: 1, User: "alice"})
	waitMetric(t, s, mOK, 1)
	if w := clk.recorded(); len(w) != 2 || w[0] != 3*time.Second || w[1] != 4*time.Second {
		t.Errorf("waits %v, want [3s 4s] (Retry-After, then capped at BackoffMax)", w)
	}
}

// A 400 is not retried: one attempt, counted failed.
func TestClientErrorNotRetried(t *testing.T) {
	rc := newReceiver(t, func(int, http.ResponseWriter) int { return http.StatusBadRequest })
	clk := newClock()
	s := newSender(t, rc.srv.URL, clk, nil)
	s.Offer(&Event{Type: TypeOnline, Conn: 1, User: "alice"})
	waitMetric(t, s, mFailed, 1)
	if err := s.Close(testkit.Context(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, r := len(rc.requests()), metric(t, s, mRetried); n != 1 || r != 0 {
		t.Errorf("%d requests, %v retried; want 1 and 0", n, r)
	}
}

// A receiver that keeps failing, or cannot be reached, is tried MaxAttempts times.
func TestMaxAttempts(t *testing.T) {
	rc := newReceiver(t, func(int, http.ResponseWriter) int { return http.StatusInternalServerError })
	s := newSender(t, rc.srv.URL, newClock(), func(o *Options) { o.MaxAttempts = 3 })
	s.Offer(&Event{Type: TypeOnline, Conn: 1, User: "alice"})
	waitMetric(t, s, mFailed, 1)
	if n, r := len(rc.requests()), metric(t, s, mRetried); n != 3 || r != 2 {
		t.Errorf("%d requests, %v retried; want 3 and 2", n, r)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused from now on
	s2 := newSender(t, "http://"+addr+"/hook", newClock(), func(o *Options) { o.MaxAttempts = 2 })
	s2.Offer(&Event{Type: TypeOnline, Conn: 1, User: "alice"})
	waitMetric(t, s2, mFailed, 1)
	if r := metric(t, s2, mRetried); r != 1 {
		t.Errorf("network error: %v retried, want 1", r)
	}
}

// A full queue drops its oldest delivery, counted, and Offer does not wait.
func TestQueueFullDropsOldest(t *testing.T) {
	rc := newHangingReceiver(t)
	s := newSender(t, rc.srv.URL, newClock(), func(o *Options) { o.QueueSize = 2 })
	users := []string{"a", "b", "c", "d"}
	s.Offer(&Event{Type: TypeOnline, Conn: 1, User: users[0]})
	testkit.Recv(t, rc.arrived, 10*time.Second) // the worker holds "a"
	for _, u := range users[1:] {
		if !s.Offer(&Event{Type: TypeOnline, Conn: 1, User: u}) {
			t.Fatalf("Offer %s refused", u)
		}
	}
	if d, q := metric(t, s, mDropped), metric(t, s, "tether_webhook_queue_length"); d != 1 || q != 2 {
		t.Fatalf("dropped %v, queue %v; want 1 and 2", d, q)
	}
	rc.release()
	waitMetric(t, s, mOK, 3)
	var got []string
	for _, r := range rc.requests() {
		got = append(got, r.ev.User)
	}
	if strings.Join(got, ",") != "a,c,d" {
		t.Errorf("delivered %v, want a,c,d (b, the oldest queued, dropped)", got)
	}
}

// Close delivers what is queued; given up on, it counts the rest and returns.
func TestClose(t *testing.T) {
	rc := newReceiver(t, nil)
	s := newSender(t, rc.srv.URL, nil, func(o *Options) { o.Workers = 2 })
	for i := range 20 {
		s.Offer(&Event{Type: TypeOnline, Conn: uint64(i), User: "u"})
	}
	if err := s.Close(testkit.Context(t, 10*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := len(rc.requests()); n != 20 {
		t.Errorf("%d delivered before Close returned, want 20", n)
	}
	if s.Offer(&Event{Type: TypeOnline, User: "late"}) || metric(t, s, mDropped) != 1 {
		t.Errorf("an Offer after Close must be refused and counted dropped")
	}

	rc2 := newHangingReceiver(t)
	s2 := newSender(t, rc2.srv.URL, nil, nil)
	for i := range 3 {
		s2.Offer(&Event{Type: TypeOnline, Conn: uint64(i), User: "u"})
	}
	testkit.Recv(t, rc2.arrived, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s2.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a hanging receiver: %v", err)
	}
	if f, d := metric(t, s2, mFailed), metric(t, s2, mDropped); f != 1 || d != 2 {
		t.Errorf("failed %v dropped %v, want 1 (in flight) and 2 (queued)", f, d)
	}
}

func TestMetricsExposition(t *testing.T) {
	rc := newReceiver(t, nil)
	s := newSender(t, rc.srv.URL, nil, nil)
	s.Offer(&Event{Type: TypeOnline, Conn: 1, User: "alice"})
	waitMetric(t, s, mOK, 1)
	var b strings.Builder
	s.WriteMetrics(&b)
	for _, want := range []string{"# HELP tether_webhook_deliveries_total Webhook deliveries by result",
		mOK, mFailed, mDropped, mRetried, "tether_webhook_queue_length 0", "tether_webhook_delivery_duration_seconds_count 1"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
	testkit.Promtool(t, b.String())
}
