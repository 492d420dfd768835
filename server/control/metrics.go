package control

import (
	"bytes"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/tether-gw/tether/internal/promtext"
	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// metricHelp is the HELP text of every control-port metric family, so that /metrics
// passes `promtool check metrics`.
var metricHelp = map[string]string{
	"tether_control_accept_errors_total":        "Accept errors on the control listener (e.g. out of file descriptors), each followed by a back-off of 5 ms doubling to 1 s.",
	"tether_control_auth_failures_total":        "Control connections refused at AUTH, by reason (bad_secret, missing_secret, no_auth, malformed, timeout, protocol_error).",
	"tether_control_closes_total":               "Control connections closed, by close code (NORMAL includes services that went away).",
	"tether_control_connections_total":          "Control connections accepted since start.",
	"tether_control_events_dropped_total":       "Connection events not queued because the subscriber's queue was full.",
	"tether_control_events_total":               "Connection events queued to subscribed services.",
	"tether_control_fails_total":                "Requests answered FAIL, by code.",
	"tether_control_frames_in_total":            "Frames received from services, by opcode.",
	"tether_control_push_delivered_total":       "Push frames written or queued to client connections by control-port pushes.",
	"tether_control_queued_bytes":               "Bytes queued for services, not yet written.",
	"tether_control_read_bytes_total":           "Bytes read from control connections.",
	"tether_control_rejected_total":             "Control connections refused or closed instead of served, by reason (too_many_services: authenticated cap; too_many_unauthenticated: evicted to make room; auth_locked_out: source locked out after failed AUTHs; fd_exhausted: answered SERVER_FULL while the process was out of file descriptors).",
	"tether_control_replies_unknown_total":      "REPLY frames for uplinks that were unknown, already answered or timed out.",
	"tether_control_requests_total":             "Requests answered (RESULT or FAIL), by opcode.",
	"tether_control_services":                   "Authenticated control connections.",
	"tether_control_slow_service_closes_total":  "Control connections closed because the service stopped reading (queue full or write timed out).",
	"tether_control_uplinks_pending":            "Uplinks waiting for a service's REPLY.",
	"tether_control_uplinks_redispatched_total": "Uplinks re-dispatched to another service after their service connection ended.",
	"tether_control_uplinks_total":              "Client SENDs handled by the control port, by result (sent, replied, failed, no_route, busy, timeout).",
	"tether_control_written_bytes_total":        "Bytes written to control connections.",
}

// portMetrics is one control port's metric set.
type portMetrics struct {
	set *metrics.Set

	connsTotal     *metrics.Counter
	acceptErrors   *metrics.Counter
	bytesIn        *metrics.Counter
	bytesOut       *metrics.Counter
	slowClosed     *metrics.Counter
	repliesUnknown *metrics.Counter
	redispatched   *metrics.Counter
	events         *metrics.Counter
	eventsDropped  *metrics.Counter
	pushDelivered  *metrics.Counter
	uplinkSent     *metrics.Counter
	// uplinkForwarded counts uplinks sent to another node of the cluster.
	uplinkForwarded *metrics.Counter
	uplinkReplied   *metrics.Counter
	uplinkFailed    *metrics.Counter
	queuedBytes     atomic.Int64

	framesIn [256]*metrics.Counter
	requests [256]*metrics.Counter
}

func newPortMetrics(p *Port) *portMetrics {
	// TYPE and HELP lines make /metrics pass promtool; the setting is process-wide.
	metrics.ExposeMetadata(true)
	set := metrics.NewSet()
	m := &portMetrics{set: set}
	m.connsTotal = set.NewCounter("tether_control_connections_total")
	m.acceptErrors = set.NewCounter("tether_control_accept_errors_total")
	m.bytesIn = set.NewCounter("tether_control_read_bytes_total")
	m.bytesOut = set.NewCounter("tether_control_written_bytes_total")
	m.slowClosed = set.NewCounter("tether_control_slow_service_closes_total")
	m.repliesUnknown = set.NewCounter("tether_control_replies_unknown_total")
	m.redispatched = set.NewCounter("tether_control_uplinks_redispatched_total")
	m.events = set.NewCounter("tether_control_events_total")
	m.eventsDropped = set.NewCounter("tether_control_events_dropped_total")
	m.pushDelivered = set.NewCounter("tether_control_push_delivered_total")
	m.uplinkSent = set.NewCounter(`tether_control_uplinks_total{result="sent"}`)
	m.uplinkForwarded = set.NewCounter(`tether_control_uplinks_total{result="forwarded"}`)
	m.uplinkReplied = set.NewCounter(`tether_control_uplinks_total{result="replied"}`)
	m.uplinkFailed = set.NewCounter(`tether_control_uplinks_total{result="failed"}`)
	for _, c := range []protocol.ErrorCode{protocol.ErrorNoRoute, protocol.ErrorBusy, protocol.ErrorTimeout} {
		m.uplinkResult(c).Add(0)
	}
	set.NewGauge("tether_control_services", func() float64 { return float64(p.services()) })
	set.NewGauge("tether_control_uplinks_pending", func() float64 { return float64(p.pendingN.Load()) })
	set.NewGauge("tether_control_queued_bytes", func() float64 { return float64(m.queuedBytes.Load()) })

	other := [2]*metrics.Counter{
		set.NewCounter(`tether_control_frames_in_total{op="other"}`),
		set.NewCounter(`tether_control_requests_total{op="other"}`),
	}
	for op := range m.framesIn {
		m.framesIn[op], m.requests[op] = other[0], other[1]
	}
	for op := protocol.Opcode(0x40); op <= OpEvent; op++ {
		name := wire.OpName(op)
		m.framesIn[op] = set.NewCounter(fmt.Sprintf(`tether_control_frames_in_total{op=%q}`, name))
		if wire.IsRequest(op) || op == OpReply {
			m.requests[op] = set.NewCounter(fmt.Sprintf(`tether_control_requests_total{op=%q}`, name))
		}
	}
	for _, op := range []protocol.Opcode{protocol.OpPing, protocol.OpPong, protocol.OpClose} {
		m.framesIn[op] = set.NewCounter(fmt.Sprintf(`tether_control_frames_in_total{op=%q}`, wire.OpName(op)))
	}
	// Pre-register the series that count bad input, so dashboards and alerts see zeros.
	for _, c := range []protocol.ErrorCode{protocol.ErrorBadRequest, protocol.ErrorUnknownOpcode, protocol.ErrorNotFound,
		protocol.ErrorTooManyRooms, protocol.ErrorInternal} {
		m.failedCounter(c)
	}
	for _, c := range []protocol.CloseCode{protocol.CloseNormal, protocol.CloseGoingAway, protocol.CloseSlowConsumer,
		protocol.CloseAuthTimeout, protocol.CloseInvalidToken, protocol.CloseProtocolError, protocol.CloseFrameTooLarge,
		protocol.CloseServerFull} {
		m.closedCounter(c)
	}
	for _, r := range []string{"bad_secret", "missing_secret", "no_auth", "malformed", "timeout", "protocol_error"} {
		set.GetOrCreateCounter(fmt.Sprintf(`tether_control_auth_failures_total{reason=%q}`, r))
	}
	for _, r := range []string{"too_many_services", "too_many_unauthenticated", "auth_locked_out", "fd_exhausted"} {
		set.GetOrCreateCounter(fmt.Sprintf(`tether_control_rejected_total{reason=%q}`, r))
	}
	return m
}

func (m *portMetrics) frameIn(op protocol.Opcode)     { m.framesIn[op].Inc() }
func (m *portMetrics) request(op protocol.Opcode)     { m.requests[op].Inc() }
func (m *portMetrics) failed(code protocol.ErrorCode) { m.failedCounter(code).Inc() }
func (m *portMetrics) closed(code protocol.CloseCode) { m.closedCounter(code).Inc() }
func (m *portMetrics) authFailed(reason string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`tether_control_auth_failures_total{reason=%q}`, reason)).Inc()
}
func (m *portMetrics) rejected(reason string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`tether_control_rejected_total{reason=%q}`, reason)).Inc()
}

