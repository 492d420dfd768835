package server

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/internal/testkit"
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
