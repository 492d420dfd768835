package server

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// The admin listener: Prometheus metrics, liveness, readiness and pprof. It listens on
// Options.AdminAddr, loopback by default, because pprof and metrics are for operators.

// startAdmin opens the admin listener and serves it in the background.
func (s *Server) startAdmin() error {
	ln, err := net.Listen("tcp", s.opts.AdminAddr)
	if err != nil {
		return fmt.Errorf("server: cannot listen on admin address %s: %w", s.opts.AdminAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.WriteMetrics(w)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "draining\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.adminLn = ln
	s.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.admin.Serve(ln); err != nil && err != http.ErrServerClosed {
			s.log.Error("admin listener failed", "err", err)
		}
	}()
	return nil
}

// WriteMetrics writes the server's metrics, with Go runtime and process metrics, in the
// Prometheus text format.
func (s *Server) WriteMetrics(w io.Writer) {
	var buf bytes.Buffer
	s.metrics.set.WritePrometheus(&buf)
	s.mu.Lock()
	extra := s.metricWriters
	s.mu.Unlock()
	for _, fn := range extra {
		fn(&buf)
	}
	metrics.WriteProcessMetrics(&buf)
	writeWithHelp(w, buf.Bytes())
}

// RegisterMetricsWriter adds fn's Prometheus text to the server's /metrics, e.g. the
// control port's metrics. fn is called on every scrape, from the admin listener's
// goroutine; its families must not repeat the server's.
func (s *Server) RegisterMetricsWriter(fn func(w io.Writer)) {
	s.mu.Lock()
	s.metricWriters = append(s.metricWriters[:len(s.metricWriters):len(s.metricWriters)], fn)
	s.mu.Unlock()
}
