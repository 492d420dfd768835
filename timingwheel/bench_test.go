package timingwheel

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// Each benchmark runs the wheel beside the Go runtime timer it replaces, in
// the same run, with pendingN timers pending on both sides. Results, machine
// and command: bench/results/timingwheel.txt.

const pendingN = 1_000_000

// benchConn is a caller's struct holding only its timer, so that memory per
// timer measures the timer and nothing else.
type benchConn struct{ tm Timer[benchConn] }

// newPendingWheel returns a default wheel with pendingN timers due in an hour.
func newPendingWheel() (*Wheel[benchConn], []benchConn) {
	w := New[benchConn](Options{})
	cs := make([]benchConn, pendingN)
	d := w.Clock() + int64(time.Hour)
	for i := range cs {
		w.Schedule(&cs[i].tm, d+int64(i))
	}
	return w, cs
}

// newPendingTimers returns pendingN runtime timers due in an hour.
func newPendingTimers() []*time.Timer {
	ts := make([]*time.Timer, pendingN)
	for i := range ts {
		ts[i] = time.NewTimer(time.Hour + time.Duration(i))
	}
	return ts
}

func stopAll(ts []*time.Timer) {
	for _, t := range ts {
		if t != nil {
			t.Stop()
		}
	}
}

// BenchmarkTouch measures the heartbeat path: op i moves timer i%pendingN to
// a new deadline one hour out.
func BenchmarkTouch(b *testing.B) {
	b.Run("wheel", func(b *testing.B) {
		w, cs := newPendingWheel()
		base := w.Clock() + int64(time.Hour)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			// A new deadline every op, so every Touch pays its CAS.
			cs[i%pendingN].tm.Touch(base + int64(i))
		}
		runtime.KeepAlive(cs)
	})
	b.Run("timer-reset", func(b *testing.B) {
		ts := newPendingTimers()
		defer stopAll(ts)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			ts[i%pendingN].Reset(time.Hour + time.Duration(i))
		}
	})
}

// BenchmarkAddCancel arms a timer and cancels it again, with pendingN other
// timers pending. Deadlines spread over 1..1000s, so the wheel files them in
// levels 1 to 3.
func BenchmarkAddCancel(b *testing.B) {
	b.Run("wheel", func(b *testing.B) {
		w, cs := newPendingWheel()
		extra := make([]benchConn, 1024)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			t := &extra[i&1023].tm
			w.Schedule(t, w.Clock()+int64(1+i%1000)*int64(time.Second))
			w.Cancel(t)
		}
		runtime.KeepAlive(cs)
	})
	b.Run("afterfunc-stop", func(b *testing.B) {
		ts := newPendingTimers()
		defer stopAll(ts)
		f := func() {}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			time.AfterFunc(time.Duration(1+i%1000)*time.Second, f).Stop()
		}
	})
}

// heapDelta returns the live heap growth, in bytes, caused by build; the
// result of build is kept alive until after the measurement.
func heapDelta(build func() any) (uint64, any) {
	var before, after runtime.MemStats
	purgeStoppedTimers()
	runtime.GC()
	runtime.ReadMemStats(&before)
	keep := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return after.HeapAlloc - before.HeapAlloc, keep
}

// purgeStoppedTimers lets the scheduler drop stopped runtime timers from the
// per-P timer heaps. Since Go 1.23 Stop only marks a timer; the heap keeps
// referencing it until the P cleans up, which would make a later HeapAlloc
// delta shrink by whatever happens to be purged while it is measured.
func purgeStoppedTimers() {
	for range 3 {
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkMemory reports the live heap per pending timer (B/timer) over
// pendingN timers: for the wheel, the caller's 32-byte Timer plus the
// wheel's slot heads; for time.AfterFunc, the caller's *time.Timer plus what
// the runtime allocates: the 112-byte timer, and the 16-byte entry in the
// per-P timer heap only when that array has to grow (it keeps its capacity
// from earlier benchmarks in the same process, so usually it does not). ns/op
// is the time to arm pendingN timers.
func BenchmarkMemory(b *testing.B) {
	b.Run("wheel", func(b *testing.B) {
		b.ReportAllocs()
		var perTimer float64
		for b.Loop() {
			b.StopTimer()
			delta, keep := heapDelta(func() any {
				b.StartTimer()
				w, cs := newPendingWheel()
				b.StopTimer()
				return [2]any{w, cs}
			})
			perTimer = float64(delta) / pendingN
			runtime.KeepAlive(keep)
			b.StartTimer()
		}
		b.ReportMetric(perTimer, "B/timer")
	})
	b.Run("afterfunc", func(b *testing.B) {
		b.ReportAllocs()
		var perTimer float64
		f := func() {}
		for b.Loop() {
			b.StopTimer()
			delta, keep := heapDelta(func() any {
				b.StartTimer()
				ts := make([]*time.Timer, pendingN)
				for i := range ts {
					ts[i] = time.AfterFunc(time.Hour+time.Duration(i), f)
				}
				b.StopTimer()
				return ts
			})
			perTimer = float64(delta) / pendingN
			stopAll(keep.([]*time.Timer))
			b.StartTimer()
		}
		b.ReportMetric(perTimer, "B/timer")
	})
}

// BenchmarkExpire100k measures one tick in which 100k timers expire, from
// the tick to the last callback having run. The wheel's op is Advance plus a
// loop calling the callback, as the dispatcher would; the runtime's is the
// time from the common deadline until all 100k AfterFunc callbacks (each on
// its own goroutine) have run. ns/timer is ns/op divided by 100k.
func BenchmarkExpire100k(b *testing.B) {
	const n = 100_000
	b.Run("wheel", func(b *testing.B) {
		tick := int64(time.Millisecond)
		w := New[benchConn](Options{Tick: time.Millisecond, Now: func() int64 { return 1 }})
		cs := make([]benchConn, n)
		var exp []*Timer[benchConn]
		calls := 0
		onExpire := func(*benchConn) { calls++ }
		now := int64(1)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			for i := range cs {
				w.Schedule(&cs[i].tm, now+tick/2+int64(i%int(tick/2)))
			}
			now += tick
			b.StartTimer()
			exp = w.Advance(now, exp[:0])
			for _, t := range exp {
				onExpire(t.Owner())
			}
		}
		if len(exp) != n || calls != n*b.N {
			b.Fatalf("expired %d, %d calls over %d ops", len(exp), calls, b.N)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/timer")
	})
	b.Run("afterfunc", func(b *testing.B) {
		var wg sync.WaitGroup
		done := func() { wg.Done() }
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			// Far enough ahead that arming 100k timers finishes first.
			deadline := time.Now().Add(50 * time.Millisecond)
			wg.Add(n)
			for range n {
				time.AfterFunc(time.Until(deadline), done)
			}
			time.Sleep(time.Until(deadline))
			b.StartTimer()
			wg.Wait()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/timer")
	})
}
