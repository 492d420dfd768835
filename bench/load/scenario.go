package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/msg"
	"github.com/tether-gw/tether/client/service"
)

// Result is one server's figures in one scenario. Times per operation are in
// microseconds, CPU in seconds of user+system time of the server process.
type Result struct {
	Scenario string
	Impl     string
	// Transport is how the loaders reached the server.
	Transport kit.Transport `json:",omitempty"`
	N         int
	Loaders   int

	// Connection phase: attempts, failures by reason, the achieved rate of
	// authenticated connections (first dial to last AUTH_OK) and dial-to-AUTH_OK
	// latency; server CPU per connection over that phase.
	Connected, Failed int64
	Failures          map[string]int64 `json:",omitempty"`
	ConnectSeconds    float64
	ConnectRate       float64
	ConnectLat        msg.Summary
	// HandshakeLat is the initial connections' dial-to-usable-transport times (TCP
	// connect plus the TLS handshake or WebSocket upgrade).
	HandshakeLat  msg.Summary
	CPUPerConnect float64
	// ConnectServerCPU and ConnectLoaderCPU are the CPU seconds the server and the
	// loaders used in the connection phase: they share the machine's cores.
	ConnectServerCPU, ConnectLoaderCPU float64
	// The connect scenario's second, profiled pass: the first pass's connections
	// closed, as many again connect from fresh source addresses while the server's
	// CPU profile is taken. Its rate and CPU seconds show the run-to-run spread.
	ProfiledRate                         float64 `json:",omitempty"`
	ProfiledServerCPU, ProfiledLoaderCPU float64 `json:",omitempty"`
	ProfiledSeconds                      float64 `json:",omitempty"`
	// Server RSS when listening, after holding every connection, and the growth
	// per connection; MemSeries samples it while connections were opened.
	RSSBefore, RSSAfter int64
	RSSPerConn          float64
	MemSeries           []MemPoint `json:",omitempty"`

	// Measured window.
	Seconds     float64
	ServerCPU   float64
	LoaderCPU   float64
	Heartbeats  int64
	CPUPerBeat  float64
	Sent        int64
	Replies     int64
	Errors      int64
	Skipped     int64
	ErrorCodes  map[string]int64 `json:",omitempty"`
	Throughput  float64
	CPUPerReq   float64
	Lat         msg.Summary
	Delivered   int64
	DeliveredPS float64
	CPUPerMsg   float64
	// LastMember is, for each timed room broadcast, the milliseconds from the
	// service sending it to the last member having it.
	LastMember []float64 `json:",omitempty"`
	Members    int64     `json:",omitempty"`
	// RoomProbes is how many probe broadcasts were sent after the members joined
	// until one reached every member (1 on one node), and RoomSettleMS the
	// milliseconds from the last join's OK until that one had.
	RoomProbes   int     `json:",omitempty"`
	RoomSettleMS float64 `json:",omitempty"`

	// Churn: QoS1 messages the service had accepted, distinct ones the clients
	// got, those missing and those delivered twice after msg_id dedupe (both must
	// be 0), PUSHes dropped by msg_id dedupe (replays, expected), reconnects,
	// resumes the server could not honour, and drop-to-AUTH_OK times.
	Expected, Received, Missing, Duplicates, Replayed int64
	Reconnects, NotRecovered, Ambiguous               int64
	// Unexpected counts sequence numbers above what the service saw accepted.
	Unexpected   int64
	ReconnectLat msg.Summary
	// Lost counts connections that died without being dropped on purpose.
	Lost int64

	// Profile is a CPU profile of the server taken in the window, if requested;
	// ProfileShares groups its samples by what they were doing (the suite fills
	// it).
	Profile       string     `json:",omitempty"`
	ProfileShares []CPUShare `json:",omitempty"`

	hist *msg.Hist
}

// Hist returns the latency histogram behind Lat, or nil.
func (r *Result) Hist() *msg.Hist { return r.hist }

