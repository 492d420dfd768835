package timingwheel

import "sync/atomic"

// Timer is one deadline, embedded in the caller's struct so that scheduling
// allocates nothing. The zero value is ready to use and not pending.
//
// A Timer is 32 bytes on 64-bit platforms and must not be copied. While it is
// pending it belongs to the [Wheel] it was scheduled on; it may be scheduled
// on another wheel only after it has fired or been cancelled.
type Timer[T any] struct {
	// next and prev link the timer into a slot's circular list; both are nil
	// when it is not linked. Guarded by the wheel mutex.
	next, prev *Timer[T]
	// deadline is the expiry time, 0 when not pending. Written under the
	// wheel mutex by Schedule, Cancel and Advance, and by Touch without it.
	deadline atomic.Int64
	// owner is the caller's back-pointer, returned to onExpire's callers.
	owner *T
}

// SetOwner records o as the struct this timer belongs to, so that an expiry
// batch can be mapped back to it with [Timer.Owner]. It is a plain write: call
// it before the timer is first scheduled, not concurrently with Owner.
func (t *Timer[T]) SetOwner(o *T) { t.owner = o }

// Owner returns the pointer set by [Timer.SetOwner], or nil.
func (t *Timer[T]) Owner() *T { return t.owner }

// Deadline returns the time at which the timer is due, or 0 if it is not
// pending. It may be called from any goroutine.
func (t *Timer[T]) Deadline() int64 { return t.deadline.Load() }

// Pending reports whether the timer is scheduled and has neither fired nor
// been cancelled. It may be called from any goroutine; the answer can be
// stale by the time the caller acts on it.
func (t *Timer[T]) Pending() bool { return t.deadline.Load() != 0 }

// Touch moves a pending timer's deadline, normally later, with one
// compare-and-swap and without taking the wheel lock or relinking the timer.
// It may be called from any goroutine, concurrently with everything else, and
// allocates nothing. A deadline < 1 is treated as 1 (already due).
//
// Touch returns false if the timer is not pending: it fired (possibly in a
// batch the callback has not seen yet) or was cancelled, so the caller lost
// the race with expiry and must use [Wheel.Schedule] to arm it again.
//
// The wheel re-checks the deadline when it reaches the slot the timer is
// filed in and re-files it if the deadline is later. An earlier deadline set
// by Touch is therefore honoured no later than that slot; use
// [Wheel.Schedule] to move a deadline earlier precisely.
func (t *Timer[T]) Touch(deadline int64) bool {
	if deadline < 1 {
		deadline = 1
	}
	for {
		d := t.deadline.Load()
		if d == 0 {
			return false
		}
		// Heartbeats computed from the coarse Clock often repeat the same
		// deadline within one tick: skip the write and its cache-line
		// invalidation.
		if d == deadline || t.deadline.CompareAndSwap(d, deadline) {
			return true
		}
	}
}

// initHead makes t an empty list head (a slot sentinel).
func (t *Timer[T]) initHead() { t.next, t.prev = t, t }

// empty reports whether the list headed by t is empty.
func (t *Timer[T]) empty() bool { return t.next == t }

// pushBack links t at the tail of the list headed by head.
func (t *Timer[T]) pushBack(head *Timer[T]) {
	t.prev = head.prev
	t.next = head
	head.prev.next = t
	head.prev = t
}

// unlink removes t from its list.
func (t *Timer[T]) unlink() {
	t.prev.next = t.next
	t.next.prev = t.prev
	t.next, t.prev = nil, nil
}

// moveTo moves every timer of the list headed by t to the empty list headed
// by dst, leaving t empty. O(1).
func (t *Timer[T]) moveTo(dst *Timer[T]) {
	if t.empty() {
		return
	}
	dst.next, dst.prev = t.next, t.prev
	dst.next.prev = dst
	dst.prev.next = dst
	t.initHead()
}
