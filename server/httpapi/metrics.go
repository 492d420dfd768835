package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"strconv"

	"github.com/VictoriaMetrics/metrics"

	"github.com/tether-gw/tether/internal/promtext"
)

// metricHelp is the HELP text of every HTTP API metric family, so that /metrics passes
// `promtool check metrics`.
var metricHelp = map[string]string{
	"tether_http_requests_total":           "HTTP API requests answered, by route (\"unknown\" for no route) and HTTP status code.",
	"tether_http_request_duration_seconds": "Time from a request's arrival at its handler to its response, by route.",
	"tether_http_auth_failures_total":      "HTTP API requests refused for their key, by reason (missing_key, bad_key, locked_out: the source made too many failures).",
	"tether_http_push_delivered_total":     "Push frames written or queued to client connections by HTTP API pushes (batches included).",
	"tether_http_batch_pushes_total":       "Pushes of /v1/push/batch requests, by result (ok, failed).",
}

// apiMetrics is one API's metric set.
type apiMetrics struct {
	set       *metrics.Set
	latency   *promtext.Histogram
	delivered *metrics.Counter
	batchOK   *metrics.Counter
	batchFail *metrics.Counter
}

func newAPIMetrics() *apiMetrics {
	metrics.ExposeMetadata(true) // process-wide, as the gateway's and the control port's
	set := metrics.NewSet()
	m := &apiMetrics{
		set: set,
		latency: promtext.NewHistogram("tether_http_request_duration_seconds", metricHelp["tether_http_request_duration_seconds"],
			[]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
		delivered: set.NewCounter("tether_http_push_delivered_total"),
		batchOK:   set.NewCounter(`tether_http_batch_pushes_total{result="ok"}`),
		batchFail: set.NewCounter(`tether_http_batch_pushes_total{result="failed"}`),
	}
	for _, r := range []string{"missing_key", "bad_key", "locked_out"} {
		m.authFailed(r).Add(0)
	}
	return m
}

// route returns the latency series of a route, created at New for every route.
func (m *apiMetrics) route(name string) *promtext.HistogramSeries {
	return m.latency.With(fmt.Sprintf("route=%q", name))
}

// request counts a response.
func (m *apiMetrics) request(route string, status int) {
	m.set.GetOrCreateCounter(`tether_http_requests_total{route="` + route + `",code="` + strconv.Itoa(status) + `"}`).Inc()
}

func (m *apiMetrics) authFailed(reason string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`tether_http_auth_failures_total{reason=%q}`, reason))
}

// WriteMetrics writes the API's metrics (tether_http_*) in the Prometheus text format,
// with HELP and TYPE lines, for the gateway's /metrics (server.RegisterMetricsWriter).
// Safe for concurrent use.
func (a *API) WriteMetrics(w io.Writer) {
	var buf bytes.Buffer
	a.m.set.WritePrometheus(&buf)
	a.m.latency.Write(&buf)
	promtext.Rewrite(w, buf.Bytes(), func(fam string) string {
		if h := metricHelp[fam]; h != "" {
			return h
		}
		return "tether HTTP API metric " + fam + "."
	}, nil)
}
