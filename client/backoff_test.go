package client

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const lo, hi = 250 * time.Millisecond, 30 * time.Second
	top := func(n int64) int64 { return n - 1 } // the largest value randN may return
	f := func(attempt int, want time.Duration) {
		t.Helper()
		if got := backoff(attempt, lo, hi, top); got != want {
			t.Errorf("backoff(%d) ceiling = %v, want %v", attempt, got, want)
		}
		if got := backoff(attempt, lo, hi, func(int64) int64 { return 0 }); got != 0 {
			t.Errorf("backoff(%d) floor = %v, want 0 (full jitter)", attempt, got)
		}
	}
	f(0, lo)    // the first wait is at most the base
	f(1, 2*lo)  // doubling
	f(3, 8*lo)  //
	f(7, hi)    // 250ms·2⁷ = 32s, capped
	f(1000, hi) // no overflow for large attempts
	if got := backoff(5, 0, 0, top); got != 0 {
		t.Errorf("zero backoff = %v", got)
	}
}

func TestBackoffIsJittered(t *testing.T) {
	seen := make(map[time.Duration]bool)
	for range 50 {
		d := backoff(4, time.Millisecond, time.Second, rand.Int64N)
		if d < 0 || d > 16*time.Millisecond {
			t.Fatalf("backoff(4) = %v outside [0, 16ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct waits in 50 draws", len(seen))
	}
}
