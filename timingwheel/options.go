package timingwheel

import (
	"fmt"
	"math/bits"
	"time"
)

// Options configures a [Wheel]. The zero value keeps every default.
type Options struct {
	// Tick is the wheel's resolution: the span of one level-0 slot and the
	// period of the driver started by [Wheel.Start]. Default 10ms.
	Tick time.Duration

	// SlotsPerLevel is the number of slots in each level; it must be a power
	// of two, at least 2. Default 256.
	SlotsPerLevel int

	// Levels is the number of levels. The wheel spans
	// SlotsPerLevel^Levels ticks (256^4 × 10ms ≈ 497 days with the defaults);
	// a deadline beyond that is clamped into the top level and re-filed when
	// that slot cascades, so it still fires on time. log2(SlotsPerLevel) ×
	// Levels must not exceed 62. Default 4.
	Levels int

	// Now is the clock read by the driver before each Advance and by
	// [Wheel.Now]; New also reads it once to set the initial [Wheel.Clock].
	// It must be monotonic, return nanoseconds, and be safe to call from
	// any goroutine. Default: monotonic nanoseconds since New, plus one, so it
	// never returns a value ≤ 0.
	Now func() int64
}

// Default values for the fields of [Options].
const (
	DefaultTick          = 10 * time.Millisecond
	DefaultSlotsPerLevel = 256
	DefaultLevels        = 4
)

// withDefaults fills in defaults and validates. Invalid options are a
// programming error, so it panics rather than returning an error.
func (o Options) withDefaults() Options {
	if o.Tick == 0 {
		o.Tick = DefaultTick
	}
	if o.SlotsPerLevel == 0 {
		o.SlotsPerLevel = DefaultSlotsPerLevel
	}
	if o.Levels == 0 {
		o.Levels = DefaultLevels
	}
	if o.Tick < 0 {
		panic(fmt.Sprintf("timingwheel: Tick %v is negative", o.Tick))
	}
	if o.SlotsPerLevel < 2 || o.SlotsPerLevel&(o.SlotsPerLevel-1) != 0 {
		panic(fmt.Sprintf("timingwheel: SlotsPerLevel %d is not a power of two ≥ 2", o.SlotsPerLevel))
	}
	if o.Levels < 1 {
		panic(fmt.Sprintf("timingwheel: Levels %d is less than 1", o.Levels))
	}
	// The span in ticks, SlotsPerLevel^Levels, must fit an int64 with room
	// for adding the current tick.
	if b := bits.TrailingZeros(uint(o.SlotsPerLevel)); b*o.Levels > 62 {
		panic(fmt.Sprintf("timingwheel: %d levels of %d slots span more than 2^62 ticks", o.Levels, o.SlotsPerLevel))
	}
	if o.Now == nil {
		base := time.Now()
		o.Now = func() int64 { return int64(time.Since(base)) + 1 }
	}
	return o
}
