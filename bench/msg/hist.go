package msg

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to 100 s with three significant
// digits: 0.1% resolution at every magnitude, which is what p99.9 of a millisecond-
// scale distribution needs, in about 40 KiB per histogram.
const (
	histMin    = 1
	histMax    = 100_000_000
	histDigits = 3
)

// Hist is an HDR histogram of microseconds that travels between processes as the
// standard compressed base64 encoding. Its methods are safe for concurrent use.
type Hist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// NewHist returns an empty histogram.
func NewHist() *Hist { return &Hist{h: hdrhistogram.New(histMin, histMax, histDigits)} }

// Record adds one value in microseconds; values outside the range are clamped so a
// stall is counted at the top rather than dropped.
func (h *Hist) Record(us int64) {
	us = min(max(us, histMin), histMax)
	h.mu.Lock()
	_ = h.h.RecordValue(us)
	h.mu.Unlock()
}

// Merge adds o's counts to h.
func (h *Hist) Merge(o *Hist) {
	if o == nil {
		return
	}
	o.mu.Lock()
	c := o.h.Clone()
	o.mu.Unlock()
	h.mu.Lock()
	h.h.Merge(c)
	h.mu.Unlock()
}

// Reset empties h.
func (h *Hist) Reset() {
	h.mu.Lock()
	h.h.Reset()
	h.mu.Unlock()
}

// Count returns the number of recorded values.
func (h *Hist) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.TotalCount()
}

// Summary is a histogram's percentiles in microseconds.
type Summary struct {
	Count                         int64
	Mean                          float64
	P50, P90, P99, P999, Max, Min int64
}

// Summary returns h's percentiles.
func (h *Hist) Summary() Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h.TotalCount() == 0 {
		return Summary{}
	}
	return Summary{
		Count: h.h.TotalCount(), Mean: h.h.Mean(),
		P50: h.h.ValueAtQuantile(50), P90: h.h.ValueAtQuantile(90), P99: h.h.ValueAtQuantile(99),
		P999: h.h.ValueAtQuantile(99.9), Max: h.h.Max(), Min: h.h.Min(),
	}
}

// CDF returns (value µs, fraction at or below) points for plotting.
func (h *Hist) CDF() (us, frac []float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	total := h.h.TotalCount()
	if total == 0 {
		return nil, nil
	}
	var cum int64
	for _, b := range h.h.Distribution() {
		if b.Count == 0 {
			continue
		}
		cum += b.Count
		us = append(us, float64(b.To))
		frac = append(frac, float64(cum)/float64(total))
	}
	return us, frac
}

// MarshalJSON encodes h in the HdrHistogram V2 compressed base64 form.
func (h *Hist) MarshalJSON() ([]byte, error) {
	h.mu.Lock()
	b, err := h.h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	h.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("cannot encode histogram: %w", err)
	}
	return json.Marshal(string(b))
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return fmt.Errorf("cannot decode histogram: %w", err)
	}
	h.mu.Lock()
	h.h = d
	h.mu.Unlock()
	return nil
}
