package timingwheel

import (
	"sync"
	"time"
)

// driver is the real-clock layer: a ticker goroutine that calls Advance and a
// dispatcher goroutine that runs the callback. They are joined by an
// unbounded queue of expired timers, so a slow callback makes the queue grow
// instead of delaying the tick.
//
//	goroutine    runs                             blocks on
//	ticker       Advance(Options.Now()) per Tick  the wheel mutex; the queue mutex briefly
//	dispatcher   onExpire(batch)                  the queue, when it is empty
type driver[T any] struct {
	mu      sync.Mutex // serialises Start and Stop
	running bool
	stop    chan struct{} // closed by Stop to end the ticker
	ticked  chan struct{} // closed by the ticker when it exits
	drained chan struct{} // closed by the dispatcher when it exits
	q       queue[T]
}

// queue is the unbounded hand-off from the ticker to the dispatcher. Three
// slices rotate between the ticker's buffer, pend and the dispatcher's batch,
// so once they have grown to the largest burst nothing allocates.
type queue[T any] struct {
	mu     sync.Mutex
	cond   sync.Cond
	pend   []*Timer[T] // expired, not yet taken by the dispatcher
	closed bool        // no more pushes; the dispatcher drains pend and exits
}

// Start launches the driver: a goroutine that calls [Wheel.Advance] with
// [Options.Now] once per [Options.Tick] (on a [time.Ticker]), and a goroutine
// that calls onExpire with each batch of expired timers, in expiry order.
// Batches that pile up while onExpire is slow are merged, so the ticker never
// waits for it.
//
// onExpire runs on one goroutine, one batch at a time. It must not retain
// batch after it returns, and must not call [Wheel.Stop]. The timers in batch
// are no longer pending, so it may Schedule them again; but another goroutine
// may already have done so between the expiry and the call, so a callback
// that cares should check [Timer.Pending] or its own state.
//
// Start allocates the two goroutines; steady-state ticking allocates nothing.
// It panics if the driver is already running. It may be called again after
// [Wheel.Stop].
func (w *Wheel[T]) Start(onExpire func(batch []*Timer[T])) {
	d := &w.drv
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running {
		panic("timingwheel: Start called while the driver is running")
	}
	d.running = true
	d.stop = make(chan struct{})
	d.q.cond.L = &d.q.mu
	d.q.closed = false
	d.ticked = make(chan struct{})
	d.drained = make(chan struct{})
	go w.tickLoop(d.stop, d.ticked)
	go d.q.dispatch(onExpire, d.drained)
}

// Stop stops the driver and waits for both of its goroutines to exit. Timers
// that already expired are still delivered to onExpire before Stop returns,
// so it waits for a slow callback; pending timers stay pending. Stop is
// idempotent and may be called from any goroutine except the callback.
func (w *Wheel[T]) Stop() {
	d := &w.drv
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return
	}
	d.running = false
	// The ticker must be gone before the queue closes, or a batch it pushes
	// after the dispatcher drained would be lost: fired but never delivered.
	close(d.stop)
	<-d.ticked
	d.q.close()
	<-d.drained
}

// tickLoop is the ticker goroutine.
func (w *Wheel[T]) tickLoop(stop <-chan struct{}, exited chan<- struct{}) {
	defer close(exited)
	q := &w.drv.q
	tk := time.NewTicker(time.Duration(w.tick))
	defer tk.Stop()
	var buf []*Timer[T]
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
		}
		buf = w.Advance(w.nowFn(), buf[:0])
		if len(buf) > 0 {
			buf = q.push(buf)
		}
	}
}

// push queues the timers in buf and returns an empty buffer to reuse.
func (q *queue[T]) push(buf []*Timer[T]) []*Timer[T] {
	q.mu.Lock()
	if len(q.pend) == 0 {
		// The common case: hand buf over without copying.
		buf, q.pend = q.pend, buf
	} else {
		q.pend = append(q.pend, buf...)
		clear(buf)
	}
	q.cond.Signal()
	q.mu.Unlock()
	return buf[:0]
}

// close tells the dispatcher to exit once pend is drained. The ticker must
// have exited first.
func (q *queue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Signal()
	q.mu.Unlock()
}

// dispatch is the dispatcher goroutine.
func (q *queue[T]) dispatch(onExpire func([]*Timer[T]), exited chan<- struct{}) {
	defer close(exited)
	var batch []*Timer[T]
	for {
		q.mu.Lock()
		for len(q.pend) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.pend) == 0 {
			q.mu.Unlock()
			return
		}
		batch, q.pend = q.pend, batch
		q.mu.Unlock()
		onExpire(batch)
		// Drop the pointers so closed connections are not kept alive.
		clear(batch)
		batch = batch[:0]
	}
}
