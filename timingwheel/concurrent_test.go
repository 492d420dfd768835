package timingwheel

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrent runs Schedule, Cancel and Touch from several goroutines
// while another advances a made-up clock, then checks that every arming of
// every timer ended exactly once: fired once or cancelled once.
//
// Each worker owns a disjoint set of timers and is the only one to schedule
// or cancel them, so it knows exactly how often it armed them (a Schedule of a
// timer that was not pending) and how often it cancelled them. Touchers touch
// every timer, earlier and later, racing with expiry. Only the advancer sees
// fires.
func TestConcurrent(t *testing.T) {
	const (
		workers  = 4
		touchers = 2
		perOwner = 64
		n        = workers * perOwner
	)
	const ops = 20_000
	const tick = int64(time.Millisecond)
	var clock atomic.Int64
	clock.Store(1 << 40)
	w := New[conn](Options{Tick: time.Millisecond, SlotsPerLevel: 4, Levels: 3, Now: clock.Load})
	cs := newConns(n)
	arms := make([]int, n)    // written by the owning worker
	cancels := make([]int, n) // written by the owning worker
	fires := make([]int, n)   // written by the advancer

	// The goroutines pace each other so that the advancer neither runs
	// ahead of the workers (then timers would never be pending) nor falls
	// behind them (then they would be cancelled or reset before they fire),
	// however the scheduler interleaves them: op i of a worker or toucher
	// waits for Advance number i/4, and Advance number k waits for every
	// worker to have done op 4(k-8).
	var advances atomic.Int64
	var progress [workers]atomic.Int64
	pace := func(i int) {
		for advances.Load() < int64(i/4) {
			runtime.Gosched()
		}
	}
	var done atomic.Bool
	var wg, others sync.WaitGroup
	wg.Add(1)
	go func() { // advancer
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 1))
		var exp []*Timer[conn]
		for k := int64(0); !done.Load(); k++ {
			for g := range progress {
				for progress[g].Load() < min(ops, 4*(k-8)) && !done.Load() {
					runtime.Gosched()
				}
			}
			now := clock.Add(rng.Int64N(3 * tick))
			exp = w.Advance(now, exp[:0])
			for _, tm := range exp {
				fires[tm.Owner().id]++
			}
			advances.Add(1)
		}
	}()
	for g := range touchers {
		others.Add(1)
		go func() {
			defer others.Done()
			rng := rand.New(rand.NewPCG(2, uint64(g)))
			for i := range ops {
				pace(i)
				c := &cs[rng.IntN(n)]
				c.tm.Touch(w.Clock() + rng.Int64N(40*tick) - 8*tick)
			}
		}()
	}
	for g := range workers {
		others.Add(1)
		go func() {
			defer others.Done()
			rng := rand.New(rand.NewPCG(3, uint64(g)))
			own := cs[g*perOwner : (g+1)*perOwner]
			for i := range ops {
				pace(i)
				progress[g].Store(int64(i))
				c := &own[rng.IntN(perOwner)]
				switch rng.IntN(8) {
				case 0, 1, 2:
					// Mostly a few ticks ahead; sometimes up to 100 ticks,
					// beyond the 64-tick span of the wheel, so clamped
					// timers take part too.
					ahead := 8 * tick
					if rng.IntN(4) == 0 {
						ahead = 100 * tick
					}
					if !w.schedule(&c.tm, w.Clock()+rng.Int64N(ahead)) {
						arms[c.id]++
					}
				case 3:
					if w.Cancel(&c.tm) {
						cancels[c.id]++
					}
				default:
					c.tm.Touch(w.Clock() + rng.Int64N(20*tick))
				}
			}
		}()
	}
	others.Wait()
	done.Store(true)
	wg.Wait()

	for i := range cs {
		if w.Cancel(&cs[i].tm) {
			cancels[i]++
		}
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d after cancelling everything", w.Len())
	}
	if exp := w.Advance(clock.Load()+1000*tick, nil); len(exp) != 0 {
		t.Fatalf("%d timers fired after all were cancelled", len(exp))
	}
	totalFires, totalCancels := 0, 0
	for i := range cs {
		if arms[i] != fires[i]+cancels[i] {
			t.Errorf("timer %d: armed %d times, fired %d, cancelled %d", i, arms[i], fires[i], cancels[i])
		}
		totalFires += fires[i]
		totalCancels += cancels[i]
	}
	// The test is only meaningful if both outcomes happened a lot.
	if totalFires < n || totalCancels < n {
		t.Fatalf("too little happened: %d fires, %d cancels", totalFires, totalCancels)
	}
	t.Logf("%d fires, %d cancels", totalFires, totalCancels)
}