func (m *portMetrics) failedCounter(code protocol.ErrorCode) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`tether_control_fails_total{code="%d",reason=%q}`, uint16(code), code.String()))
}

func (m *portMetrics) closedCounter(code protocol.CloseCode) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`tether_control_closes_total{code="%d",reason=%q}`, uint16(code), code.String()))
}

// uplinkResult returns the uplink counter of a failed dispatch or a timeout.
func (m *portMetrics) uplinkResult(code protocol.ErrorCode) *metrics.Counter {
	r := "no_route"
	switch code {
	case protocol.ErrorBusy:
		r = "busy"
	case protocol.ErrorTimeout:
		r = "timeout"
	}
	return m.set.GetOrCreateCounter(fmt.Sprintf(`tether_control_uplinks_total{result=%q}`, r))
}

// WriteMetrics writes the control port's metrics (tether_control_*) in the Prometheus
// text format, with HELP and TYPE lines. It does not write Go runtime or process
// metrics: the gateway's own WriteMetrics does. Safe for concurrent use.
func (p *Port) WriteMetrics(w io.Writer) {
	var buf bytes.Buffer
	p.m.set.WritePrometheus(&buf)
	promtext.Rewrite(w, buf.Bytes(), func(fam string) string {
		if h := metricHelp[fam]; h != "" {
			return h
		}
		return "tether control port metric " + fam + "."
	}, nil)
}
