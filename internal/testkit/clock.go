package testkit

import (
	"slices"
	"sync"
	"time"
)

// FakeClock is a clock that moves only when the test says so, for the SDKs' Options.now
// hooks. The zero value is not ready; use NewFakeClock. It is safe for concurrent use.
type FakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewFakeClock returns a FakeClock reading a fixed made-up time (Unix 1,000,000).
func NewFakeClock() *FakeClock { return &FakeClock{t: time.Unix(1_000_000, 0)} }

// NewFakeClockAt returns a FakeClock reading t.
func NewFakeClockAt(t time.Time) *FakeClock { return &FakeClock{t: t} }

// Now returns the clock's time; it has the shape of time.Now.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Wait is one reconnect wait an SDK computed: how long, and after how many failures
// in a row.
type Wait struct {
	D        time.Duration
	Failures int
}

// Waits records the reconnect waits an SDK computes, through its Options.onWait hook.
// The zero value is ready; it is safe for concurrent use.
type Waits struct {
	mu  sync.Mutex
	all []Wait
}

// Record appends a wait; it has the shape of the onWait hook.
func (w *Waits) Record(d time.Duration, failures int) {
	w.mu.Lock()
	w.all = append(w.all, Wait{d, failures})
	w.mu.Unlock()
}

// Get returns a copy of the waits recorded so far, in order.
func (w *Waits) Get() []Wait {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.all)
}
