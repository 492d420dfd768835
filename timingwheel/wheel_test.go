package timingwheel

import (
	"math"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// conn stands for the caller's struct with an embedded timer.
type conn struct {
	id int
	tm Timer[conn]
}

// ms is a made-up time: n milliseconds on the wheel's clock.
func ms(n int64) int64 { return n * int64(time.Millisecond) }

// newWheel returns a wheel whose clock starts at start, with a tick of 1ms.
func newWheel(t *testing.T, slots, levels int, start int64) *Wheel[conn] {
	t.Helper()
	return New[conn](Options{
		Tick:          time.Millisecond,
		SlotsPerLevel: slots,
		Levels:        levels,
		Now:           func() int64 { return start },
	})
}

// newConns returns n conns whose timers own them, ids 0..n-1.
func newConns(n int) []conn {
	cs := make([]conn, n)
	for i := range cs {
		cs[i].id = i
		cs[i].tm.SetOwner(&cs[i])
	}
	return cs
}

// ids maps expired timers to their owners' ids.
func ids(expired []*Timer[conn]) []int {
	out := make([]int, len(expired))
	for i, t := range expired {
		out[i] = t.Owner().id
	}
	return out
}

func TestTimerSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("32 bytes is the 64-bit layout")
	}
	if got := unsafe.Sizeof(Timer[conn]{}); got != 32 {
		t.Fatalf("Timer is %d bytes, want 32", got)
	}
}

func TestZeroTimer(t *testing.T) {
	w := newWheel(t, 4, 3, ms(1000))
	var c conn
	if c.tm.Pending() || c.tm.Deadline() != 0 || c.tm.Owner() != nil {
		t.Fatal("zero Timer is not idle")
	}
	if c.tm.Touch(ms(2000)) {
		t.Fatal("Touch on a never-scheduled timer returned true")
	}
	if w.Cancel(&c.tm) {
		t.Fatal("Cancel on a never-scheduled timer returned true")
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d, want 0", w.Len())
	}
}

// TestExpiryExactAndOrdered advances 0.25ms at a time and checks that every
// timer fires in the first Advance whose now reaches its deadline, and that
// a batch spanning several ticks comes out in tick order.
func TestExpiryExactAndOrdered(t *testing.T) {
	const start = 1_000_000_000
	w := newWheel(t, 8, 3, start)
	// Deadlines in level 0, level 1, level 2, exactly on and between tick
	// boundaries, in scrambled order.
	offsets := []int64{
		ms(3), ms(1), ms(7) + 1, ms(8), ms(9) - 1, ms(64), ms(65) + 500_000,
		ms(63), ms(100), ms(511), ms(2) + 250_000, 1, ms(200),
	}
	cs := newConns(len(offsets))
	for i, off := range offsets {
		w.Schedule(&cs[i].tm, start+off)
	}
	if w.Len() != len(offsets) {
		t.Fatalf("Len = %d, want %d", w.Len(), len(offsets))
	}
	fired := 0
	var exp []*Timer[conn]
	for now := int64(start); now <= start+ms(600); now += ms(1) / 4 {
		exp = w.Advance(now, exp[:0])
		for _, tm := range exp {
			c := tm.Owner()
			d := start + offsets[c.id]
			if d > now || d <= now-ms(1)/4 {
				t.Fatalf("conn %d due %d fired at %d: not in the first Advance past its deadline", c.id, d, now)
			}
			if tm.Pending() || tm.next != nil {
				t.Fatalf("conn %d fired but still pending or linked", c.id)
			}
			fired++
		}
	}
	if fired != len(offsets) || w.Len() != 0 {
		t.Fatalf("fired %d of %d, Len = %d", fired, len(offsets), w.Len())
	}

	// One big Advance: the batch is in tick order.
	w2 := newWheel(t, 8, 3, start)
	cs2 := newConns(len(offsets))
	for i, off := range offsets {
		w2.Schedule(&cs2[i].tm, start+off)
	}
	exp = w2.Advance(start+ms(600), exp[:0])
	ticks := make([]int64, len(exp))
	for i, tm := range exp {
		ticks[i] = (start + offsets[tm.Owner().id]) / int64(time.Millisecond)
	}
	if len(exp) != len(offsets) || !slices.IsSorted(ticks) {
		t.Fatalf("batch of %d in tick order %v", len(exp), ticks)
	}
}

