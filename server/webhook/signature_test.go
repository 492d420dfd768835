package webhook

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

const testSecret = "0123456789abcdef-test"

func TestVerify(t *testing.T) {
	body := []byte(`{"type":"online"}`)
	now := time.Unix(1_700_000_000, 0)
	signed := func(ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	good := Sign(testSecret, now.Unix(), body)
	f := func(name string, h http.Header, b []byte, want error) {
		t.Helper()
		if err := verifyAt(testSecret, h, b, time.Minute, now); !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
	f("valid", signed(now, good), body, nil)
	// A retry's fresh timestamp within the tolerance is fine in either direction.
	f("30s old", signed(now.Add(-30*time.Second), Sign(testSecret, now.Unix()-30, body)), body, nil)
	f("rotation: second signature matches", signed(now, "v1=00ff, "+good), body, nil)
	f("body changed", signed(now, good), []byte(`{"type":"offline"}`), ErrBadSignature)
	f("other secret", signed(now, Sign("another-secret-0123", now.Unix(), body)), body, ErrBadSignature)
	f("timestamp changed under the same signature", signed(now.Add(-time.Second), good), body, ErrBadSignature)
	f("not hex", signed(now, "v1=zz"), body, ErrBadSignature)
	f("unknown scheme only", signed(now, "v0="+good[3:]), body, ErrBadSignature)
	f("replayed: too old", signed(now.Add(-2*time.Minute), Sign(testSecret, now.Unix()-120, body)), body, ErrStaleTimestamp)
	f("too far ahead", signed(now.Add(2*time.Minute), Sign(testSecret, now.Unix()+120, body)), body, ErrStaleTimestamp)
	f("no headers", http.Header{}, body, ErrNoSignature)
	f("no signature", signed(now, ""), body, ErrNoSignature)
	h := signed(now, good)
	h.Set(HeaderTimestamp, "yesterday")
	f("timestamp not a number", h, body, ErrNoSignature)

	// The exported Verify reads the real clock.
	if err := Verify(testSecret, signed(time.Now(), Sign(testSecret, time.Now().Unix(), body)), body, 0); err != nil {
		t.Errorf("Verify now: %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := func(v string, want time.Duration) {
		t.Helper()
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
	f("", -1)
	f("7", 7*time.Second)
	f("0", 0)
	f("-3", -1)
	f("soon", -1)
	f(now.Add(90*time.Second).Format(http.TimeFormat), 90*time.Second)
	f(now.Add(-time.Hour).Format(http.TimeFormat), 0) // a date past: at once
}
