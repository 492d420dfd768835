package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/tether-gw/tether/internal/netutil"
)

// The admin listener: Prometheus metrics, liveness, readiness and pprof. It listens on
// Options.AdminAddr, loopback by default, because pprof and metrics are for operators.
//
// Exposure rules. Options.AdminToken, when set, is required as a bearer token by
// /metrics and /debug/pprof/ on any address (Prometheus scrapers send one with
// `authorization: {credentials_file: ...}`); /healthz and /readyz never need it, so load
// balancers and orchestrators can probe. On an address that is not loopback the server
// warns at start, and without a token /debug/pprof/ (heap and goroutine dumps, CPU
// profiles, traces) answers 403 unless Options.AdminPprofPublic says to serve it
// anyway; /metrics stays open there, with the warning, as Prometheus deployments
// expect.

// adminTokenMinLen is the shortest AdminToken accepted: a bearer token is guessed
// online, so it must not be short.
const adminTokenMinLen = 16

// startAdmin opens the admin listener and serves it in the background.
func (s *Server) startAdmin() error {
	ln, err := net.Listen("tcp", s.opts.AdminAddr)
	if err != nil {
		return fmt.Errorf("server: cannot listen on admin address %s: %w", s.opts.AdminAddr, err)
	}
	public := !netutil.IsLoopback(s.opts.AdminAddr)
	s.warnAdminExposure(public, ln.Addr().String())
	s.adminLn = ln
	s.admin = &http.Server{Handler: s.adminMux(public), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.admin.Serve(ln); err != nil && err != http.ErrServerClosed {
			s.log.Error("admin listener failed", "err", err)
		}
	}()
	return nil
}

// warnAdminExposure logs what an admin listener on a non-loopback address exposes.
func (s *Server) warnAdminExposure(public bool, addr string) {
	if !public {
		return
	}
	switch {
	case s.opts.AdminToken != "":
		s.log.Warn("admin listener is not on loopback: /metrics and /debug/pprof/ require the admin bearer token; /healthz and /readyz are open", "admin", addr)
	case s.opts.AdminPprofPublic:
		s.log.Warn("admin listener is not on loopback and has no token: /metrics and /debug/pprof/ (heap dumps, profiles, traces) are open to anyone who can reach it", "admin", addr)
	default:
		s.log.Warn("admin listener is not on loopback and has no token: /metrics is open to anyone who can reach it, /debug/pprof/ is refused (set an admin token, or allow public pprof explicitly)", "admin", addr)
	}
}

// adminMux builds the admin routes; public is true when the listener is not loopback.
func (s *Server) adminMux(public bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.adminAuth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.WriteMetrics(w)
	})))
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
	pp := http.NewServeMux()
	pp.HandleFunc("/debug/pprof/", pprof.Index)
	pp.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	pp.HandleFunc("/debug/pprof/profile", pprof.Profile)
	pp.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	pp.HandleFunc("/debug/pprof/trace", pprof.Trace)
	pp.HandleFunc("/debug/scavenge", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST to return free memory to the OS", http.StatusMethodNotAllowed)
			return
		}
		// A burst of TLS handshakes or reconnects leaves garbage that fills the GC's
		// headroom (GOGC), and the runtime keeps those pages: this collects and
		// returns them now, as runtime/debug.FreeOSMemory does.
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(w, "heap in use %d bytes, released %d bytes\n", ms.HeapInuse, ms.HeapReleased)
	})
	var pprofH http.Handler = pp
	if public && s.opts.AdminToken == "" && !s.opts.AdminPprofPublic {
		pprofH = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "pprof is disabled on a non-loopback admin address without an admin token (tetherd: -admin-token-file, or -admin-pprof-public)", http.StatusForbidden)
		})
	}
	mux.Handle("/debug/pprof/", s.adminAuth(pprofH))
	mux.Handle("/debug/scavenge", s.adminAuth(pprofH))
	return mux
}

// adminAuth requires Options.AdminToken as a bearer token on h, if it is set.
func (s *Server) adminAuth(h http.Handler) http.Handler {
	if s.opts.AdminToken == "" {
		return h
	}
	want := sha256.Sum256([]byte(s.opts.AdminToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Comparing digests keeps the comparison constant-time whatever the lengths.
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tether admin"`)
			http.Error(w, "admin token required (Authorization: Bearer <token>)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
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
