package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/internal/loglimit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/control"
)

// delivery is one queued POST: its id and encoded body, fixed for all its attempts.
type delivery struct {
	id   string
	body []byte
}

// Sender posts events to one URL (see the package doc). Its methods are safe for
// concurrent use.
type Sender struct {
	opts   Options
	routes map[string]struct{}
	queue  chan *delivery
	m      *senderMetrics
	logs   *loglimit.Limiter // drops and failures, a few lines a minute

	// idPrefix makes delivery ids unique across restarts; seq across deliveries.
	idPrefix string
	seq      atomic.Uint64

	closed   atomic.Bool
	draining chan struct{} // closed by Close: workers exit once the queue is empty
	ctx      context.Context
	abort    context.CancelFunc // ends the POSTs and waits in flight
	wg       sync.WaitGroup
	once     sync.Once
}

var _ control.Observer = (*Sender)(nil)

// New validates opts and starts the Sender's workers. Close stops them.
func New(opts Options) (*Sender, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	s := &Sender{
		opts:     o,
		routes:   make(map[string]struct{}, len(o.Routes)),
		queue:    make(chan *delivery, o.QueueSize),
		idPrefix: "wh_" + hex.EncodeToString(rnd[:]) + "_",
		draining: make(chan struct{}),
		logs:     loglimit.New(o.Logger, loglimit.Options{Burst: 3, Interval: time.Minute}),
	}
	for _, r := range o.Routes {
		s.routes[r] = struct{}{}
	}
	s.m = newSenderMetrics(s)
	s.ctx, s.abort = context.WithCancel(context.Background())
	s.wg.Add(o.Workers)
	for range o.Workers {
		go s.work()
	}
	return s, nil
}

// OnConnect offers an online event for c if Options.Events is set
// (control.Observer). It never blocks.
func (s *Sender) OnConnect(c *server.Conn) {
	if s.opts.Events {
		s.Offer(&Event{Type: TypeOnline, Conn: c.ID(), User: c.UserID(), Device: c.DeviceID(), Platform: c.Platform()})
	}
}

// OnDisconnect offers an offline event for c, with code and its name, if
// Options.Events is set (control.Observer). It never blocks.
func (s *Sender) OnDisconnect(c *server.Conn, code protocol.CloseCode) {
	if s.opts.Events {
		s.Offer(&Event{Type: TypeOffline, Conn: c.ID(), User: c.UserID(), Device: c.DeviceID(), Platform: c.Platform(),
			Code: uint16(code), Reason: code.String()})
	}
}

// OnUplink offers an uplink if its route is one of Options.Routes, and reports whether
// it is (control.Observer). It never blocks.
func (s *Sender) OnUplink(m *server.Message) bool {
	if _, ok := s.routes[m.Route]; !ok {
		return false
	}
	c := m.Conn
	s.Offer(&Event{Type: TypeUplink, Conn: c.ID(), User: c.UserID(), Device: c.DeviceID(), Platform: c.Platform(),
		Route: m.Route, Payload: m.Payload})
	return true
}

// Offer queues ev for delivery and reports whether it was queued. It sets ev.ID, and
// ev.Time and ev.Node when they are zero, and encodes ev at once (ev is not retained).
// It never blocks: a full queue drops its oldest delivery to make room (counted), and
// after Close the offer itself is dropped (counted; false).
func (s *Sender) Offer(ev *Event) bool {
	if s.closed.Load() {
		s.dropped("closed")
		return false
	}
	ev.ID = s.idPrefix + strconv.FormatUint(s.seq.Add(1), 10)
	if ev.Time.IsZero() {
		ev.Time = s.opts.Now().UTC()
	}
	if ev.Node == 0 {
		ev.Node = server.NodeOf(ev.Conn)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		s.opts.Logger.Error("webhook: cannot encode an event", "err", err)
		return false
	}
	d := &delivery{id: ev.ID, body: body}
	for {
		select {
		case s.queue <- d:
			return true
		default:
		}
		// Full: make room by dropping the oldest (package doc). Another Offer may take
		// the room first, or a worker may empty the queue meanwhile; so loop.
		select {
		case <-s.queue:
			s.dropped("queue_full")
		default:
		}
	}
}

// dropped counts a dropped delivery and logs it (rate-limited).
func (s *Sender) dropped(why string) {
	s.m.dropped.Inc()
	s.logs.Log(slog.LevelWarn, why, "webhook: delivery dropped", "why", why, "url", s.opts.URL)
}

// QueueLen returns the number of deliveries waiting for a worker.
func (s *Sender) QueueLen() int { return len(s.queue) }

// Close stops accepting offers and waits for the workers to deliver what is queued
// (with their retries) until ctx is done; then it cancels the POSTs and waits in
// flight, counts what is left as dropped, and returns ctx's error. It returns nil once
// everything queued was delivered or failed. Only the first call does anything.
func (s *Sender) Close(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.draining)
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
			s.abort()
			<-done
		}
		s.abort()
		for {
			select {
			case <-s.queue:
				s.dropped("closed")
				continue
			default:
			}
			break
		}
		s.logs.Close()
	})
	return err
}

// work is one worker: it delivers queued deliveries until Close has drained the queue;
// once Close has given up, it counts what it takes as dropped.
func (s *Sender) work() {
	defer s.wg.Done()
	for {
		var d *delivery
		select {
		case d = <-s.queue:
		case <-s.draining:
			select {
			case d = <-s.queue:
			default:
				return // drained
			}
		}
		if s.ctx.Err() != nil {
			s.dropped("closed")
			continue
		}
		s.deliver(d)
	}
}
