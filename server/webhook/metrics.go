package webhook

import (
	"bytes"
	"io"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/tether-gw/tether/internal/promtext"
)

// metricHelp is the HELP text of every webhook metric family, so that /metrics passes
// `promtool check metrics`.
var metricHelp = map[string]string{
	"tether_webhook_deliveries_total":          "Webhook deliveries by result: ok (2xx), failed (a status other than 5xx/429, or MaxAttempts attempts without success), dropped (the queue was full, which drops its oldest delivery, or the sender was closing), retried (an attempt repeated after a network error, timeout, 5xx or 429).",
	"tether_webhook_queue_length":              "Webhook deliveries waiting for a worker.",
	"tether_webhook_queue_capacity":            "Size of the webhook delivery queue (Options.QueueSize); past it the oldest delivery is dropped.",
	"tether_webhook_delivery_duration_seconds": "Time one webhook POST took, from sending the request to reading the answer's status (failed attempts included).",
}

// senderMetrics is one Sender's metric set.
type senderMetrics struct {
	set                          *metrics.Set
	ok, failed, dropped, retried *metrics.Counter
	latency                      *metrics.Summary
}

func newSenderMetrics(s *Sender) *senderMetrics {
	// TYPE and HELP lines make /metrics pass promtool; the setting is process-wide.
	metrics.ExposeMetadata(true)
	set := metrics.NewSet()
	m := &senderMetrics{set: set}
	m.ok = set.NewCounter(`tether_webhook_deliveries_total{result="ok"}`)
	m.failed = set.NewCounter(`tether_webhook_deliveries_total{result="failed"}`)
	m.dropped = set.NewCounter(`tether_webhook_deliveries_total{result="dropped"}`)
	m.retried = set.NewCounter(`tether_webhook_deliveries_total{result="retried"}`)
	set.NewGauge("tether_webhook_queue_length", func() float64 { return float64(s.QueueLen()) })
	set.NewGauge("tether_webhook_queue_capacity", func() float64 { return float64(cap(s.queue)) })
	m.latency = set.NewSummaryExt("tether_webhook_delivery_duration_seconds", 5*time.Minute, []float64{0.5, 0.9, 0.99})
	return m
}

// WriteMetrics writes the Sender's metrics (tether_webhook_*) in the Prometheus text
// format, with HELP and TYPE lines (register it with server.RegisterMetricsWriter).
// Safe for concurrent use.
func (s *Sender) WriteMetrics(w io.Writer) {
	var buf bytes.Buffer
	s.m.set.WritePrometheus(&buf)
	promtext.Rewrite(w, buf.Bytes(), func(fam string) string {
		if h := metricHelp[fam]; h != "" {
			return h
		}
		return "tether webhook metric " + fam + "."
	}, nil)
}
