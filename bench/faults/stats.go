package faults

import (
	"fmt"
	"slices"
	"time"
)

// durStats summarizes durations: min, p50, max.
type durStats struct {
	N             int
	Min, P50, Max time.Duration
}

func summarize(d []time.Duration) durStats {
	if len(d) == 0 {
		return durStats{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return durStats{N: len(s), Min: s[0], P50: s[(len(s)-1)/2], Max: s[len(s)-1]}
}

// String renders the summary in milliseconds.
func (s durStats) String() string {
	return fmt.Sprintf("n=%d min=%s p50=%s max=%s", s.N, ms(s.Min), ms(s.P50), ms(s.Max))
}

// ms renders d in milliseconds with one decimal.
func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