func TestCancel(t *testing.T) {
	w := newWheel(t, 4, 3, ms(1000))
	cs := newConns(3)
	w.Schedule(&cs[0].tm, ms(1005)) // cancelled before expiry
	w.Schedule(&cs[1].tm, ms(1005)) // fires, then cancel is too late
	w.Schedule(&cs[2].tm, ms(1050)) // level 2, cancelled from there
	if !w.Cancel(&cs[0].tm) {
		t.Fatal("Cancel of a pending timer returned false")
	}
	if w.Cancel(&cs[0].tm) {
		t.Fatal("second Cancel returned true")
	}
	if cs[0].tm.Pending() || cs[0].tm.Touch(ms(2000)) {
		t.Fatal("cancelled timer is still pending or touchable")
	}
	if !w.Cancel(&cs[2].tm) {
		t.Fatal("Cancel of a level-2 timer returned false")
	}
	got := ids(w.Advance(ms(2000), nil))
	if !slices.Equal(got, []int{1}) {
		t.Fatalf("fired %v, want [1]", got)
	}
	if w.Cancel(&cs[1].tm) {
		t.Fatal("Cancel after expiry returned true")
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d, want 0", w.Len())
	}
}

func TestTouchExtends(t *testing.T) {
	w := newWheel(t, 4, 3, ms(1000))
	cs := newConns(1)
	tm := &cs[0].tm
	w.Schedule(tm, ms(1002))
	if !tm.Touch(ms(1030)) {
		t.Fatal("Touch of a pending timer returned false")
	}
	if !tm.Touch(ms(1030)) {
		t.Fatal("Touch with the same deadline returned false")
	}
	// At the old deadline it is re-filed, not fired.
	if got := w.Advance(ms(1002), nil); len(got) != 0 {
		t.Fatalf("touched timer fired at its old deadline")
	}
	if !tm.Pending() || tm.Deadline() != ms(1030) || tm.next == nil || w.Len() != 1 {
		t.Fatalf("touched timer not re-filed: pending %v deadline %d", tm.Pending(), tm.Deadline())
	}
	if got := w.Advance(ms(1030)-1, nil); len(got) != 0 {
		t.Fatal("touched timer fired before its new deadline")
	}
	if got := ids(w.Advance(ms(1030), nil)); !slices.Equal(got, []int{0}) {
		t.Fatalf("fired %v at the new deadline, want [0]", got)
	}
	if tm.Touch(ms(2000)) {
		t.Fatal("Touch after fire returned true")
	}
	if tm.Pending() {
		t.Fatal("Touch after fire made the timer pending")
	}
}

// TestTouchEarlier checks the documented bound: an earlier deadline set by
// Touch fires no later than the slot the timer is filed in, and never before
// the new deadline.
func TestTouchEarlier(t *testing.T) {
	w := newWheel(t, 4, 3, ms(1000))
	cs := newConns(2)
	w.Schedule(&cs[0].tm, ms(1002)) // level 0: honoured at tick 1002
	w.Schedule(&cs[1].tm, ms(1050)) // level 2 slot [1040, 1056): honoured at its cascade
	cs[0].tm.Touch(ms(1001))
	cs[1].tm.Touch(ms(1010))
	if got := ids(w.Advance(ms(1001), nil)); len(got) != 0 {
		t.Fatalf("fired %v at 1001ms; a level-0 timer is honoured at its slot (1002)", got)
	}
	if got := ids(w.Advance(ms(1002), nil)); !slices.Equal(got, []int{0}) {
		t.Fatalf("fired %v at 1002ms, want [0]", got)
	}
	if got := ids(w.Advance(ms(1039), nil)); len(got) != 0 {
		t.Fatalf("fired %v before the level-2 slot cascaded", got)
	}
	if got := ids(w.Advance(ms(1040), nil)); !slices.Equal(got, []int{1}) {
		t.Fatalf("fired %v at the cascade (1040ms), want [1]", got)
	}
}

