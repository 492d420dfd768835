package control

import (
	"testing"
	"time"
)

// logLimit lets burst lines through per interval and reports the rest once per
// summary, on a made-up clock.
func TestLogLimit(t *testing.T) {
	l := &logLimit{interval: 10 * time.Second, burst: 2}
	t0 := time.Unix(1_000_000, 0)
	var logged, arms int
	step := func(at time.Time) {
		ok, arm := l.admit(at)
		if ok {
			logged++
		}
		if arm {
			arms++
		}
	}
	for i := range 100 {
		step(t0.Add(time.Duration(i) * time.Millisecond))
	}
	if logged != 2 || arms != 1 {
		t.Fatalf("first interval: %d logged, %d summaries armed; want 2, 1", logged, arms)
	}
	if n := l.takeSuppressed(); n != 98 {
		t.Fatalf("suppressed %d, want 98", n)
	}
	// A new interval lets the burst through again and arms a new summary.
	for i := range 5 {
		step(t0.Add(10*time.Second + time.Duration(i)*time.Millisecond))
	}
	if logged != 4 || arms != 2 || l.takeSuppressed() != 3 {
		t.Fatalf("second interval: %d logged, %d armed", logged, arms)
	}
	// Nothing suppressed: nothing to summarise.
	step(t0.Add(30 * time.Second))
	if l.takeSuppressed() != 0 || arms != 2 {
		t.Fatal("summary without suppressed lines")
	}
}
