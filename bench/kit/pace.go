package kit

import (
	"context"
	"time"
)

// Pace calls visit for the k-th event of a schedule of rate per second, k = 0, 1, ...,
// passing the time it was due, until ctx ends. rate is read again on every tick.
func Pace(ctx context.Context, rate func() float64, visit func(k int64, due time.Time)) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	start := time.Now()
	var k int64
	var credit float64
	last := start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			credit += now.Sub(last).Seconds() * rate()
			last = now
			for ; credit >= 1; credit-- {
				visit(k, now)
				k++
			}
		}
	}
}