func TestScheduleRefiles(t *testing.T) {
	w := newWheel(t, 4, 3, ms(1000))
	cs := newConns(2)
	w.Schedule(&cs[0].tm, ms(1003))
	w.Schedule(&cs[0].tm, ms(1020)) // later: moved
	w.Schedule(&cs[1].tm, ms(1050))
	w.Schedule(&cs[1].tm, ms(1001)) // earlier: moved precisely
	if w.Len() != 2 {
		t.Fatalf("Len = %d after rescheduling, want 2", w.Len())
	}
	if got := ids(w.Advance(ms(1001), nil)); !slices.Equal(got, []int{1}) {
		t.Fatalf("fired %v at 1001ms, want [1]", got)
	}
	if got := ids(w.Advance(ms(1019), nil)); len(got) != 0 {
		t.Fatalf("fired %v before 1020ms; the old deadline must be forgotten", got)
	}
	if got := ids(w.Advance(ms(1020), nil)); !slices.Equal(got, []int{0}) {
		t.Fatalf("fired %v at 1020ms, want [0]", got)
	}
	// Rescheduling a fired timer arms it again, including from the batch.
	w.Schedule(&cs[0].tm, ms(1021))
	if got := ids(w.Advance(ms(1021), nil)); !slices.Equal(got, []int{0}) || w.Len() != 0 {
		t.Fatalf("re-armed timer fired %v, Len %d", got, w.Len())
	}
}

func TestPastDeadlineFiresAtNextAdvance(t *testing.T) {
	w := newWheel(t, 4, 3, ms(1000))
	w.Advance(ms(1500), nil)
	cs := newConns(3)
	w.Schedule(&cs[0].tm, ms(10))        // long past
	w.Schedule(&cs[1].tm, w.Clock())     // exactly now
	w.Schedule(&cs[2].tm, math.MinInt64) // treated as 1
	got := ids(w.Advance(w.Clock(), nil))
	slices.Sort(got)
	if !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("fired %v, want all three at the next Advance", got)
	}
}

// TestClamp files deadlines far beyond a 4×3 wheel's 64-tick span and checks
// they are re-filed through the top level until they fire on time.
func TestClamp(t *testing.T) {
	w := newWheel(t, 4, 3, ms(1000))
	cs := newConns(3)
	w.Schedule(&cs[0].tm, ms(1000+1000))
	w.Schedule(&cs[1].tm, ms(1000+64))
	w.Schedule(&cs[2].tm, math.MaxInt64)
	var exp []*Timer[conn]
	for now := ms(1000); now <= ms(3000); now += ms(1) {
		exp = w.Advance(now, exp[:0])
		for _, tm := range exp {
			if d := ms(1000 + []int64{1000, 64}[tm.Owner().id]); d != now {
				t.Fatalf("conn %d due %d fired at %d", tm.Owner().id, d, now)
			}
		}
	}
	if cs[0].tm.Pending() || cs[1].tm.Pending() || !cs[2].tm.Pending() || w.Len() != 1 {
		t.Fatalf("after 2s: pending %v %v %v, Len %d", cs[0].tm.Pending(), cs[1].tm.Pending(), cs[2].tm.Pending(), w.Len())
	}
}

// TestLevelBoundaries checks deadlines on either side of every level's span,
// for a few positions of the current tick within the wheel.
func TestLevelBoundaries(t *testing.T) {
	const slots, levels = 4, 4
	for _, startTick := range []int64{1000, 1003, 1023, 1024, 1087} {
		w := newWheel(t, slots, levels, ms(startTick))
		var offs []int64
		for span := int64(1); span <= 4*4*4*4*2; span *= slots {
			offs = append(offs, span-1, span, span+1)
		}
		cs := newConns(len(offs))
		for i, off := range offs {
			w.Schedule(&cs[i].tm, ms(startTick+off))
		}
		var exp []*Timer[conn]
		for now := ms(startTick); w.Len() > 0 && now < ms(startTick+1000); now += ms(1) {
			exp = w.Advance(now, exp[:0])
			for _, tm := range exp {
				if d := ms(startTick + offs[tm.Owner().id]); d != now {
					t.Fatalf("start %d: offset %d ticks fired at %d ticks", startTick, offs[tm.Owner().id], now/ms(1)-startTick)
				}
			}
		}
		if w.Len() != 0 {
			t.Fatalf("start %d: %d timers never fired", startTick, w.Len())
		}
	}
}