// Run runs cfg.Scenario against every server in cfg.Impls and returns their results
// in order.
func Run(ctx context.Context, cfg RunConfig) ([]*Result, error) {
	cfg, err := cfg.Defaults()
	if err != nil {
		return nil, err
	}
	r := newRunner(cfg)
	defer r.close()
	r.log.Printf("%s", cfg.Plan())
	var out []*Result
	for _, impl := range cfg.Impls {
		res, err := r.runOne(ctx, impl)
		if err != nil {
			return out, fmt.Errorf("%s on %s: %w", cfg.Scenario, impl, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func (r *runner) runOne(ctx context.Context, impl string) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	cfg := r.cfg
	control := cfg.Scenario == ScenarioPush || cfg.Scenario == ScenarioRoom || cfg.Scenario == ScenarioChurn
	s, err := r.open(ctx, impl, cfg.N, control)
	if err != nil {
		return nil, err
	}
	defer s.close()
	res := &Result{Scenario: cfg.Scenario, Impl: impl, Transport: cfg.Transport, N: cfg.N, Loaders: len(s.loaders)}
	if err := s.connectFigures(ctx, res); err != nil {
		return nil, err
	}
	switch cfg.Scenario {
	case ScenarioConnect:
		err = s.connect(ctx, res)
	case ScenarioIdle:
		err = s.idle(ctx, res)
	case ScenarioEcho:
		err = s.echo(ctx, res)
	case ScenarioPush:
		err = s.push(ctx, res)
	case ScenarioRoom:
		err = s.room(ctx, res)
	case ScenarioChurn:
		err = s.churn(ctx, res)
	}
	if err != nil {
		return nil, err
	}
	sum := s.sum()
	res.Lost = sum.Lost
	return res, nil
}

// connectFigures fills the connection-phase figures from the loaders' reports.
func (s *session) connectFigures(ctx context.Context, res *Result) error {
	st, err := s.all(ctx, msg.Command{Op: "report"}, "report", 30*time.Second)
	if err != nil {
		return err
	}
	t := msg.Merge(st)
	res.Connected, res.Failed, res.Failures = t.Authed, t.Failed, t.Failures
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	if t.LastAuth > t.FirstDial && t.FirstDial > 0 {
		res.ConnectSeconds = float64(t.LastAuth-t.FirstDial) / 1e9
		res.ConnectRate = float64(t.Authed) / res.ConnectSeconds
	}
	res.ConnectLat = t.ConnectLat.Summary()
	res.HandshakeLat = t.HandshakeLat.Summary()
	if t.Authed > 0 {
		res.CPUPerConnect = (s.cpuConnected - s.cpuStart) / float64(t.Authed) * 1e6
	}
	res.ConnectServerCPU, res.ConnectLoaderCPU = s.cpuConnected-s.cpuStart, s.loaderCPUConnected
	res.RSSBefore = s.rssBefore
	s.mu.Lock()
	res.MemSeries = slices.Clone(s.rssSeries)
	s.mu.Unlock()
	if t.Authed == 0 {
		return fmt.Errorf("no connection authenticated (%s)", msg.Reasons(t.Failures))
	}
	return nil
}

// window runs fn's load for the warmup, resets the loaders' counters, measures the
// server's and loaders' CPU over the window, and returns the loaders' report taken
// at its end.
func (s *session) window(ctx context.Context, res *Result, profile bool) (*msg.Stats, error) {
	cfg := s.r.cfg
	s.setPhase(fmt.Sprintf("warmup %v", cfg.Warmup))
	if err := sleep(ctx, cfg.Warmup); err != nil {
		return nil, err
	}
	if _, err := s.all(ctx, msg.Command{Op: "reset"}, "reset", 30*time.Second); err != nil {
		return nil, err
	}
	s.setPhase(fmt.Sprintf("measuring %v", cfg.Duration))
	s.markEvent("window-start")
	cpu0, lcpu0, t0 := s.cpu(), s.loaderCPU(), time.Now()
	if err := sleep(ctx, cfg.Duration); err != nil {
		return nil, err
	}
	st, err := s.all(ctx, msg.Command{Op: "report"}, "report", 30*time.Second)
	if err != nil {
		return nil, err
	}
	s.markEvent("window-end")
	res.Seconds = time.Since(t0).Seconds()
	res.ServerCPU = s.cpu() - cpu0
	res.LoaderCPU = s.loaderCPU() - lcpu0
	if profile {
		s.profile(res, min(5*time.Second, cfg.Duration))
	}
	return msg.Merge(st), nil
}

// profile takes a CPU profile of the server over d with the load still running,
// after the measured window so that profiling cannot disturb the figures.
func (s *session) profile(res *Result, d time.Duration) {
	cfg := s.r.cfg
	if cfg.ProfileDir == "" || s.srv.admin == "" {
		return
	}
	name := cfg.Scenario
	if cfg.Scenario == ScenarioEcho && cfg.Window > 0 {
		name = "echo-pipelined"
	}
	path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("cpu-%s-%s.pprof", name, s.srv.impl))
	s.setPhase(fmt.Sprintf("profiling %v", d))
	if err := kit.FetchProfile(context.Background(), s.srv.admin, path, max(int(d.Seconds()), 1)); err != nil {
		s.r.log.Printf("   profile: %v", err)
		return
	}
	res.Profile = path
}

// connect holds the connections for the window and measures RSS.
func (s *session) connect(ctx context.Context, res *Result) error {
	s.setPhase(fmt.Sprintf("holding %v", s.r.cfg.Duration))
	if err := sleep(ctx, s.r.cfg.Duration); err != nil {
		return err
	}
	rss, err := kit.ProcRSS(s.srv.pid)
	if err != nil {
		return err
	}
	res.RSSAfter = rss
	if res.Connected > 0 {
		res.RSSPerConn = float64(rss-res.RSSBefore) / float64(res.Connected)
	}
	if s.r.cfg.ProfileDir != "" && s.srv.admin != "" {
		return s.profiledConnect(ctx, res)
	}
	return nil
}

// profiledConnect closes the connections and opens as many again from fresh source
// addresses while a CPU profile of the server covers the connection phase. The
// profile runs in a pass of its own so that it cannot disturb the measured one.
func (s *session) profiledConnect(ctx context.Context, res *Result) error {
	cfg := s.r.cfg
	s.setPhase("closing, for a second connect pass under the profiler")
	s.stopLoaders()
	if err := sleep(ctx, 2*time.Second); err != nil { // the server closes its ends
		return err
	}
	path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("cpu-connect-%s.pprof", s.srv.impl))
	secs := max(1, int(math.Ceil(res.ConnectSeconds)))
	profiled := make(chan error, 1)
	cpu0, t0 := s.cpu(), time.Now()
	go func() { profiled <- kit.FetchProfile(ctx, s.srv.admin, path, secs) }()
	s.setPhase(fmt.Sprintf("connecting again, profiling %ds", secs))
	if err := s.startLoaders(ctx, s.srv.impl, res.N); err != nil {
		return err
	}
	st, err := s.await(ctx, 2*time.Minute, "connected")
	if err != nil {
		return err
	}
	res.ProfiledServerCPU, res.ProfiledLoaderCPU = s.cpu()-cpu0, s.loaderCPU()
	t := msg.Merge(st)
	if t.LastAuth > t.FirstDial && t.FirstDial > 0 {
		res.ProfiledSeconds = float64(t.LastAuth-t.FirstDial) / 1e9
		res.ProfiledRate = float64(t.Authed) / res.ProfiledSeconds
	} else {
		res.ProfiledSeconds = time.Since(t0).Seconds()
	}
	if err := <-profiled; err != nil {
		s.r.log.Printf("   profile: %v", err)
		return nil
	}
	res.Profile = path
	return nil
}

// idle measures the server's CPU per heartbeat answered.
func (s *session) idle(ctx context.Context, res *Result) error {
	t, err := s.window(ctx, res, true)
	if err != nil {
		return err
	}
	res.Heartbeats = t.Pongs
	if t.Pongs > 0 {
		res.CPUPerBeat = res.ServerCPU / float64(t.Pongs) * 1e6
	}
	rss, err := kit.ProcRSS(s.srv.pid)
	if err == nil {
		res.RSSAfter = rss
		res.RSSPerConn = float64(rss-res.RSSBefore) / float64(res.Connected)
	}
	return nil
}

// echo measures SEND round trips, rate-driven or pipelined.
func (s *session) echo(ctx context.Context, res *Result) error {
	cfg := s.r.cfg
	if cfg.Window > 0 {
		if err := s.each(func(i int) msg.Command {
			return msg.Command{Op: "pipeline", Conns: s.counts[i], Window: cfg.Window, Size: cfg.Size}
		}); err != nil {
			return err
		}
	} else {
		if err := s.each(func(i int) msg.Command {
			return msg.Command{Op: "echo", Rate: s.split(float64(res.Connected)*cfg.MsgRate, i), Size: cfg.Size}
		}); err != nil {
			return err
		}
	}
	t, err := s.window(ctx, res, true)
	if err != nil {
		return err
	}
	if _, err := s.all(ctx, msg.Command{Op: "stop"}, "stopped", 30*time.Second); err != nil {
		return err
	}
	res.Sent, res.Replies, res.Errors, res.Skipped = t.Sent, t.Replies, t.Errors, t.Skipped
	res.ErrorCodes = nilIfEmpty(t.ErrorCodes)
	res.Throughput = float64(t.Replies) / res.Seconds
	if t.Replies > 0 {
		res.CPUPerReq = res.ServerCPU / float64(t.Replies) * 1e6
	}
	res.hist = t.Lat
	res.Lat = t.Lat.Summary()
	return nil
}

// dialService connects the benchmark's service to the control port.
func (s *session) dialService(ctx context.Context) (*service.Service, error) {
	if s.srv.control == "" {
		return nil, errors.New("the server has no control port")
	}
	svc, err := service.Dial(ctx, s.srv.control, service.Options{Name: "tether-bench", RequestTimeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("cannot connect to the control port %s: %w", s.srv.control, err)
	}
	return svc, nil
}

// payload returns a push payload of size bytes: the send time and a sequence number.
func payload(size int, seq uint64) []byte {
	p := make([]byte, max(size, 16))
	binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint64(p[8:], seq)
	return p
}

// allUsers returns every loader's user ids in one list, taken from the loaders in
// turn (each loader's first user, then each one's second, ...), so that a batch of
// consecutive users spans every loader, and so every node of a cluster.
func (s *session) allUsers() []string {
	var users []string
	for j := 0; ; j++ {
		more := false
		for _, us := range s.users {
			if j < len(us) {
				users = append(users, us[j])
				more = true
			}
		}
		if !more {
			return users
		}
	}
}

// pushConcurrency is how many push requests the service keeps in flight: enough
// to keep the gateway's control session busy while one is on the wire.
const pushConcurrency = 4

// push measures pushes to users through the control port: latency in the payload,
// deliveries per second and server CPU per delivered message.
func (s *session) push(ctx context.Context, res *Result) error {
	cfg := s.r.cfg
	svc, err := s.dialService(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	users := s.allUsers()
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var next, pushErrs atomic.Int64
	var firstErr atomic.Pointer[error]
	for range pushConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send := func() {
				b := int(next.Add(1)-1) * cfg.Batch
				batch := make([]string, 0, cfg.Batch)
				for j := range cfg.Batch {
					batch = append(batch, users[(b+j)%len(users)])
				}
				if _, err := svc.PushUsers(ctx, batch, payload(cfg.Size, 0), service.PushOptions{QoS1: cfg.QoS1}); err != nil && pctx.Err() == nil {
					pushErrs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
			if cfg.MsgRate > 0 {
				kit.Pace(pctx, func() float64 { return cfg.MsgRate / float64(cfg.Batch) / pushConcurrency }, func(int64, time.Time) { send() })
				return
			}
			for pctx.Err() == nil {
				send()
			}
		}()
	}
	t, err := s.window(ctx, res, true)
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	if e := firstErr.Load(); e != nil {
		s.r.log.Printf("   %d push requests failed; first: %v", pushErrs.Load(), *e)
	}
	res.Delivered = t.Pushes
	res.DeliveredPS = float64(t.Pushes) / res.Seconds
	if t.Pushes > 0 {
		res.CPUPerMsg = res.ServerCPU / float64(t.Pushes) * 1e6
	}
	res.Errors = pushErrs.Load()
	res.hist = t.Lat
	res.Lat = t.Lat.Summary()
	return nil
}

// benchRoom is the room every connection joins in the room scenario.
const benchRoom = "bench"

// room joins every connection to one room, times broadcasts to it one by one, then
// sends them back to back for the server's CPU per delivered message.
func (s *session) room(ctx context.Context, res *Result) error {
	cfg := s.r.cfg
	svc, err := s.dialService(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	s.setPhase("subscribing")
	st, err := s.all(ctx, msg.Command{Op: "subscribe", Room: benchRoom}, "subscribed", 2*time.Minute)
	if err != nil {
		return err
	}
	members := msg.Merge(st).Subscribed
	res.Members = members
	if members == 0 {
		return errors.New("no connection could join the room")
	}
	s.setPhase("probing until a broadcast reaches every member")
	if res.RoomProbes, res.RoomSettleMS, err = s.settleRoom(ctx, svc, members); err != nil {
		return err
	}
	if _, err := s.all(ctx, msg.Command{Op: "reset"}, "reset", 30*time.Second); err != nil {
		return err
	}
	// One by one: the time until the last member has each broadcast.
	s.setPhase(fmt.Sprintf("%d timed broadcasts to %d members", cfg.Broadcasts, members))
	s.markEvent("broadcasts-start")
	sentAt := map[uint64]int64{}
	for id := uint64(1); id <= uint64(cfg.Broadcasts); id++ {
		p := payload(cfg.Size, id)
		sentAt[id] = int64(binary.BigEndian.Uint64(p))
		if _, err := svc.PushRoom(ctx, benchRoom, p); err != nil {
			return fmt.Errorf("cannot broadcast: %w", err)
		}
		if _, err := s.waitPushes(ctx, int64(id)*members, 30*time.Second); err != nil {
			return err
		}
	}
	st, err = s.all(ctx, msg.Command{Op: "report"}, "report", 30*time.Second)
	if err != nil {
		return err
	}
	t := msg.Merge(st)
	for id := uint64(1); id <= uint64(cfg.Broadcasts); id++ {
		b := t.Bcasts[id]
		if b.N < members {
			return fmt.Errorf("broadcast %d reached %d of %d members", id, b.N, members)
		}
		res.LastMember = append(res.LastMember, float64(b.Last-sentAt[id])/1e6)
	}
	res.hist = t.Lat
	res.Lat = t.Lat.Summary()

	// Back to back: CPU per delivered message and deliveries per second.
	if _, err := s.all(ctx, msg.Command{Op: "reset"}, "reset", 30*time.Second); err != nil {
		return err
	}
	s.setPhase(fmt.Sprintf("%d broadcasts back to back", cfg.Broadcasts))
	want := int64(cfg.Broadcasts) * members
	cpu0, lcpu0, t0 := s.cpu(), s.loaderCPU(), time.Now()
	for id := uint64(1); id <= uint64(cfg.Broadcasts); id++ {
		if _, err := svc.PushRoom(ctx, benchRoom, payload(cfg.Size, 1000+id)); err != nil {
			return fmt.Errorf("cannot broadcast: %w", err)
		}
	}
	got, err := s.waitPushes(ctx, want, time.Minute)
	if err != nil {
		return err
	}
	res.Seconds = time.Since(t0).Seconds()
	res.ServerCPU = s.cpu() - cpu0
	s.markEvent("broadcasts-end")
	res.LoaderCPU = s.loaderCPU() - lcpu0
	res.Delivered = got
	res.DeliveredPS = float64(got) / res.Seconds
	res.CPUPerMsg = res.ServerCPU / float64(got) * 1e6
	if cfg.ProfileDir != "" {
		// Keep broadcasting while a profile is taken, after the measurement.
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for id := uint64(2000); pctx.Err() == nil; id++ {
				if _, err := svc.PushRoom(pctx, benchRoom, payload(cfg.Size, id)); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		s.profile(res, 3*time.Second)
		stop()
		<-done
	}
	return nil
}

// settleRoom broadcasts probes to the room until one reaches every member, and
// returns how many it sent and the milliseconds from the last SUBSCRIBE OK to the
// probe that did. On one node the first does. In a cluster a node subscribes to
// the room's NATS subject on its next count flush (up to 20 ms after its members'
// OKs), and a broadcast sent from another node before that misses its members, so
// the timed broadcasts wait for the probe.
func (s *session) settleRoom(ctx context.Context, svc *service.Service, members int64) (int, float64, error) {
	const probeBase = 900_000
	t0 := time.Now()
	for probe := 1; ; probe++ {
		id := uint64(probeBase + probe)
		if _, err := svc.PushRoom(ctx, benchRoom, payload(s.r.cfg.Size, id)); err != nil {
			return probe, 0, fmt.Errorf("cannot broadcast a probe: %w", err)
		}
		deadline := time.Now().Add(time.Second)
		for {
			st, err := s.all(ctx, msg.Command{Op: "report"}, "report", 30*time.Second)
			if err != nil {
				return probe, 0, err
			}
			if msg.Merge(st).Bcasts[id].N >= members {
				return probe, float64(time.Since(t0).Microseconds()) / 1000, nil
			}
			if time.Now().After(deadline) {
				break
			}
			if err := sleep(ctx, 5*time.Millisecond); err != nil {
				return probe, 0, err
			}
		}
		if time.Since(t0) > 30*time.Second {
			return probe, 0, fmt.Errorf("no probe broadcast reached all %d members within 30s", members)
		}
	}
}

// waitPushes polls the loaders until they have received want pushes since the last
// reset, and returns how many they have.
func (s *session) waitPushes(ctx context.Context, want int64, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := s.all(ctx, msg.Command{Op: "report"}, "report", 30*time.Second)
		if err != nil {
			return 0, err
		}
		got := msg.Merge(st).Pushes
		if got >= want {
			return got, nil
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("only %d of %d pushes arrived within %v", got, want, timeout)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// churn drops and reconnects connections while the service pushes QoS1 messages to
// their users, then checks every accepted message arrived exactly once.
func (s *session) churn(ctx context.Context, res *Result) error {
	cfg := s.r.cfg
	svc, err := s.dialService(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	users := s.allUsers()
	// Each user belongs to one pusher goroutine, which numbers its messages 1, 2,
	// ... and moves to the next number only once the gateway has taken one into
	// the user's stream, so the expected set per user is exactly 1..expected[u].
	expected := make([]int64, len(users))
	var ambiguous atomic.Int64
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for g := range pushConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []int
			for i := g; i < len(users); i += pushConcurrency {
				mine = append(mine, i)
			}
			next := 0
			kit.Pace(pctx, func() float64 { return cfg.MsgRate / pushConcurrency }, func(int64, time.Time) {
				i := mine[next]
				next = (next + 1) % len(mine)
				k := uint64(expected[i] + 1)
				r, err := svc.PushUsers(ctx, []string{users[i]}, payload(cfg.Size, k), service.PushOptions{QoS1: true})
				switch {
				case err == nil && r.MsgIDs[users[i]] != 0:
					atomic.AddInt64(&expected[i], 1)
				case err != nil && !service.IsNotFound(err) && pctx.Err() == nil:
					// A timeout or a lost control connection leaves it unknown
					// whether the gateway took the message: count it, and use a
					// fresh number so a late delivery is not a duplicate.
					ambiguous.Add(1)
					atomic.AddInt64(&expected[i], 1)
				}
			})
		}()
	}
	s.setPhase(fmt.Sprintf("churning %.0f connections/s with %.0f QoS1 pushes/s for %v", cfg.ChurnRate, cfg.MsgRate, cfg.Duration))
	if err := s.each(func(i int) msg.Command { return msg.Command{Op: "churn", Rate: s.split(cfg.ChurnRate, i)} }); err != nil {
		stop()
		wg.Wait()
		return err
	}
	cpu0, lcpu0, t0 := s.cpu(), s.loaderCPU(), time.Now()
	err = sleep(ctx, cfg.Duration)
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	if _, err := s.all(ctx, msg.Command{Op: "stop"}, "stopped", 30*time.Second); err != nil {
		return err
	}
	res.Seconds = time.Since(t0).Seconds()
	res.ServerCPU = s.cpu() - cpu0
	res.LoaderCPU = s.loaderCPU() - lcpu0
	var want int64
	for _, e := range expected {
		want += e
	}
	// Every connection reconnects and gets what it missed; poll until the
	// deliveries add up or the deadline passes.
	s.setPhase("verifying deliveries")
	deadline := time.Now().Add(30 * time.Second)
	var t *msg.Stats
	for {
		st, err := s.all(ctx, msg.Command{Op: "report", Users: true}, "report", 30*time.Second)
		if err != nil {
			return err
		}
		t = msg.Merge(st)
		var got int64
		for _, u := range t.Users {
			got += int64(u.Distinct)
		}
		if got >= want || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	res.Expected, res.Ambiguous = want, ambiguous.Load()
	for i, u := range users {
		got := t.Users[u]
		res.Received += int64(got.Distinct)
		if miss := expected[i] - int64(got.Distinct); miss > 0 {
			res.Missing += miss
		}
		if extra := int64(got.Max) - expected[i]; extra > 0 {
			res.Unexpected += extra
		}
	}
	res.Duplicates, res.Replayed = t.AppDups, t.Dups
	res.Reconnects, res.NotRecovered = t.Reconnects, t.NotRecovered
	res.ReconnectLat = t.ReconnectLat.Summary()
	res.Delivered = t.Pushes
	res.hist = t.Lat
	res.Lat = t.Lat.Summary()
	return nil
}

func nilIfEmpty(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
