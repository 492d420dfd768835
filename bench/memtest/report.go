package memtest

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tether-gw/tether/bench/kit"
)

// WriteText writes the report as a header and a table, for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	e := r.Env
	fmt.Fprintf(&b, "tether-memtest: server RSS growth per authenticated, heartbeating connection\n")
	fmt.Fprintf(&b, "machine:     %s\n", e.Machine())
	fmt.Fprintf(&b, "servers:     GOMAXPROCS %s\n", r.serverProcs())
	c := r.Config
	ping := "heartbeat"
	if c.PingInterval > 0 {
		ping = c.PingInterval.String()
	}
	fmt.Fprintf(&b, "parameters:  N=%d loaders=%d (from %s up) heartbeat=%v pings=%d every %s, rate=%.0f/s, transport %s\n",
		c.N, c.Loaders, c.Src, c.Heartbeat, c.Pings, ping, c.Rate, c.Transport.Or())
	fmt.Fprintf(&b, "started:     %s\n\n", e.Started.Format(time.RFC3339))

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\tconns\tconnect\tready\tRSS before\tRSS after\tRSS/conn\tRSS/conn raw\tanon/conn\theap/conn\tstack/conn\tgoroutines\t")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%d\t%v\t%v\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n",
			res.Impl, res.After.Authed, res.ConnectTime.Round(10*time.Millisecond), res.ReadyTime.Round(10*time.Millisecond),
			kit.FormatBytes(float64(res.Before.RSS)), kit.FormatBytes(float64(res.After.RSS)),
			kit.FormatBytes(res.RSSPerConn), kit.FormatBytes(res.RSSPerConnRaw), kit.FormatBytes(res.AnonPerConn),
			kit.FormatBytes(res.HeapPerConn), kit.FormatBytes(res.StackPerConn), res.After.Goroutines)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\nRSS/conn = (VmRSS at N - VmRSS listening) / N, both after a forced GC and scavenge; raw = at N as found.\n")
	if slices.ContainsFunc(r.Results, func(res Result) bool { return res.Impl == ImplTetherd }) {
		b.WriteString("tetherd is a separate binary: its GC is forced through /debug/pprof/heap?gc=1 and its scavenge through POST /debug/scavenge.\n")
	}
	b.WriteString("heap/conn = live Go heap (HeapAlloc after GC) growth; stack/conn = goroutine stack (StackInuse) growth.\n")
	if ratio := r.Ratio(ImplBaseline, ImplTether); ratio > 0 {
		fmt.Fprintf(&b, "baseline/tether RSS per connection: %.2fx\n", ratio)
	}
	if ratio := r.Ratio(ImplBaseline, ImplTetherd); ratio > 0 {
		fmt.Fprintf(&b, "baseline/tetherd RSS per connection: %.2fx\n", ratio)
	}
	if ratio := r.Ratio(ImplTether, ImplNetpoll); ratio > 0 {
		fmt.Fprintf(&b, "tether/netpoll RSS per connection: %.2fx\n", ratio)
	}
	for _, res := range r.Results {
		if res.HeapTopFile != "" {
			fmt.Fprintf(&b, "heap profile of %s at N: %s\n", res.Impl, res.HeapTopFile)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// serverProcs lists the servers' GOMAXPROCS.
func (r *Report) serverProcs() string {
	var parts []string
	for _, res := range r.Results {
		parts = append(parts, fmt.Sprintf("%s %d", res.Impl, res.ServerGOMAXPROCS))
	}
	return strings.Join(parts, ", ")
}
