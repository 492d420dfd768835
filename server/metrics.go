package server

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"

	"github.com/tether-gw/tether/internal/promtext"
	"github.com/tether-gw/tether/protocol"
)

// serverMetrics is one server's metric set. Counters that the I/O path bumps per frame
// are resolved once (arrays indexed by opcode) so counting is one atomic add.
type serverMetrics struct {
	set *metrics.Set

	connsTotal      *metrics.Counter
	authOK          *metrics.Counter
	bytesIn         *metrics.Counter
	bytesOut        *metrics.Counter
	protocolErrors  *metrics.Counter
	slowConsumers   *metrics.Counter
	backlogs        *metrics.Counter
	writeCalls      *metrics.Counter
	busy            *metrics.Counter
	poolRejected    *metrics.Counter
	handlerPanics   *metrics.Counter
	messagesUp      *metrics.Counter
	acks            *metrics.Counter
	pushed          *metrics.Counter
	qos1Buffered    *metrics.Counter
	resumeRecovered *metrics.Counter
	resumeFailed    *metrics.Counter
	resumeReplayed  *metrics.Counter
	// QoS1 (inflight.go, stream.go): frames sent again with FlagDup after an ack
	// timeout on a live connection, and to a new connection of a device that was sent
	// them before; messages that found the window full; connections closed because
	// messages they had not acknowledged left the buffer.
	redeliveredTimeout   *metrics.Counter
	redeliveredReconnect *metrics.Counter
	windowFull           *metrics.Counter
	lostCloses           *metrics.Counter
	// clusterErrors counts operations whose cross-node part the broker refused.
	clusterErrors *metrics.Counter

	// acceptedBy counts accepted sockets by transport (tether_connections_total is
	// their sum).
	acceptedBy [numTransports]*metrics.Counter

	framesInByOp   [256]*metrics.Counter
	bytesInByOp    [256]*metrics.Counter
	framesOutByOp  [256]*metrics.Counter
	bytesOutByOp   [256]*metrics.Counter
	handlerLatency *promtext.HistogramSeries
}

func newServerMetrics(s *Server) *serverMetrics {
	// TYPE and HELP lines make /metrics pass promtool; the setting is process-wide.
	metrics.ExposeMetadata(true)
	set := metrics.NewSet()
	m := &serverMetrics{set: set}
	m.connsTotal = set.NewCounter("tether_connections_total")
	m.authOK = set.NewCounter("tether_auth_success_total")
	m.bytesIn = set.NewCounter("tether_read_bytes_total")
	m.bytesOut = set.NewCounter("tether_written_bytes_total")
	m.protocolErrors = set.NewCounter("tether_protocol_errors_total")
	m.slowConsumers = set.NewCounter("tether_slow_consumer_closes_total")
	m.backlogs = set.NewCounter("tether_write_backlogs_total")
	m.writeCalls = set.NewCounter("tether_write_calls_total")
	m.busy = set.NewCounter("tether_busy_replies_total")
	m.poolRejected = set.NewCounter("tether_pool_rejected_total")
	m.handlerPanics = set.NewCounter("tether_handler_panics_total")
	m.messagesUp = set.NewCounter("tether_uplink_messages_total")
	m.acks = set.NewCounter("tether_acks_total")
	m.pushed = set.NewCounter("tether_pushes_delivered_total")
	m.qos1Buffered = set.NewCounter("tether_qos1_messages_total")
	m.resumeRecovered = set.NewCounter(`tether_resumes_total{result="recovered"}`)
	m.resumeFailed = set.NewCounter(`tether_resumes_total{result="not_recovered"}`)
	m.resumeReplayed = set.NewCounter("tether_resume_replayed_total")
	m.redeliveredTimeout = set.NewCounter(`tether_qos1_redelivered_total{cause="ack_timeout"}`)
	m.redeliveredReconnect = set.NewCounter(`tether_qos1_redelivered_total{cause="reconnect"}`)
	m.windowFull = set.NewCounter("tether_qos1_window_full_total")
	m.lostCloses = set.NewCounter("tether_qos1_lost_closes_total")
	m.clusterErrors = set.NewCounter("tether_cluster_publish_errors_total")
	set.NewGauge("tether_accept_fd_exhausted_total", func() float64 { return float64(fdExhausted.Load()) })
	set.NewGauge("tether_source_bans_total", func() float64 { return float64(s.limits.bans.Load()) })
	set.NewGauge("tether_connections", func() float64 { return float64(s.hub.total.Load()) })
	for t := TransportTCP; t < numTransports; t++ {
		m.acceptedBy[t] = set.NewCounter(fmt.Sprintf(`tether_transport_connections_total{transport=%q}`, t.String()))
		set.NewGauge(fmt.Sprintf(`tether_transport_connections{transport=%q}`, t.String()), func() float64 { return float64(s.transportOpen[t].Load()) })
	}
	set.NewGauge("tether_tls_handshakes_queued", func() float64 {
		if s.handshakes == nil {
			return 0
		}
		return float64(s.handshakes.queued.Load())
	})
	set.NewGauge("tether_connections_authenticated", func() float64 { return float64(s.hub.authed.Load()) })
	set.NewGauge("tether_users", func() float64 { return float64(s.hub.userCount()) })
	set.NewGauge("tether_rooms", func() float64 { return float64(s.rooms.count()) })
	set.NewGauge("tether_backlog_bytes", func() float64 { return float64(s.backlogBytes.Load()) })
	set.NewGauge("tether_timers_pending", func() float64 { return float64(s.wheel.Len()) })
	set.NewGauge("tether_pool_running", func() float64 { return float64(s.pool.Running()) })
	set.NewGauge("tether_pool_waiting", func() float64 { return float64(s.pool.Waiting()) })
	set.NewGauge("tether_pool_capacity", func() float64 { return float64(s.pool.Cap()) })
	set.NewGauge("tether_draining", func() float64 {
		if s.draining.Load() {
			return 1
		}
		return 0
	})
	for op := 1; op <= 0x0F; op++ {
		name := protocol.Opcode(op).String()
		m.framesInByOp[op] = set.NewCounter(fmt.Sprintf(`tether_frames_in_total{op=%q}`, name))
		m.bytesInByOp[op] = set.NewCounter(fmt.Sprintf(`tether_frame_bytes_in_total{op=%q}`, name))
		m.framesOutByOp[op] = set.NewCounter(fmt.Sprintf(`tether_frames_out_total{op=%q}`, name))
		m.bytesOutByOp[op] = set.NewCounter(fmt.Sprintf(`tether_frame_bytes_out_total{op=%q}`, name))
	}
	other := [4]*metrics.Counter{
		set.NewCounter(`tether_frames_in_total{op="other"}`),
		set.NewCounter(`tether_frame_bytes_in_total{op="other"}`),
		set.NewCounter(`tether_frames_out_total{op="other"}`),
		set.NewCounter(`tether_frame_bytes_out_total{op="other"}`),
	}
	for op := range m.framesInByOp {
		if m.framesInByOp[op] == nil {
			m.framesInByOp[op], m.bytesInByOp[op] = other[0], other[1]
			m.framesOutByOp[op], m.bytesOutByOp[op] = other[2], other[3]
		}
	}
	// Pre-register the close and auth-failure series so dashboards see zeros.
	for _, c := range []protocol.CloseCode{protocol.CloseNormal, protocol.CloseGoingAway, protocol.CloseHeartbeatTimeout,
		protocol.CloseSlowConsumer, protocol.CloseAuthTimeout, protocol.CloseSessionExpired, protocol.CloseKicked, protocol.CloseReplaced,
		protocol.CloseProtocolError, protocol.CloseFrameTooLarge} {
		m.closedCounter(c)
	}
	for _, c := range []protocol.CloseCode{protocol.CloseInvalidToken, protocol.CloseTokenExpired, protocol.CloseForbidden} {
		m.authFailedCounter(c)
	}
	for _, result := range []string{"ok", "rejected", "other_user", "timeout", "busy"} {
		m.set.GetOrCreateCounter(fmt.Sprintf(`tether_token_refreshes_total{result=%q}`, result))
	}
	for _, reason := range []string{"server_full", "per_ip", "connect_rate", "draining", "source_rate", "banned", "fd_exhausted"} {
		m.refusedCounter(reason)
	}
	latency := promtext.NewHistogram("tether_handler_duration_seconds", helpFor("tether_handler_duration_seconds"),
		[]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})
	m.handlerLatency = latency.With("")
	set.RegisterMetricsWriter(latency.Write)
	return m
}

