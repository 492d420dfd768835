package timingwheel

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test after a generous
// deadline. It never decides anything by sleeping a fixed time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// recorder collects the ids of delivered timers.
type recorder struct {
	mu  sync.Mutex
	ids []int
}

func (r *recorder) onExpire(batch []*Timer[conn]) {
	r.mu.Lock()
	for _, t := range batch {
		r.ids = append(r.ids, t.Owner().id)
	}
	r.mu.Unlock()
}

func (r *recorder) got() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

// newDriven returns a wheel ticking every millisecond on a clock the test
// moves by hand, so what fires is decided by the test and only when it is
// delivered depends on the real ticker.
func newDriven() (*Wheel[conn], *atomic.Int64) {
	var clock atomic.Int64
	clock.Store(ms(1000))
	return New[conn](Options{Tick: time.Millisecond, Now: clock.Load}), &clock
}

// goroutinesBack polls until the goroutine count is back to n.
func goroutinesBack(t *testing.T, n int) {
	t.Helper()
	waitFor(t, "the driver's goroutines to exit", func() bool { return runtime.NumGoroutine() <= n })
}

func TestDriverDelivers(t *testing.T) {
	before := runtime.NumGoroutine()
	w, clock := newDriven()
	var r recorder
	cs := newConns(3)
	w.Schedule(&cs[0].tm, ms(1005))
	w.Schedule(&cs[1].tm, ms(1010))
	w.Schedule(&cs[2].tm, ms(1010)+1)
	w.Start(r.onExpire)
	defer w.Stop()

	clock.Store(ms(1005))
	waitFor(t, "timer 0", func() bool { return len(r.got()) == 1 })
	clock.Store(ms(1010))
	waitFor(t, "the Clock to reach 1010ms", func() bool { return w.Clock() == ms(1010) })
	waitFor(t, "timer 1", func() bool { return len(r.got()) == 2 })
	if got := r.got(); !slices.Equal(got, []int{0, 1}) || !cs[2].tm.Pending() {
		t.Fatalf("delivered %v (timer 2 pending %v), want [0 1] with timer 2 pending", got, cs[2].tm.Pending())
	}

	w.Stop()
	w.Stop() // idempotent
	goroutinesBack(t, before)
	if !cs[2].tm.Pending() || w.Len() != 1 {
		t.Fatal("Stop dropped a pending timer")
	}
	// The driver can be started again and picks up where it left off.
	w.Start(r.onExpire)
	clock.Store(ms(1011))
	waitFor(t, "timer 2 after a restart", func() bool { return len(r.got()) == 3 })
	w.Stop()
	goroutinesBack(t, before)
}

// TestDriverSlowCallback blocks the callback and checks that the wheel keeps
// advancing and expiring meanwhile, and that Stop delivers what was queued.
func TestDriverSlowCallback(t *testing.T) {
	before := runtime.NumGoroutine()
	w, clock := newDriven()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var r recorder
	w.Start(func(batch []*Timer[conn]) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		r.onExpire(batch)
	})
	cs := newConns(3)
	w.Schedule(&cs[0].tm, ms(1001))
	clock.Store(ms(1001))
	<-entered // the callback now blocks with timer 0

	// The ticker keeps going: timers 1 and 2 expire while the callback is
	// stuck, in two separate ticks whose batches are merged in the queue.
	w.Schedule(&cs[1].tm, ms(1002))
	w.Schedule(&cs[2].tm, ms(1003))
	clock.Store(ms(1002))
	waitFor(t, "timer 1 to expire", func() bool { return !cs[1].tm.Pending() })
	clock.Store(ms(1003))
	waitFor(t, "timer 2 to expire", func() bool { return !cs[2].tm.Pending() })
	if w.Clock() != ms(1003) {
		t.Fatalf("Clock = %d while the callback is blocked, want %d", w.Clock(), ms(1003))
	}

	stopped := make(chan struct{})
	go func() { w.Stop(); close(stopped) }()
	close(release)
	<-stopped
	if got := r.got(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("delivered %v, want [0 1 2]: Stop must deliver queued batches", got)
	}
	goroutinesBack(t, before)
}

// TestDriverReschedule re-arms timers from the callback, as a heartbeat
// does, and checks the re-armed timers fire again.
func TestDriverReschedule(t *testing.T) {
	w, clock := newDriven()
	var fires atomic.Int64
	cs := newConns(100)
	w.Start(func(batch []*Timer[conn]) {
		for _, tm := range batch {
			if fires.Add(1) <= 100 {
				w.Schedule(tm, ms(1002))
			}
		}
	})
	defer w.Stop()
	for i := range cs {
		w.Schedule(&cs[i].tm, ms(1001))
	}
	clock.Store(ms(1001))
	waitFor(t, "the first round", func() bool { return fires.Load() == 100 && w.Len() == 100 })
	clock.Store(ms(1002))
	waitFor(t, "the second round", func() bool { return fires.Load() == 200 && w.Len() == 0 })
}

func TestStartTwicePanics(t *testing.T) {
	w, _ := newDriven()
	w.Start(func([]*Timer[conn]) {})
	defer w.Stop()
	defer func() {
		if recover() == nil {
			t.Fatal("second Start did not panic")
		}
	}()
	w.Start(func([]*Timer[conn]) {})
}
