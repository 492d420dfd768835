package faults

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	s := summarize([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond, 9 * time.Millisecond})
	if s.N != 4 || s.Min != time.Millisecond || s.P50 != 2*time.Millisecond || s.Max != 9*time.Millisecond {
		t.Fatalf("summarize = %+v", s)
	}
	if z := summarize(nil); z.N != 0 {
		t.Fatalf("summarize(nil) = %+v", z)
	}
}

func TestMetricSumsMatchingSamples(t *testing.T) {
	body := `# HELP tether_control_auth_failures_total x
tether_control_auth_failures_total{reason="bad_secret"} 7
tether_control_auth_failures_total{reason="timeout"} 2
tether_control_auth_failures_total_extra 100
tether_connections 3
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	d := &daemon{Admin: strings.TrimPrefix(srv.URL, "http://")}
	for _, c := range []struct {
		name, match string
		want        float64
	}{
		{"tether_control_auth_failures_total", "", 9},
		{"tether_control_auth_failures_total", `reason="bad_secret"`, 7},
		{"tether_connections", "", 3},
		{"tether_missing", "", 0},
	} {
		got, err := d.metric(c.name, c.match)
		if err != nil || got != c.want {
			t.Errorf("metric(%q, %q) = %v, %v; want %v", c.name, c.match, got, err, c.want)
		}
	}
}

func TestLogSizeExcludes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte("a remote=127.0.0.2:1\nbb remote=127.0.0.3:2\nccc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, lines, err := logSize(p, "")
	if err != nil || n != 47 || lines != 3 {
		t.Fatalf("logSize all = %d, %d, %v", n, lines, err)
	}
	n, lines, err = logSize(p, "remote=127.0.0.3:")
	if err != nil || n != 25 || lines != 2 {
		t.Fatalf("logSize excluding = %d, %d, %v", n, lines, err)
	}
}

func TestTally(t *testing.T) {
	var tl tally
	tl.add("b")
	tl.add("a")
	tl.add("b")
	if got := tl.String(); got != "3: a=1 b=2" {
		t.Fatalf("tally = %q", got)
	}
	if floodTotal(&tl) != 3 || tl.get("b") != 2 {
		t.Fatalf("floodTotal %d get %d", floodTotal(&tl), tl.get("b"))
	}
}
