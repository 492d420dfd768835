package promtext

import (
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"sync/atomic"
)

// Histogram is a family of Prometheus histograms with fixed `le` buckets, one series
// per label set, so that standard histogram_quantile queries work on tether's latency
// metrics (the metrics library's own histograms use VictoriaMetrics' vmrange buckets).
// Its methods are safe for concurrent use; Observe does not allocate.
type Histogram struct {
	name, help string
	bounds     []float64

	mu     sync.Mutex
	series map[string]*HistogramSeries
}

// HistogramSeries is one label set's histogram of a Histogram.
type HistogramSeries struct {
	h      *Histogram
	labels string
	counts []atomic.Uint64 // len(bounds)+1; the last is +Inf
	sum    atomic.Uint64   // float64 bits of the sum
}

// NewHistogram returns a histogram family named name with HELP text help and the
// buckets' upper bounds, ascending.
func NewHistogram(name, help string, bounds []float64) *Histogram {
	return &Histogram{name: name, help: help, bounds: bounds, series: make(map[string]*HistogramSeries)}
}

// With returns the series of labels, a Prometheus label list without braces
// (`route="push"`, or "" for none), creating it at first use.
func (h *Histogram) With(labels string) *HistogramSeries {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.series[labels]
	if s == nil {
		s = &HistogramSeries{h: h, labels: labels, counts: make([]atomic.Uint64, len(h.bounds)+1)}
		h.series[labels] = s
	}
	return s
}

// Observe records one value.
func (s *HistogramSeries) Observe(v float64) {
	i := 0
	for i < len(s.h.bounds) && v > s.h.bounds[i] {
		i++
	}
	s.counts[i].Add(1)
	for {
		old := s.sum.Load()
		if s.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Write renders the family in the Prometheus text format, series sorted by labels.
func (h *Histogram) Write(w io.Writer) {
	h.mu.Lock()
	ss := make([]*HistogramSeries, 0, len(h.series))
	for _, s := range h.series {
		ss = append(ss, s)
	}
	h.mu.Unlock()
	sort.Slice(ss, func(i, j int) bool { return ss[i].labels < ss[j].labels })
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
	for _, s := range ss {
		s.write(w)
	}
}

func (s *HistogramSeries) write(w io.Writer) {
	name := s.h.name
	sep, plain := "", ""
	if s.labels != "" {
		sep, plain = s.labels+",", "{"+s.labels+"}"
	}
	var cum uint64
	for i, b := range s.h.bounds {
		cum += s.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{%sle=\"%g\"} %d\n", name, sep, b, cum)
	}
	cum += s.counts[len(s.h.bounds)].Load()
	fmt.Fprintf(w, "%s_bucket{%sle=\"+Inf\"} %d\n", name, sep, cum)
	fmt.Fprintf(w, "%s_sum%s %g\n", name, plain, math.Float64frombits(s.sum.Load()))
	fmt.Fprintf(w, "%s_count%s %d\n", name, plain, cum)
}
