package server

import (
	"io"
	"strings"

	"github.com/tether-gw/tether/internal/promtext"
)

// metricHelp is the HELP text of every tether metric family, so that /metrics passes
// `promtool check metrics` and dashboards show what each series means.
var metricHelp = map[string]string{
	"tether_accept_fd_exhausted_total":    "Accept failures because the process ran out of file descriptors (EMFILE/ENFILE): the waiting client is refused SERVER_FULL on the reserved descriptor, or, without one, accepting pauses and retries.",
	"tether_acks_total":                   "ACK frames received from clients.",
	"tether_auth_failures_total":          "Failed authentications by close code.",
	"tether_auth_success_total":           "Successful authentications.",
	"tether_backlog_bytes":                "Bytes queued for connections whose sockets are not draining (bounded by the server outbound budget).",
	"tether_busy_replies_total":           "Requests answered ERROR BUSY because the connection or the worker pool was saturated.",
	"tether_closes_total":                 "Closed connections by close code (NORMAL includes peers that went away).",
	"tether_connections":                  "Open client connections, authenticated or not.",
	"tether_connections_authenticated":    "Authenticated client connections.",
	"tether_connections_refused_total":    "Connections refused at accept by reason.",
	"tether_connections_total":            "Client connections accepted since start.",
	"tether_draining":                     "1 while the server is draining (after SIGTERM or Shutdown), else 0.",
	"tether_frame_bytes_in_total":         "Bytes of frames received by opcode, headers included.",
	"tether_frame_bytes_out_total":        "Bytes of frames sent by opcode, headers included.",
	"tether_frames_in_total":              "Frames received by opcode.",
	"tether_frames_out_total":             "Frames sent by opcode (a fan-out counts each recipient).",
	"tether_handler_duration_seconds":     "Time handlers took per request on the worker pool.",
	"tether_handler_panics_total":         "Handler panics recovered.",
	"tether_pool_capacity":                "Worker pool size.",
	"tether_pool_rejected_total":          "Tasks the saturated worker pool refused.",
	"tether_pool_running":                 "Worker pool goroutines running a task.",
	"tether_pool_waiting":                 "Tasks waiting for a worker.",
	"tether_protocol_errors_total":        "Frames that broke the protocol (malformed, oversized, wrong state).",
	"tether_pushes_delivered_total":       "Push frames written or queued to connections.",
	"tether_token_refreshes_total":        "REFRESH requests by result: ok (accepted, the connection lives to the new expiry), rejected (the Authenticator refused the token), other_user (the token names another user), timeout (the Authenticator did not answer in time), busy (another REFRESH of the connection was being checked, or the pool was full).",
	"tether_read_bytes_total":             "Bytes read from client sockets.",
	"tether_qos1_messages_total":          "QoS1 messages assigned a message id and buffered for resume.",
	"tether_qos1_redelivered_total":       "QoS1 PUSH frames sent again with the DUP flag, by cause: ack_timeout (no ACK advanced within the ack timeout on a live connection), reconnect (a new connection of a device that was sent them before).",
	"tether_qos1_window_full_total":       "QoS1 messages that found a connection's in-flight window full and waited in the buffer for an ACK.",
	"tether_qos1_lost_closes_total":       "Connections closed with SLOW_CONSUMER because QoS1 messages they had not acknowledged left the resume buffer (count or age bound).",
	"tether_resumes_total":                "Reconnects that asked to resume, by result.",
	"tether_resume_replayed_total":        "QoS1 messages replayed to resuming connections.",
	"tether_rooms":                        "Non-empty rooms.",
	"tether_source_bans_total":            "Sources banned for flapping (too many failed logins or over-rate connects within the flap window).",
	"tether_slow_consumer_closes_total":   "Connections closed because they stopped reading (outbound budget or write timeout exceeded).",
	"tether_timers_pending":               "Deadlines pending on the timing wheel (one per connection).",
	"tether_uplink_messages_total":        "SEND messages passed to the handler.",
	"tether_cluster_publish_errors_total": "Operations whose cross-node part could not be handed to the cluster broker (it was disconnected): they reached this node only and the caller got ErrClusterUnavailable.",
	"tether_users":                        "Users with at least one authenticated connection.",
	"tether_transport_connections":        "Open client connections by transport (tcp, tls, ws, wss).",
	"tether_transport_connections_total":  "Client connections accepted since start, by transport.",
	"tether_transport_handshakes_total":   "Transport handshakes (TLS, WebSocket upgrade) by transport and result: ok, failed, refused (TLS handshake queue full, upgrade refused), timeout (handshake deadline).",
	"tether_tls_handshakes_queued":        "TLS connections waiting for a handshake slot (Options.MaxTLSHandshakes).",
	"tether_proxy_headers_total":          "PROXY protocol headers by result: ok, refused (malformed, or missing from a trusted source by the deadline), untrusted (sent by a source not trusted to).",
	"tether_write_calls_total":            "write/writev calls on client sockets; against tether_frames_out_total it shows how well writes batch.",
	"tether_write_backlogs_total":         "Times a socket's send buffer filled and writes went to a backlog.",
	"tether_written_bytes_total":          "Bytes of frames written or queued to client sockets.",
}

// helpFor returns the HELP text of a metric family.
func helpFor(family string) string {
	if h, ok := metricHelp[family]; ok {
		return h
	}
	switch {
	case strings.HasPrefix(family, "go_"):
		return "Go runtime metric " + family + "."
	case strings.HasPrefix(family, "process_"):
		return "Process metric " + family + " read from /proc."
	}
	return "tether metric " + family + "."
}

// promRenames renames the few runtime series whose names break Prometheus naming
// rules (a counter must end in _total, and only histograms and summaries end in _count).
var promRenames = map[string]string{
	"go_cgo_calls_count": "go_cgo_calls_total",
	"go_gc_forced_count": "go_gc_forced_total",
	"go_cpu_count":       "go_cpus",
}

// writeWithHelp copies the Prometheus text in src to w so that it passes promtool
// (internal/promtext): HELP from metricHelp, promRenames applied.
func writeWithHelp(w io.Writer, src []byte) { promtext.Rewrite(w, src, helpFor, promRenames) }