// TestIdleJump advances an empty wheel far ahead in one step.
func TestIdleJump(t *testing.T) {
	w := newWheel(t, 4, 3, ms(1000))
	w.Advance(ms(1000)+int64(1000*time.Hour), nil)
	cs := newConns(1)
	d := w.Clock() + ms(5)
	w.Schedule(&cs[0].tm, d)
	if got := w.Advance(d-1, nil); len(got) != 0 {
		t.Fatal("fired early after an idle jump")
	}
	if got := w.Advance(d, nil); len(got) != 1 {
		t.Fatal("did not fire after an idle jump")
	}
}

func TestClockNeverGoesBack(t *testing.T) {
	w := newWheel(t, 4, 3, ms(1000))
	w.Advance(ms(1010), nil)
	w.Advance(ms(1005), nil)
	if w.Clock() != ms(1010) {
		t.Fatalf("Clock = %d after an earlier Advance, want %d", w.Clock(), ms(1010))
	}
	cs := newConns(1)
	w.Schedule(&cs[0].tm, ms(1011))
	if got := w.Advance(ms(1007), nil); len(got) != 0 {
		t.Fatal("an Advance into the past fired a future timer")
	}
	if got := w.Advance(ms(1011), nil); len(got) != 1 {
		t.Fatal("timer did not fire")
	}
}

func TestOptionsValidation(t *testing.T) {
	f := func(name string, o Options) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: New did not panic", name)
			}
		}()
		New[conn](o)
	}
	f("slots not a power of two", Options{SlotsPerLevel: 100})
	f("one slot", Options{SlotsPerLevel: 1})
	f("negative tick", Options{Tick: -time.Millisecond})
	f("negative levels", Options{Levels: -1})
	f("span overflows", Options{SlotsPerLevel: 256, Levels: 8})

	w := New[conn](Options{})
	if w.Tick() != DefaultTick || w.size != DefaultSlotsPerLevel || w.levels != DefaultLevels {
		t.Fatalf("defaults: tick %v slots %d levels %d", w.Tick(), w.size, w.levels)
	}
	if w.Clock() <= 0 || w.Now() < w.Clock() {
		t.Fatalf("default clock: Clock %d Now %d", w.Clock(), w.Now())
	}
}

// TestMillion schedules 1M timers over 100k ticks, advances through them in
// uneven steps and checks each fires exactly once, in the right step.
func TestMillion(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	const start = 1 << 40
	w := New[conn](Options{Tick: time.Millisecond, Now: func() int64 { return start }})
	cs := newConns(n)
	deadline := func(i int) int64 { return start + int64(i)*7919%100_000*int64(time.Millisecond) + int64(i%1000) }
	for i := range cs {
		w.Schedule(&cs[i].tm, deadline(i))
	}
	if w.Len() != n {
		t.Fatalf("Len = %d, want %d", w.Len(), n)
	}
	fired := make([]uint8, n)
	var exp []*Timer[conn]
	prev := int64(start - 1) // no Advance has run yet: a deadline of start is due
	for step := int64(1); prev < start+ms(100_001); step = step*3%1999 + 1 {
		now := prev + step*int64(time.Millisecond)/3
		exp = w.Advance(now, exp[:0])
		for _, tm := range exp {
			id := tm.Owner().id
			if d := deadline(id); d > now || d <= prev {
				t.Fatalf("timer %d due %d fired in (%d, %d]", id, d, prev, now)
			}
			fired[id]++
		}
		prev = now
	}
	for i, f := range fired {
		if f != 1 {
			t.Fatalf("timer %d fired %d times", i, f)
		}
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d at the end", w.Len())
	}
}
