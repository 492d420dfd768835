package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// TestAdminEndpoints: /metrics carries the tether series and passes `promtool check
// metrics`; /healthz answers; /readyz turns 503 while draining.
func TestAdminEndpoints(t *testing.T) {
	s := startServer(t, func(o *Options) { o.AdminAddr = "127.0.0.1:0" })
	c := dialRaw(t, s)
	c.hello("m", "a", "ios")
	c.write(protocol.AppendEmpty(nil, protocol.OpPing, 1))
	c.expect(protocol.OpPong)
	waitFor(t, "authenticated", func() bool { return s.Stats().Authenticated == 1 })

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + s.AdminAddr() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics status %d", code)
	}
	for _, want := range []string{
		"tether_connections_authenticated 1",
		`tether_frames_in_total{op="PING"} 1`,
		`tether_frames_out_total{op="PONG"} 1`,
		"tether_handler_duration_seconds_bucket{le=\"+Inf\"}",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	testkit.Promtool(t, body)
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz %d", code)
	}
	s.draining.Store(true)
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("/readyz while draining %d, want 503", code)
	}
	s.draining.Store(false)
	if code, _ := get("/debug/pprof/"); code != 200 {
		t.Fatalf("/debug/pprof/ %d", code)
	}
}

// TestAdminExposure: the admin routes on a non-loopback address. Without a token
// /debug/pprof/ is refused and /metrics stays open (with a warning); with a token both
// need it as a bearer token and the probes do not; AdminPprofPublic serves pprof
// without one. The routes are driven in-process, so nothing listens off loopback.
func TestAdminExposure(t *testing.T) {
	const token = "0123456789abcdef-admin"
	type req struct {
		path, auth string
		want       int
	}
	for _, tc := range []struct {
		name   string
		public bool
		mutate func(o *Options)
		warn   string // in the start-up warning; "" for none
		reqs   []req
	}{
		{"loopback, no token: all open", false, nil, "", []req{
			{"/debug/pprof/", "", 200}, {"/metrics", "", 200}, {"/healthz", "", 200},
		}},
		{"public, no token: pprof refused", true, nil, "/debug/pprof/ is refused", []req{
			{"/debug/pprof/", "", 403}, {"/debug/pprof/heap", "", 403}, {"/metrics", "", 200}, {"/readyz", "", 200},
		}},
		{"public, pprof allowed explicitly", true, func(o *Options) { o.AdminPprofPublic = true }, "are open to anyone", []req{
			{"/debug/pprof/", "", 200}, {"/metrics", "", 200},
		}},
		{"public, token", true, func(o *Options) { o.AdminToken = token }, "require the admin bearer token", []req{
			{"/debug/pprof/", "", 401},
			{"/debug/pprof/", "Bearer wrong-token-of-some-length", 401},
			{"/debug/pprof/", "Bearer " + token[:len(token)-1], 401}, // a prefix is not the token
			{"/debug/pprof/", token, 401},                            // no "Bearer " scheme
			{"/debug/pprof/", "Bearer " + token, 200},
			{"/metrics", "", 401},
			{"/metrics", "Bearer " + token, 200},
			{"/healthz", "", 200},
			{"/readyz", "", 200},
		}},
		{"loopback, token: still required", false, func(o *Options) { o.AdminToken = token }, "", []req{
			{"/metrics", "", 401}, {"/metrics", "Bearer " + token, 200}, {"/healthz", "", 200},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs testkit.LockedBuffer
			o := Options{AdminAddr: "-", Authenticator: testAuth, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			if tc.mutate != nil {
				tc.mutate(&o)
			}
			s, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.warnAdminExposure(tc.public, "192.0.2.1:7002")
			if tc.warn == "" && logs.String() != "" || !strings.Contains(logs.String(), tc.warn) {
				t.Errorf("start-up log %q, want %q", logs.String(), tc.warn)
			}
			mux := s.adminMux(tc.public)
			for _, r := range tc.reqs {
				hr := httptest.NewRequest("GET", r.path, nil)
				if r.auth != "" {
					hr.Header.Set("Authorization", r.auth)
				}
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, hr)
				if rec.Code != r.want {
					t.Errorf("GET %s (Authorization %q) = %d, want %d: %s", r.path, r.auth, rec.Code, r.want, rec.Body.String())
				}
			}
		})
	}
	if _, err := (Options{Authenticator: testAuth, AdminToken: "short"}).withDefaults(); err == nil {
		t.Error("a 5-byte admin token was accepted")
	}
}
