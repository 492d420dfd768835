package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-gw/tether/server"
)

// The broker's QoS1 part: it keeps the users' QoS1 streams in JetStream (UserStreams,
// with the server's resume bounds) and feeds the server every stored message from the
// live republish subject, on one subscription (tether.live.*) whose delivery goroutine
// calls Server.ApplyQoS in store order. A slow-consumer drop or a reconnect makes the
// server read what it missed (Server.ResyncQoS).

// startStreams creates the streams on JetStream and subscribes to the live feed. A NATS
// server without JetStream is refused here, with the reason.
func (b *Broker) startStreams() error {
	buffer, window := b.srv.QoSBounds()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	us, err := NewUserStreams(ctx, b.nc, StreamOptions{Prefix: b.opts.Prefix, Buffer: buffer, Window: window})
	if err != nil {
		return fmt.Errorf("%w (QoS1 streams need JetStream: run nats-server with -js)", err)
	}
	b.streams = us
	sub, err := b.nc.Subscribe(us.LiveSubjects(), b.onLive)
	if err != nil {
		return fmt.Errorf("cluster: subscribe %s: %w", us.LiveSubjects(), err)
	}
	// A burst for many users must not be dropped as a slow consumer: 1M messages or
	// 256 MiB wait (the server applies each in microseconds).
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		return err
	}
	b.live = sub
	return nil
}

// onLive hands a stored message to the server.
func (b *Broker) onLive(msg *nats.Msg) {
	user, epoch, m, err := b.streams.Observe(msg)
	if err != nil {
		b.log.Error("cluster: malformed live QoS1 message", "subject", msg.Subject, "err", err)
		return
	}
	b.srv.ApplyQoS(user, epoch, m)
}

// onAsyncError is the NATS connection's error handler: a live message dropped as a slow
// consumer makes the server read what it missed.
func (b *Broker) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if sub != nil && sub == b.live && errors.Is(err, nats.ErrSlowConsumer) {
		b.log.Warn("cluster: live QoS1 messages dropped (slow consumer); reading them from the stream")
		go b.srv.ResyncQoS()
		return
	}
	b.log.Warn("cluster: NATS error", "err", err)
}

// QoSStore implements server.QoSBroker: the UserStreams.
func (b *Broker) QoSStore() server.QoSStore { return b.streams }

// UserStreams is the cluster's server.QoSStore.
var _ server.QoSStore = (*UserStreams)(nil)
