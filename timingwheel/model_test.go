package timingwheel

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestModel drives small wheels with random Schedule, Cancel, Touch (later)
// and Advance calls and compares every Advance with a reference model: a map
// from timer to deadline, where Advance(now) must return exactly the timers
// due by now. The deadlines reach three times past the wheel's span, so
// every level, every cascade and the clamping are exercised.
func TestModel(t *testing.T) {
	for _, cfg := range []struct{ slots, levels int }{
		{4, 3}, // span 64 ticks
		{2, 5}, // span 32 ticks, many levels
		{8, 2}, // span 64 ticks, wide
		{4, 1}, // a single level: everything beyond 4 ticks is clamped
		{16, 3},
	} {
		for seed := uint64(1); seed <= 8; seed++ {
			t.Run(fmt.Sprintf("%dx%d/seed%d", cfg.slots, cfg.levels, seed), func(t *testing.T) {
				runModel(t, cfg.slots, cfg.levels, seed, 4000)
			})
		}
	}
}

func runModel(t *testing.T, slots, levels int, seed uint64, ops int) {
	const tick = int64(time.Millisecond)
	rng := rand.New(rand.NewPCG(seed, 0x7e7e))
	start := rng.Int64N(1<<40) + 1
	w := New[conn](Options{Tick: time.Millisecond, SlotsPerLevel: slots, Levels: levels, Now: func() int64 { return start }})
	span := tick
	for range levels {
		span *= int64(slots)
	}
	cs := newConns(64)
	model := map[int]int64{} // id -> deadline of pending timers
	now := start
	// randDeadline picks a deadline from the past to three spans ahead,
	// biased towards the near future and towards tick boundaries.
	randDeadline := func(from int64) int64 {
		var d int64
		switch rng.IntN(4) {
		case 0:
			d = from + rng.Int64N(4*tick) - tick
		case 1:
			d = from + rng.Int64N(3*span)
		case 2:
			d = (from/tick + rng.Int64N(3*span/tick)) * tick
		default:
			d = from + rng.Int64N(span)
		}
		return max(d, 1)
	}
	var exp []*Timer[conn]
	for op := range ops {
		c := &cs[rng.IntN(len(cs))]
		_, pending := model[c.id]
		switch r := rng.IntN(10); {
		case r < 3:
			d := randDeadline(now)
			w.Schedule(&c.tm, d)
			model[c.id] = d
		case r < 4:
			if got := w.Cancel(&c.tm); got != pending {
				t.Fatalf("op %d: Cancel(%d) = %v, model says pending %v", op, c.id, got, pending)
			}
			delete(model, c.id)
		case r < 6:
			d := now
			if pending {
				d = model[c.id]
			}
			d += rng.Int64N(2 * span)
			if got := c.tm.Touch(d); got != pending {
				t.Fatalf("op %d: Touch(%d) = %v, model says pending %v", op, c.id, got, pending)
			}
			if pending {
				model[c.id] = d
			}
		default:
			prevTick := w.cur
			switch rng.IntN(8) {
			case 0: // no time passes
			case 1:
				now += rng.Int64N(tick) // within a tick
			case 2:
				now += rng.Int64N(2 * span) // long jump
			default:
				now += rng.Int64N(8 * tick)
			}
			exp = w.Advance(now, exp[:0])
			seen := map[int]bool{}
			lastTick := int64(-1)
			for _, tm := range exp {
				id := tm.Owner().id
				d, ok := model[id]
				switch {
				case seen[id]:
					t.Fatalf("op %d: timer %d returned twice", op, id)
				case !ok:
					t.Fatalf("op %d: timer %d fired but was not pending", op, id)
				case d > now:
					t.Fatalf("op %d: timer %d due %d fired at %d", op, id, d, now)
				case tm.Pending():
					t.Fatalf("op %d: timer %d fired but is still pending", op, id)
				}
				seen[id] = true
				// Tick order, counting overdue timers as due in the tick the
				// wheel was at.
				eff := max(d/tick, prevTick)
				if eff < lastTick {
					t.Fatalf("op %d: timer %d (tick %d) after one of tick %d", op, id, eff, lastTick)
				}
				lastTick = eff
			}
			for id, d := range model {
				if d <= now && !seen[id] {
					t.Fatalf("op %d: timer %d due %d did not fire at %d", op, id, d, now)
				}
				if seen[id] {
					delete(model, id)
				}
			}
		}
		if op%16 == 0 {
			if w.Len() != len(model) {
				t.Fatalf("op %d: Len = %d, model has %d", op, w.Len(), len(model))
			}
			for i := range cs {
				if d := cs[i].tm.Deadline(); d != model[i] {
					t.Fatalf("op %d: timer %d Deadline = %d, model %d", op, i, d, model[i])
				}
			}
		}
	}
}