// handshake counts a transport handshake's result: "ok", "failed", "refused" (TLS
// handshake queue full, WebSocket upgrade refused).
func (m *serverMetrics) handshake(t Transport, result string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`tether_transport_handshakes_total{transport=%q,result=%q}`, t.String(), result)).Inc()
}

// proxyHeader counts a PROXY header's fate: "ok", "refused" (malformed, missing from a
// trusted source), "untrusted" (sent by a source not trusted to).
func (m *serverMetrics) proxyHeader(result string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`tether_proxy_headers_total{result=%q}`, result)).Inc()
}

// framesIn counts one inbound frame of n bytes.
func (m *serverMetrics) framesIn(op protocol.Opcode, n int) {
	m.framesInByOp[op].Inc()
	m.bytesInByOp[op].Add(n)
}

// framesOut counts one outbound frame of n bytes.
func (m *serverMetrics) framesOut(op protocol.Opcode, n int) {
	m.framesOutByOp[op].Inc()
	m.bytesOutByOp[op].Add(n)
	m.bytesOut.Add(n)
}

// framesOutN counts count copies of one outbound frame of n bytes (a fan-out).
func (m *serverMetrics) framesOutN(op protocol.Opcode, n, count int) {
	m.framesOutByOp[op].Add(count)
	m.bytesOutByOp[op].Add(n * count)
	m.bytesOut.Add(n * count)
}

func (m *serverMetrics) closedCounter(code protocol.CloseCode) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`tether_closes_total{code="%d",reason=%q}`, uint16(code), code.String()))
}

func (m *serverMetrics) authFailedCounter(code protocol.CloseCode) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`tether_auth_failures_total{reason=%q}`, code.String()))
}

func (m *serverMetrics) refusedCounter(reason string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`tether_connections_refused_total{reason=%q}`, reason))
}

// refreshed counts a REFRESH by result (see tether_token_refreshes_total's help).
func (m *serverMetrics) refreshed(result string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`tether_token_refreshes_total{result=%q}`, result)).Inc()
}

// closed counts a closed connection by close code.
func (m *serverMetrics) closed(code protocol.CloseCode) { m.closedCounter(code).Inc() }

// authFailed counts a failed authentication by code.
func (m *serverMetrics) authFailed(code protocol.CloseCode) { m.authFailedCounter(code).Inc() }
