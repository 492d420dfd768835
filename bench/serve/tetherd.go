package serve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/msg"
)

// The tetherd target runs the real gateway binary as a grandchild and measures that
// process: the serve child only relays. Go memory and connection counts come from
// tetherd's admin /metrics, and garbage collection and heap profiles from its
// /debug/pprof/heap?gc=1, then POST /debug/scavenge returns its free pages to the OS,
// as the in-process targets do after their GC. One difference remains: its heap profile
// is sampled at Go's default rate (512 KiB) rather than Config.MemProfileRate.

type tetherdTarget struct {
	*kit.Tetherd
	client http.Client
}

// startTetherd starts cfg.Tetherd (see kit.StartTetherd: -dev, limits lifted, a
// control port if cfg.Control) and waits until it is healthy.
func startTetherd(cfg Config) (target, error) {
	if cfg.Tetherd == "" {
		return nil, errors.New("impl tetherd needs the path of a tetherd binary (-tetherd)")
	}
	t, err := kit.StartTetherd(context.Background(), kit.TetherdConfig{Bin: cfg.Tetherd, Heartbeat: cfg.Heartbeat, Control: cfg.Control, Out: os.Stderr,
		Transport: cfg.Transport, Cert: cfg.cert()})
	if err != nil {
		return nil, err
	}
	return &tetherdTarget{Tetherd: t, client: http.Client{Timeout: time.Minute}}, nil
}

func (t *tetherdTarget) listening() msg.Event {
	return msg.Event{Addr: t.Addr, Admin: t.Admin, Control: t.Control}
}
func (t *tetherdTarget) pid() int { return t.PID() }

// stats reads the Go runtime and tether gauges from /metrics.
func (t *tetherdTarget) stats() (msg.MemStats, error) {
	resp, err := t.client.Get("http://" + t.Admin + "/metrics")
	if err != nil {
		return msg.MemStats{}, fmt.Errorf("cannot read tetherd metrics: %w", err)
	}
	defer resp.Body.Close()
	want := map[string]*int64{}
	var st msg.MemStats
	for name, dst := range map[string]*int64{
		"go_memstats_heap_alloc_bytes":     &st.HeapAlloc,
		"go_memstats_heap_inuse_bytes":     &st.HeapInuse,
		"go_memstats_heap_sys_bytes":       &st.HeapSys,
		"go_memstats_heap_released_bytes":  &st.HeapReleased,
		"go_memstats_stack_inuse_bytes":    &st.StackInuse,
		"go_memstats_sys_bytes":            &st.Sys,
		"go_gc_duration_seconds_count":     &st.NumGC,
		"go_goroutines":                    &st.Goroutines,
		"tether_connections":               &st.Conns,
		"tether_connections_authenticated": &st.Authed,
	} {
		want[name] = dst
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		dst := want[name]
		if !ok || dst == nil {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return msg.MemStats{}, fmt.Errorf("cannot parse tetherd metric %s %q: %w", name, val, err)
		}
		*dst = int64(f)
		delete(want, name)
	}
	if err := sc.Err(); err != nil {
		return msg.MemStats{}, fmt.Errorf("cannot read tetherd metrics: %w", err)
	}
	for _, name := range []string{"go_memstats_heap_alloc_bytes", "tether_connections_authenticated"} {
		if want[name] != nil {
			return msg.MemStats{}, fmt.Errorf("tetherd metrics lack %s", name)
		}
	}
	return st, nil
}

func (t *tetherdTarget) gc() error { return kit.Settle(context.Background(), t.Admin) }

func (t *tetherdTarget) writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot create heap profile: %w", err)
	}
	if err := t.heapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// heapProfile fetches a heap profile taken after a GC, which is also how a GC is
// forced from outside.
func (t *tetherdTarget) heapProfile(w io.Writer) error {
	return kit.FetchHeap(context.Background(), t.Admin, w)
}

// close asks tetherd to drain and exit, and kills it if it has not within 10s.
func (t *tetherdTarget) close() { t.Stop() }
