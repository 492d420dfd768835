package msg

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestHistJSON(t *testing.T) {
	h := NewHist()
	for _, v := range []int64{10, 20, 30, 1000, 0, 1 << 40} {
		h.Record(v)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var g Hist
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if g.Summary() != h.Summary() {
		t.Errorf("round trip changed the summary: %+v, want %+v", g.Summary(), h.Summary())
	}
	if s := h.Summary(); s.Min != 1 || s.Max < histMax || s.Count != 6 {
		t.Errorf("out-of-range values not clamped: %+v", s)
	}
}

// TestEventRoundTrip sends events through a Writer and parses them back, as an
// orchestrator reads a child's stdout.
func TestEventRoundTrip(t *testing.T) {
	var b bytes.Buffer
	ew := NewWriter(&b)
	ew.Send(Event{Kind: "listening", Addr: "127.0.0.1:4000", PID: 7, GOMAXPROCS: 2})
	ew.Send(Event{Kind: "stats", Mem: &MemStats{HeapAlloc: 10, Authed: 3}})
	ew.Errorf("heap: %s", `cannot "write"`)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3: %q", len(lines), b.String())
	}
	f := func(line string, check func(Event) bool) {
		t.Helper()
		ev, ok := ParseEvent([]byte(line))
		if !ok || !check(ev) {
			t.Errorf("ParseEvent(%q) = %+v, %v", line, ev, ok)
		}
	}
	f(lines[0], func(ev Event) bool {
		return ev.Kind == "listening" && ev.Addr == "127.0.0.1:4000" && ev.PID == 7 && ev.GOMAXPROCS == 2
	})
	f(lines[1], func(ev Event) bool { return ev.Mem != nil && ev.Mem.HeapAlloc == 10 && ev.Mem.Authed == 3 })
	f(lines[2], func(ev Event) bool { return ev.Kind == "error" && ev.Err == `heap: cannot "write"` })
	// A log line, JSON without a kind, and broken JSON are not events.
	for _, line := range []string{"some log line", `{"err":"x"}`, `{"kind":`, ""} {
		if ev, ok := ParseEvent([]byte(line)); ok {
			t.Errorf("ParseEvent(%q) = %+v, want not an event", line, ev)
		}
	}
}

// TestReadCommands decodes commands and answers a malformed line with an error
// event instead of stopping.
func TestReadCommands(t *testing.T) {
	var out bytes.Buffer
	in := strings.NewReader("{\"op\":\"heap\",\"path\":\"/tmp/h\"}\nnot json\n{\"op\":\"quit\"}\n")
	var got []Command
	for c := range ReadCommands(in, NewWriter(&out)) {
		got = append(got, c)
	}
	if len(got) != 2 || got[0].Op != "heap" || got[0].Path != "/tmp/h" || got[1].Op != "quit" {
		t.Errorf("commands = %+v", got)
	}
	if ev, ok := ParseEvent(bytes.TrimSpace(out.Bytes())); !ok || ev.Kind != "error" || !strings.Contains(ev.Err, "not json") {
		t.Errorf("malformed line answered with %q", out.String())
	}
}
