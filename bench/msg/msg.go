// Package msg is the protocol between the bench's orchestrators (bench/load,
// bench/memtest) and the child processes they start (bench/serve, bench/loadgen):
// JSON lines, a Command on the child's stdin, an Event on its stdout. Anything else
// a child prints is a log line, which the orchestrator relays to its own log.
//
// It also holds what the events carry: a load child's counters (Stats) with their
// latency histograms (Hist), and a server's Go memory (MemStats).
package msg

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Command is one instruction to a child.
type Command struct {
	// Op is the command. A load child (bench/loadgen) answers:
	//
	//	report     send a "report" event with the counters since the last reset
	//	reset      zero the counters and histograms, then send "reset"
	//	echo       send SENDs at Rate per second over all connections (0 stops)
	//	pipeline   keep Window SENDs in flight on each of the first Conns connections
	//	stop       stop echo and pipeline, wait up to a second for their replies,
	//	           then send "stopped"
	//	subscribe  SUBSCRIBE every connection to Room, then send "subscribed"
	//	churn      drop and reconnect Rate connections per second (0 stops)
	//	quit       close every connection and exit
	//
	// A server child (bench/serve) answers:
	//
	//	stats  send a "stats" event with the server's Go memory and connection counts
	//	gc     collect garbage (returning free memory to the OS where it can), then
	//	       send "stats"
	//	heap   collect garbage and write a heap profile to Path, then send "heap"
	//	quit   stop the server and exit
	Op     string  `json:"op"`
	Rate   float64 `json:"rate,omitempty"`
	Size   int     `json:"size,omitempty"`
	Conns  int     `json:"conns,omitempty"`
	Window int     `json:"window,omitempty"`
	Room   string  `json:"room,omitempty"`
	// Users asks the report for per-user delivery records (churn verification).
	Users bool `json:"users,omitempty"`
	// Path is the file "heap" writes.
	Path string `json:"path,omitempty"`
}

// Event is one line from a child.
type Event struct {
	// Kind is what happened. A load child sends "started", "progress" (twice a
	// second), "authed" (every connection has authenticated once), "ready" (every
	// connection has had its loadgen.Config.Pings PONGs, when that is set),
	// "connected" (every initial connection attempt finished, failed or not),
	// "report", "reset", "stopped", "subscribed". A server child sends
	// "listening", "stats", "heap". Either sends "error" when a command failed.
	Kind string `json:"kind"`
	// Err explains an "error" event.
	Err string `json:"err,omitempty"`

	// Server fields ("listening"): the client port, the admin endpoint and the
	// control port (empty when not served), the process whose memory and CPU are
	// measured, the implementation and its GOMAXPROCS.
	Addr       string `json:"addr,omitempty"`
	Admin      string `json:"admin,omitempty"`
	Control    string `json:"control,omitempty"`
	PID        int    `json:"pid,omitempty"`
	Impl       string `json:"impl,omitempty"`
	GOMAXPROCS int    `json:"gomaxprocs,omitempty"`
	// Mem is a server's memory ("stats").
	Mem *MemStats `json:"mem,omitempty"`
	// Path is the heap profile written ("heap").
	Path string `json:"path,omitempty"`

	// Stats are a load child's counters.
	Stats *Stats `json:"stats,omitempty"`
}

// MemStats is a server's Go memory and connection counts. The byte counts are the
// runtime.MemStats fields of the same names.
type MemStats struct {
	HeapAlloc, HeapInuse, HeapSys, HeapReleased, StackInuse, Sys int64
	// NumGC counts completed GC cycles; Goroutines is runtime.NumGoroutine.
	NumGC, Goroutines int64
	// Conns and Authed are the server's open and authenticated connections.
	Conns, Authed int64
}

// Stats are a load child's counters since its last reset (connection counts are
// never reset).
type Stats struct {
	ID int `json:"id"`
	// Dialed, Authed and Failed count connection attempts; Open is the connections
	// currently authenticated; Lost those that died after authenticating (not on
	// purpose); Ready those that have had their loadgen.Config.Pings PONGs.
	Dialed, Authed, Failed, Open, Lost, Ready int64
	// Failures counts failed attempts and lost connections by reason.
	Failures map[string]int64 `json:",omitempty"`
	// FirstDial and LastAuth are Unix nanoseconds of the first dial and the last
	// AUTH_OK of the initial connections.
	FirstDial, LastAuth int64

	// Pongs counts heartbeat answers.
	Pongs int64
	// Sent, Replies and Errors count SEND requests, their replies, and ERROR answers;
	// Skipped counts SENDs not sent because a connection had too many unanswered.
	Sent, Replies, Errors, Skipped int64
	// ErrorCodes counts ERROR answers by code.
	ErrorCodes map[string]int64 `json:",omitempty"`
	// Pushes counts PUSH frames; Dups those with a msg_id already seen on the
	// connection's user stream (dropped, as clients must); AppDups pushes that
	// passed that check but carried a payload sequence already delivered, which is a
	// real duplicate.
	Pushes, Dups, AppDups int64
	// Reconnects counts churn reconnections; NotRecovered those whose resume the
	// server could not honour.
	Reconnects, NotRecovered int64
	// Subscribed counts OK answers to SUBSCRIBE.
	Subscribed int64

	// Lat holds request and push latencies, ConnectLat dial-to-AUTH_OK times and
	// ReconnectLat drop-to-AUTH_OK times, in microseconds.
	Lat, ConnectLat, ReconnectLat *Hist `json:",omitempty"`
	// HandshakeLat holds the initial connections' times from dial to a usable
	// transport (TCP connect, plus the TLS handshake or WebSocket upgrade), in
	// microseconds.
	HandshakeLat *Hist `json:",omitempty"`
	// Bcasts maps a broadcast's id to its deliveries in this child.
	Bcasts map[uint64]BcastStat `json:",omitempty"`
	// Users maps a user to its QoS1 deliveries, when the report asked for them.
	Users map[string]UserStat `json:",omitempty"`
	// CPU is the child's own CPU seconds so far.
	CPU float64
}

