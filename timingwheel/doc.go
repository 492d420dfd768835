// Package timingwheel keeps heartbeats and deadlines for a very large number of
// connections: a hierarchical timing wheel (Varghese & Lauck; the Kafka
// purgatory; the classic Linux cascade) with O(1) add and cancel, lazy
// cascading between levels and a lock-free Touch for heartbeats.
//
// # Design
//
// Time is an int64 count of nanoseconds on the wheel's clock (monotonic, see
// [Options.Now]). The wheel divides it into ticks of [Options.Tick]. Level 0
// has one slot per tick for the next SlotsPerLevel ticks; each higher level
// has SlotsPerLevel slots that each cover SlotsPerLevel times as many ticks as
// a slot of the level below. A timer is filed in one slot; when the wheel
// reaches the start of a higher-level slot it re-files ("cascades") that
// slot's timers into the levels below. A timer therefore moves at most
// Levels-1 times before it fires, and Schedule and Cancel are a few pointer
// writes under the wheel mutex.
//
// The core ([Wheel.Schedule], [Wheel.Cancel], [Wheel.Advance]) never reads a
// clock: Advance is told the time, so tests and simulations use made-up times.
// [Wheel.Start] adds the real-clock driver: one goroutine that calls Advance
// every tick and one that runs the expiry callback on the batches it produces,
// so a slow callback never delays the tick.
//
// # Memory
//
// A [Timer] is embedded in the caller's struct: scheduling allocates nothing,
// and a pending timer costs exactly its own 32 bytes (two list pointers, the
// deadline and the owner pointer). The wheel adds a fixed
// Levels×SlotsPerLevel×32 bytes of slot heads, allocated by [New].
//
// # Heartbeats
//
// [Timer.Touch] moves a pending deadline with a single compare-and-swap and
// without the wheel lock or relinking. The wheel notices the new deadline when
// it reaches the slot the timer is filed in: a later deadline is re-filed
// there, which for a connection that keeps talking happens once per timeout
// period rather than once per message.
//
// # Concurrency and allocation
//
//	call                     goroutines          lock          allocates
//	Timer.Touch, Deadline,   any, concurrently   none          nothing
//	  Pending
//	Wheel.Clock, Now, Tick   any, concurrently   none          nothing
//	Wheel.Schedule, Cancel,  any                 wheel mutex   nothing
//	  Len
//	Wheel.Advance            any                 wheel mutex   growth of the
//	                                                           caller's slice
//	Wheel.Start, Stop        any but onExpire    driver mutex  Start: two goroutines
//	onExpire (the callback)  the dispatcher      none held     -
//
// Races between Touch and expiry are settled by the deadline word: expiry
// fires a timer by CAS(deadline d → 0) only if d ≤ now, and re-files it if a
// Touch got in first with a later deadline; a Touch that finds 0 returns
// false. Timer.SetOwner is a plain write and must happen before the timer is
// shared.
//
// # Trade-offs
//
//   - Resolution is one tick. Advance is exact (it returns precisely the
//     timers whose deadline is ≤ now), but the driver calls it once per tick,
//     so a timer fires up to one Tick (plus scheduling latency) late.
//   - Expired timers are ordered by tick, not by nanosecond: within one tick,
//     and among timers scheduled with a deadline already in the past, the
//     order is unspecified.
//   - A deadline moved earlier by Touch is honoured only when the wheel
//     reaches the slot the timer was filed in, which at a higher level may be
//     much later; use Schedule to move a deadline earlier precisely.
//   - One mutex serialises Schedule, Cancel and Advance. It is held for
//     O(1) work per call except in Advance, which holds it while it walks the
//     slots it passes; Touch avoids it entirely.
//   - The caller owns each Timer's memory and must neither copy it nor reuse
//     it for another wheel while it is pending.
package timingwheel
