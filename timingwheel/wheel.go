package timingwheel

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Wheel is a hierarchical timing wheel of [Timer] values whose owners are *T.
//
// Schedule, Cancel, Advance and Len may be called from any goroutine; they
// serialise on one mutex. Clock, Now and the Timer methods take no lock.
// Nothing here allocates per timer: Advance appends to the caller's slice,
// which grows amortised, and Start allocates its two goroutines and their
// batch buffers once.
type Wheel[T any] struct {
	mu sync.Mutex
	// slots holds Levels×SlotsPerLevel list heads: level l's slot i is
	// slots[l<<bits+i]. A timer due at tick e, filed when the wheel was at
	// tick cur, sits in the lowest level l with e-cur < SlotsPerLevel^(l+1),
	// slot (e >> (bits*l)) & mask (the classic Linux layout).
	slots []Timer[T]
	// scratch is the list head a slot is moved to while it is processed, so
	// that timers re-filed into the same slot are not visited twice.
	scratch Timer[T]
	// cur is the tick of the last Advance: every timer due before it has
	// fired, and slot cur of level 0 has been processed up to now.
	cur   int64
	now   int64 // the largest now passed to Advance (or the initial clock)
	count int   // pending timers

	tick   int64 // Tick in nanoseconds
	bits   uint  // log2(SlotsPerLevel)
	size   int64 // SlotsPerLevel
	mask   int64 // SlotsPerLevel-1
	levels int
	maxIdx int64 // SlotsPerLevel^Levels - 1: the furthest tick ahead that can be filed

	clock atomic.Int64 // now, for lock-free readers
	nowFn func() int64

	drv driver[T]
}

// New returns an empty wheel configured by opts, whose clock starts at
// opts.Now(). It allocates the slot heads, Levels×SlotsPerLevel×32 bytes
// (32 KiB with the defaults), and panics if opts is invalid (see [Options]).
func New[T any](opts Options) *Wheel[T] {
	opts = opts.withDefaults()
	w := &Wheel[T]{
		tick:   int64(opts.Tick),
		bits:   uint(bits.TrailingZeros(uint(opts.SlotsPerLevel))),
		size:   int64(opts.SlotsPerLevel),
		mask:   int64(opts.SlotsPerLevel - 1),
		levels: opts.Levels,
		nowFn:  opts.Now,
	}
	w.maxIdx = 1<<(w.bits*uint(w.levels)) - 1
	w.slots = make([]Timer[T], opts.Levels*opts.SlotsPerLevel)
	for i := range w.slots {
		w.slots[i].initHead()
	}
	w.scratch.initHead()
	w.now = w.nowFn()
	w.cur = w.now / w.tick
	w.clock.Store(w.now)
	return w
}

// Schedule arms t to fire at deadline. If t is already pending it is moved
// (a reset); if it has fired or been cancelled it is armed again. A deadline
// ≤ [Wheel.Clock] fires at the next Advance; a deadline < 1 is treated as 1.
// It takes the wheel mutex, does O(1) work and allocates nothing.
//
// t must not be pending on a different wheel.
func (w *Wheel[T]) Schedule(t *Timer[T], deadline int64) { w.schedule(t, deadline) }

// schedule is Schedule, reporting whether t was pending (a reset rather than
// an arm).
func (w *Wheel[T]) schedule(t *Timer[T], deadline int64) (wasPending bool) {
	if deadline < 1 {
		deadline = 1
	}
	w.mu.Lock()
	wasPending = t.next != nil
	if wasPending {
		t.unlink()
	} else {
		w.count++
	}
	t.deadline.Store(deadline)
	w.file(t, deadline)
	w.mu.Unlock()
	return wasPending
}

// Cancel stops t and reports whether it was pending. It returns false if t
// had already fired (even if its batch has not yet reached the callback) or
// was never scheduled. It takes the wheel mutex only if t looks pending,
// does O(1) work and allocates nothing. t must belong to w if it is pending.
func (w *Wheel[T]) Cancel(t *Timer[T]) bool {
	// fast path: a timer that fired or was cancelled needs no lock.
	if t.deadline.Load() == 0 {
		return false
	}
	w.mu.Lock()
	if t.next == nil {
		// It fired or was cancelled between the load and the lock.
		w.mu.Unlock()
		return false
	}
	t.deadline.Store(0)
	t.unlink()
	w.count--
	w.mu.Unlock()
	return true
}