// BcastStat is what one child saw of one room broadcast.
type BcastStat struct {
	// N is how many members got it; Last is when the last of them did (Unix ns).
	N    int64
	Last int64
}

// UserStat is what one user's connection got of its sequenced pushes.
type UserStat struct {
	// Distinct is how many different payload sequence numbers arrived; Max the
	// highest.
	Distinct, Max int
}

// Writer writes events as JSON lines. It is safe for concurrent use: a line is never
// interleaved with another.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Send writes ev as one line.
func (ew *Writer) Send(ev Event) {
	b, err := json.Marshal(ev)
	if err != nil {
		panic(fmt.Sprintf("BUG: msg: cannot encode event: %v", err))
	}
	b = append(b, '\n')
	ew.mu.Lock()
	defer ew.mu.Unlock()
	_, _ = ew.w.Write(b)
}

// Errorf sends an "error" event.
func (ew *Writer) Errorf(format string, args ...any) {
	ew.Send(Event{Kind: "error", Err: fmt.Sprintf(format, args...)})
}

// ParseEvent decodes an event line; it reports false for anything else (a line to
// log).
func ParseEvent(b []byte) (Event, bool) {
	var ev Event
	if len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &ev) == nil && ev.Kind != "" {
		return ev, true
	}
	return Event{}, false
}

// Add adds o's counters, failure and error counts, histograms, broadcast and user
// records to s; FirstDial becomes the earliest, LastAuth the latest. A nil o adds
// nothing. Histograms are merged only where o has them.
func (s *Stats) Add(o *Stats) {
	if o == nil {
		return
	}
	s.Dialed += o.Dialed
	s.Authed += o.Authed
	s.Failed += o.Failed
	s.Open += o.Open
	s.Lost += o.Lost
	s.Ready += o.Ready
	s.Pongs += o.Pongs
	s.Sent += o.Sent
	s.Replies += o.Replies
	s.Errors += o.Errors
	s.Skipped += o.Skipped
	s.Pushes += o.Pushes
	s.Dups += o.Dups
	s.AppDups += o.AppDups
	s.Reconnects += o.Reconnects
	s.NotRecovered += o.NotRecovered
	s.Subscribed += o.Subscribed
	s.CPU += o.CPU
	if o.FirstDial > 0 && (s.FirstDial == 0 || o.FirstDial < s.FirstDial) {
		s.FirstDial = o.FirstDial
	}
	s.LastAuth = max(s.LastAuth, o.LastAuth)
	s.Failures = addCounts(s.Failures, o.Failures)
	s.ErrorCodes = addCounts(s.ErrorCodes, o.ErrorCodes)
	s.Lat = mergeHist(s.Lat, o.Lat)
	s.ConnectLat = mergeHist(s.ConnectLat, o.ConnectLat)
	s.ReconnectLat = mergeHist(s.ReconnectLat, o.ReconnectLat)
	s.HandshakeLat = mergeHist(s.HandshakeLat, o.HandshakeLat)
	for id, b := range o.Bcasts {
		if s.Bcasts == nil {
			s.Bcasts = map[uint64]BcastStat{}
		}
		x := s.Bcasts[id]
		x.N += b.N
		x.Last = max(x.Last, b.Last)
		s.Bcasts[id] = x
	}
	for u, st := range o.Users {
		if s.Users == nil {
			s.Users = map[string]UserStat{}
		}
		s.Users[u] = st
	}
}

// Merge adds up the stats of several load children. Unlike a Stats built by Add
// alone, the result has every histogram and map, empty where nobody had any.
func Merge(all []*Stats) *Stats {
	t := &Stats{Lat: NewHist(), ConnectLat: NewHist(), ReconnectLat: NewHist(), HandshakeLat: NewHist(), Failures: map[string]int64{}, ErrorCodes: map[string]int64{},
		Bcasts: map[uint64]BcastStat{}, Users: map[string]UserStat{}}
	for _, s := range all {
		t.Add(s)
	}
	return t
}

func addCounts(dst, src map[string]int64) map[string]int64 {
	for k, v := range src {
		if dst == nil {
			dst = map[string]int64{}
		}
		dst[k] += v
	}
	return dst
}

func mergeHist(dst, src *Hist) *Hist {
	if src == nil {
		return dst
	}
	if dst == nil {
		dst = NewHist()
	}
	dst.Merge(src)
	return dst
}

// Reasons renders counts by reason (Stats.Failures, Stats.ErrorCodes) as
// "reason: n, ..." sorted by reason, or "none".
func Reasons(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
