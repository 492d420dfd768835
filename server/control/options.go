package control

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// Option defaults.
const (
	DefaultAddr             = "127.0.0.1:7001"
	DefaultMaxFrame         = 1 << 20
	DefaultAuthTimeout      = 5 * time.Second
	DefaultUplinkTimeout    = 10 * time.Second
	DefaultMaxQueueBytes    = 4 << 20
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxServices      = 1024
	DefaultMaxSubscriptions = 1024
)

// Options configures a Port. The zero value of every field keeps the default given in
// its doc; defaults and validation live in withDefaults.
type Options struct {
	// Addr is the control port's listen address. Default "127.0.0.1:7001". Services are
	// trusted: keep it on loopback or a private network.
	Addr string
	// Secret is the shared secret every control connection must present in AUTH.
	// Required unless Insecure is set.
	Secret string
	// Insecure accepts AUTH with any secret. It is for development only: New refuses
	// it together with a Secret, and Start refuses it on a non-loopback address.
	Insecure bool
	// Logger receives the control port's logs. Default slog.Default().
	Logger *slog.Logger

	// MaxFrame is the largest frame (length field) accepted from an authenticated
	// service; a longer one closes the connection with FRAME_TOO_LARGE. Frames before
	// AUTH are capped at protocol.PreAuthMaxFrame. Default 1 MiB; at most
	// protocol.MaxFrameLimit.
	MaxFrame int
	// AuthTimeout is how long a new control connection has to send AUTH before it is
	// closed with AUTH_TIMEOUT. Default 5s.
	AuthTimeout time.Duration
	// UplinkTimeout is how long a client's SEND waits for the service's REPLY before
	// the client gets ERROR TIMEOUT. Default 10s.
	UplinkTimeout time.Duration
	// MaxQueueBytes bounds the bytes queued for one service connection. Uplinks to a
	// service whose queue is full go to another subscriber (or get ERROR BUSY), events
	// are dropped, and the service's own requests wait until its queue drains.
	// Default 4 MiB.
	MaxQueueBytes int
	// WriteTimeout is how long one write to a service may block, and how long its
	// queue may stay full, before the connection is closed as a slow consumer.
	// Default 10s.
	WriteTimeout time.Duration
	// MaxServices caps concurrent control connections; more are closed with
	// SERVER_FULL. Default 1024.
	MaxServices int
	// MaxSubscriptions caps the routes plus prefixes one control connection may
	// subscribe to. Default 1024.
	MaxSubscriptions int
}

func (o Options) withDefaults() (Options, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	switch {
	case o.Secret == "" && !o.Insecure:
		return o, errors.New("control: Options.Secret is required (or Insecure, for development only)")
	case o.Secret != "" && o.Insecure:
		return o, errors.New("control: Options.Secret and Options.Insecure exclude each other")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxFrame == 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	if o.MaxFrame < protocol.PreAuthMaxFrame || o.MaxFrame > protocol.MaxFrameLimit {
		return o, fmt.Errorf("control: Options.MaxFrame %d outside [%d, %d]", o.MaxFrame, protocol.PreAuthMaxFrame, protocol.MaxFrameLimit)
	}
	if o.AuthTimeout == 0 {
		o.AuthTimeout = DefaultAuthTimeout
	}
	if o.UplinkTimeout == 0 {
		o.UplinkTimeout = DefaultUplinkTimeout
	}
	if o.MaxQueueBytes == 0 {
		o.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxServices == 0 {
		o.MaxServices = DefaultMaxServices
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.AuthTimeout < 0 || o.UplinkTimeout < 0 || o.WriteTimeout < 0 || o.MaxQueueBytes < 0 ||
		o.MaxServices < 0 || o.MaxSubscriptions < 0 {
		return o, errors.New("control: Options durations and limits must not be negative")
	}
	return o, nil
}
