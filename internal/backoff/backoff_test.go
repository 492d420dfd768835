package backoff

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// top returns the largest value a jitter source may return, so Delay returns
// its ceiling; bottom returns the smallest.
func top(n int64) int64  { return n - 1 }
func bottom(int64) int64 { return 0 }
func half(n int64) int64 { return n / 2 }
func never(int64) int64  { panic("Rand called") }
func policy(r func(int64) int64) Policy {
	return Policy{Min: 250 * time.Millisecond, Max: 30 * time.Second, Rand: r}
}

func TestCeilingAndJitterBounds(t *testing.T) {
	p := policy(top)
	f := func(n int, want time.Duration) {
		t.Helper()
		if got := p.Ceiling(n); got != want {
			t.Errorf("Ceiling(%d) = %v, want %v", n, got, want)
		}
		if got := p.Delay(n); got != want {
			t.Errorf("Delay(%d) with the largest draw = %v, want the ceiling %v", n, got, want)
		}
		if got := (Policy{Min: p.Min, Max: p.Max, Rand: bottom}).Delay(n); got != 0 {
			t.Errorf("Delay(%d) with the smallest draw = %v, want 0 (full jitter)", n, got)
		}
	}
	f(0, 250*time.Millisecond) // the first wait is at most Min
	f(1, 500*time.Millisecond) // doubling
	f(3, 2*time.Second)        //
	f(7, 30*time.Second)       // 250ms·2⁷ = 32s, capped
	f(1000, 30*time.Second)    // no overflow for huge n
	if got := (Policy{Min: time.Nanosecond, Max: math.MaxInt64}).Ceiling(maxFailures); got != math.MaxInt64 {
		t.Errorf("Ceiling near the int64 limit = %v, want the cap (no overflow)", got)
	}
	if got := (Policy{Min: 3, Max: math.MaxInt64}).Ceiling(1 << 40); got != math.MaxInt64 {
		t.Errorf("Ceiling(2⁴⁰) with Max = MaxInt64 is %v, want MaxInt64", got)
	}
	if got := (Policy{Rand: never}).Delay(5); got != 0 {
		t.Errorf("zero Policy waits %v, want 0 without drawing", got)
	}
	// The default source stays in range and is jittered.
	seen := map[time.Duration]bool{}
	for range 50 {
		d := Policy{Min: time.Millisecond, Max: time.Second}.Delay(4)
		if d < 0 || d > 16*time.Millisecond {
			t.Fatalf("Delay(4) = %v outside [0, 16ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct waits in 50 draws of the default source", len(seen))
	}
}

// TestScheduleFlapping replays the device-flapping case (issue 8 §3): sessions
// that end right after AUTH_OK must make the waits grow like failed connects,
// and only a session that lived StableAfter resets them.
func TestScheduleFlapping(t *testing.T) {
	const ms = time.Millisecond
	s := Schedule{Policy: Policy{Min: 100 * ms, Max: 1600 * ms, Rand: top}, StableAfter: 10 * time.Second}
	short := Ending{Authenticated: true, Lived: 50 * ms}
	stable := Ending{Authenticated: true, Lived: 10 * time.Second}
	failed := Ending{}
	steps := []struct {
		name string
		e    Ending
		want time.Duration // the wait (ceiling, Rand being top)
		n    int
	}{
		{"short session after Dial", short, 200 * ms, 1},
		{"short again", short, 400 * ms, 2},
		{"a failed connect counts the same", failed, 800 * ms, 3},
		{"short, capped", short, 1600 * ms, 4},
		{"short, still capped", short, 1600 * ms, 5},
		{"a session just under the threshold is short", Ending{Authenticated: true, Lived: 10*time.Second - 1}, 1600 * ms, 6},
		{"a stable session resets", stable, 100 * ms, 0},
		{"then short again starts over", short, 200 * ms, 1},
		{"GOAWAY after a stable session: exactly its retry-after", Ending{Authenticated: true, Lived: time.Hour, GoAway: true, RetryAfter: 5 * ms}, 5 * ms, 0},
		{"GOAWAY ending a short session: the backoff when longer", Ending{Authenticated: true, Lived: ms, GoAway: true, RetryAfter: 5 * ms}, 200 * ms, 1},
		{"GOAWAY ending a short session: the retry-after when longer", Ending{Authenticated: true, Lived: ms, GoAway: true, RetryAfter: time.Hour}, time.Hour, 2},
		{"GOAWAY before AUTH_OK counts as failed", Ending{GoAway: true, RetryAfter: 0}, 800 * ms, 3},
		{"a long session without AUTH_OK is no session", Ending{Lived: time.Hour}, 1600 * ms, 4},
	}
	for _, st := range steps {
		if got := s.Next(st.e); got != st.want || s.Failures() != st.n {
			t.Fatalf("%s: wait %v after %d failures, want %v after %d", st.name, got, s.Failures(), st.want, st.n)
		}
	}
}

// TestScheduleJitterAndBound: with a real source the waits stay within the
// ceiling of the current count, and the counter stops growing at its bound.
func TestScheduleJitterAndBound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := Schedule{Policy: Policy{Min: time.Millisecond, Max: time.Minute, Rand: r.Int64N}, StableAfter: time.Second}
	for i := range 1000 {
		d := s.Next(Ending{})
		if d < 0 || d > s.Ceiling(s.Failures()) {
			t.Fatalf("step %d: wait %v outside [0, %v]", i, d, s.Ceiling(s.Failures()))
		}
	}
	if s.Failures() != maxFailures {
		t.Fatalf("counter = %d after 1000 failures, want the bound %d", s.Failures(), maxFailures)
	}
	if got := (&Schedule{Policy: Policy{Min: time.Millisecond, Max: time.Second, Rand: half}}).Next(Ending{Authenticated: true}); got != time.Millisecond/2 {
		t.Fatalf("StableAfter 0: wait %v, want half of Min (every session stable)", got)
	}
}
