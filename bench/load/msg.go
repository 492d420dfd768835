package load

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// Children and the orchestrator talk in JSON lines: commands on the child's stdin,
// events on its stdout. Anything else a child prints goes to stderr and is relayed to
// the orchestrator's log.

// Command is one instruction to a load child.
type Command struct {
	// Op is the command:
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
	Op     string  `json:"op"`
	Rate   float64 `json:"rate,omitempty"`
	Size   int     `json:"size,omitempty"`
	Conns  int     `json:"conns,omitempty"`
	Window int     `json:"window,omitempty"`
	Room   string  `json:"room,omitempty"`
	// Users asks the report for per-user delivery records (churn verification).
	Users bool `json:"users,omitempty"`
}

// Event is one line from a child.
type Event struct {
	// Kind is what happened: "listening" (server), "started", "progress",
	// "connected" (every connection attempt finished), "report", "reset",
	// "stopped", "subscribed", "error".
	Kind string `json:"kind"`
	// Err explains an "error" event.
	Err string `json:"err,omitempty"`

	// Server fields ("listening").
	Addr    string `json:"addr,omitempty"`
	Admin   string `json:"admin,omitempty"`
	Control string `json:"control,omitempty"`
	PID     int    `json:"pid,omitempty"`

	// Stats are the load child's counters.
	Stats *Stats `json:"stats,omitempty"`
}

// Stats are a load child's counters since its last reset (connection counts are
// never reset).
type Stats struct {
	ID int `json:"id"`
	// Dialed, Authed and Failed count connection attempts; Open is the connections
	// currently authenticated; Lost those that died after authenticating (not on
	// purpose).
	Dialed, Authed, Failed, Open, Lost int64
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

// eventWriter writes events as JSON lines; it is safe for concurrent use.
type eventWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (ew *eventWriter) send(ev Event) {
	b, err := json.Marshal(ev)
	if err != nil {
		panic(fmt.Sprintf("BUG: load: cannot encode event: %v", err))
	}
	b = append(b, '\n')
	ew.mu.Lock()
	defer ew.mu.Unlock()
	_, _ = ew.w.Write(b)
}