// Advance moves the wheel to now, processing every tick up to it, and
// appends to expired every timer whose deadline is ≤ now, each marked not
// pending and unlinked, so the caller may Schedule it again at once. The
// timers are appended in order of their deadline's tick; within a tick, and
// among timers scheduled with a deadline already in the past, the order is
// unspecified. Timers whose deadline a concurrent Touch extended are re-filed
// instead; a deadline that Touch moved earlier counts only once the wheel
// reaches the slot the timer is filed in (see [Timer.Touch]).
//
// Advance never reads a clock: now may be any made-up time. A now earlier than
// a previous one does not move the wheel back. Advance holds the wheel mutex
// for the whole walk, O(ticks passed + timers visited); the only allocation is
// growth of expired.
func (w *Wheel[T]) Advance(now int64, expired []*Timer[T]) []*Timer[T] {
	w.mu.Lock()
	target := now / w.tick
	if w.count > 0 {
		// The current tick may hold timers scheduled in the past or due later
		// in this tick than the previous now.
		expired = w.expire(now, expired)
	}
	for w.cur < target {
		if w.count == 0 {
			// Nothing is filed anywhere: skip the empty ticks.
			w.cur = target
			break
		}
		w.cur++
		if w.cur&w.mask == 0 {
			w.cascade()
		}
		expired = w.expire(now, expired)
	}
	if now > w.now {
		w.now = now
		w.clock.Store(now)
	}
	w.mu.Unlock()
	return expired
}

// Clock returns the wheel's coarse current time: the largest now passed to
// Advance, or the clock at New. It is one atomic load, cheap enough for hot
// paths that compute deadlines (deadline = w.Clock() + timeout); such
// deadlines are up to one tick early relative to the real clock.
func (w *Wheel[T]) Clock() int64 { return w.clock.Load() }

// Now reads the wheel's clock ([Options.Now]): precise, but costlier than
// [Wheel.Clock]. It may be called from any goroutine.
func (w *Wheel[T]) Now() int64 { return w.nowFn() }

// Tick returns the wheel's resolution, [Options.Tick] after defaults.
func (w *Wheel[T]) Tick() time.Duration { return time.Duration(w.tick) }

// Len returns the number of pending timers. It takes the wheel mutex.
func (w *Wheel[T]) Len() int {
	w.mu.Lock()
	n := w.count
	w.mu.Unlock()
	return n
}

// file links t, due at d, into the slot for its tick. The caller holds mu.
func (w *Wheel[T]) file(t *Timer[T], d int64) {
	e := d / w.tick
	idx := e - w.cur
	if idx < w.size {
		if idx < 0 {
			// Overdue: the current tick is processed by the next Advance.
			e = w.cur
		}
		t.pushBack(&w.slots[e&w.mask])
		return
	}
	if idx > w.maxIdx {
		// Beyond the wheel's span: park it in the top level's furthest slot,
		// from which the cascade re-files it by its real deadline.
		idx = w.maxIdx
		e = w.cur + idx
	}
	level := uint(bits.Len64(uint64(idx))-1) / w.bits
	slot := (e >> (w.bits * level)) & w.mask
	t.pushBack(&w.slots[int64(level<<w.bits)+slot])
}

// cascade re-files the higher-level slots that start at tick cur, lowest
// level first, stopping at the first level that is not wrapping too. The
// caller holds mu.
func (w *Wheel[T]) cascade() {
	for level := uint(1); level < uint(w.levels); level++ {
		i := (w.cur >> (w.bits * level)) & w.mask
		w.slots[int64(level<<w.bits)+i].moveTo(&w.scratch)
		for t := w.scratch.next; t != &w.scratch; t = w.scratch.next {
			t.unlink()
			w.file(t, t.deadline.Load())
		}
		if i != 0 {
			return
		}
	}
}

// expire processes the level-0 slot of tick cur: timers due by now and by
// the end of tick cur are marked fired and appended; the rest (extended by
// Touch, or due later in the current tick) are re-filed. Not firing a timer
// due in a later tick, even if it is due by now, keeps a multi-tick Advance
// in tick order: the re-filed timer is met again when its own tick is
// processed. The caller holds mu.
func (w *Wheel[T]) expire(now int64, expired []*Timer[T]) []*Timer[T] {
	slot := &w.slots[w.cur&w.mask]
	if slot.empty() {
		return expired
	}
	limit := now
	if now/w.tick > w.cur {
		limit = w.cur*w.tick + w.tick - 1 // the end of tick cur; ≤ now, so no overflow
	}
	slot.moveTo(&w.scratch)
	for t := w.scratch.next; t != &w.scratch; t = w.scratch.next {
		t.unlink()
		d, fired := w.fire(t, limit)
		if fired {
			expired = append(expired, t)
			w.count--
			continue
		}
		w.file(t, d)
	}
	return expired
}

// fire marks t not pending if its deadline is ≤ limit, or else returns the
// deadline it saw. The CAS loses only to a concurrent Touch, after which the
// new deadline decides.
func (w *Wheel[T]) fire(t *Timer[T], limit int64) (deadline int64, fired bool) {
	for {
		d := t.deadline.Load()
		if d == 0 {
			panic("BUG: timingwheel: a linked timer is not pending")
		}
		if d > limit {
			return d, false
		}
		if t.deadline.CompareAndSwap(d, 0) {
			return d, true
		}
	}
}
