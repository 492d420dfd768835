package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/tether-gw/tether/internal/proxyhdr"
	"github.com/tether-gw/tether/internal/wsproto"
	"github.com/tether-gw/tether/protocol"
)

// DevicePolicy says how many connections one user may hold at once.
type DevicePolicy uint8

const (
	// DevicesMany lets a user connect from any number of devices (the default).
	DevicesMany DevicePolicy = iota
	// DevicesOnePerPlatform keeps one connection per platform: a newer login on the same
	// platform from another device closes the older one with CloseReplaced.
	DevicesOnePerPlatform
	// DevicesOnePerUser keeps one connection per user: a newer login from another device
	// closes the older one with CloseReplaced.
	DevicesOnePerUser
)

// String returns the policy's flag spelling: "many", "platform" or "user".
func (p DevicePolicy) String() string {
	switch p {
	case DevicesMany:
		return "many"
	case DevicesOnePerPlatform:
		return "platform"
	case DevicesOnePerUser:
		return "user"
	}
	return fmt.Sprintf("DevicePolicy(%d)", uint8(p))
}

// ParseDevicePolicy parses "many", "platform" or "user".
func ParseDevicePolicy(s string) (DevicePolicy, error) {
	switch s {
	case "many", "":
		return DevicesMany, nil
	case "platform":
		return DevicesOnePerPlatform, nil
	case "user":
		return DevicesOnePerUser, nil
	}
	return 0, fmt.Errorf("server: unknown device policy %q (want many, platform or user)", s)
}

// Options configures a Server. The zero value of every field keeps the default given in
// its doc; defaults and validation live in Options.withDefaults.
type Options struct {
	// Addr is the raw TCP client listener's address (tether frames straight on TCP).
	// Default ":7000"; "-" disables it.
	Addr string
	// TLSAddr, WSAddr and WSSAddr are the listeners of the other transports: tether
	// frames over TLS, in binary WebSocket messages, and in WebSocket over TLS. ""
	// (the default) disables each. Every listener feeds the same hub: a push to a user
	// reaches all their connections whatever their transport (transport.go).
	TLSAddr, WSAddr, WSSAddr string
	// TLS is the configuration of the TLS and WSS listeners, required when either is
	// set: its certificates (set GetCertificate to reload them without a restart),
	// NextProtos (ALPN), ClientAuth and ClientCAs (device certificates, which the
	// Authenticator sees in AuthRequest.TLS). The server does not modify it; TLS 1.2 is
	// the minimum whatever MinVersion says (tlslink.go).
	TLS *tls.Config
	// WebSocket configures the WS and WSS listeners.
	WebSocket WebSocketOptions
	// Proxy enables the PROXY protocol (v1 and v2) on chosen listeners.
	Proxy ProxyOptions
	// Broker, when set, makes this server one node of a cluster (broker.go; the NATS
	// broker is package server/cluster). Default nil: a single node.
	Broker Broker

	// HandshakeTimeout bounds a transport's own handshake, from accept: a TLS handshake,
	// a WebSocket upgrade request, a PROXY header (which has at most 3s of it). The
	// AuthTimeout for HELLO starts when it is done. Default 5s.
	HandshakeTimeout time.Duration
	// MaxTLSHandshakes caps the TLS handshakes running at once (each on a goroutine of
	// its own for its duration); TLSHandshakeQueue bounds the connections waiting for
	// one. A connection that finds the queue full is closed at once (metric
	// tether_tls_handshakes_total{result="refused"}), so a flood of ClientHellos costs
	// bounded CPU and memory and established connections keep theirs. Defaults 64 and
	// 1024.
	MaxTLSHandshakes, TLSHandshakeQueue int
	// TLSHandshakeCPUs caps the handshakes in their CPU-heavy part (the key exchange
	// and signature between the ClientHello and the server's first flight) at once, so
	// that much CPU at most goes to handshakes and the rest stays with established
	// connections. Default half of GOMAXPROCS, at least 1.
	TLSHandshakeCPUs int
	// TLSIdleAfter is how often the cipher state of TLS connections that carried
	// nothing since the last look is dropped (it is rebuilt from the keys when the next
	// record comes or goes): an idle TLS connection then costs its keys, not ~1.5 KB of
	// AES-GCM state. Default 5s; negative keeps every cipher.
	TLSIdleAfter time.Duration
	// AdminAddr is the admin HTTP listener (/metrics, /healthz, /readyz, /debug/pprof/).
	// Default "127.0.0.1:7002"; "-" disables it.
	AdminAddr string

	// Authenticator checks HELLO tokens. Required: New fails with ErrNoAuthenticator
	// without one. InsecureAuthenticator is for development only.
	Authenticator Authenticator
	// Handler receives connection events and uplink messages. Default: NopHandler,
	// which answers every SEND with an empty SEND_REPLY.
	Handler Handler
	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger

	// AuthTimeout is how long a new connection has to complete HELLO/AUTH_OK.
	// Default 10s.
	AuthTimeout time.Duration
	// Heartbeat is the interval announced in AUTH_OK; a connection silent for 1.5x this
	// is closed with CloseHeartbeatTimeout, never earlier and at most one Tick later.
	// Default 25s.
	Heartbeat time.Duration
	// Tick is the timing wheel's resolution: deadlines fire at most one tick late.
	// Default 50ms.
	Tick time.Duration
	// TokenGrace is how long past its token's expiry (Identity.ExpiresAt at HELLO, or
	// that of the token its last accepted REFRESH presented) a connection may stay
	// before the server closes it with CloseSessionExpired: room for clock skew and for
	// a REFRESH still being checked. Default 5s; negative means none.
	TokenGrace time.Duration

	// MaxFrame is the largest frame (length field value) accepted after auth and
	// announced in AUTH_OK. Default protocol.DefaultMaxFrame (64 KiB); at most
	// protocol.MaxFrameLimit.
	MaxFrame int
	// PreAuthBudget is how many bytes a connection may send before it is authenticated;
	// each pre-auth frame is also capped at protocol.PreAuthMaxFrame. Default 8 KiB.
	PreAuthBudget int

	// MaxConns caps concurrent connections; beyond it new ones get CloseServerFull.
	// Default 1,000,000.
	MaxConns int
	// MaxConnsPerIP caps concurrent connections from one IP address; beyond it new ones
	// get CloseRateLimited. Default 1,000; negative means unlimited.
	MaxConnsPerIP int
	// ConnectRate caps new connections per second (token bucket with a burst of one
	// second's worth); beyond it new ones get CloseRateLimited. Default 10,000;
	// negative means unlimited.
	ConnectRate float64
	// MaxRoomsPerConn caps the rooms one connection may be in. Default 64.
	MaxRoomsPerConn int

	// MaxOutboundBytes bounds the bytes queued for one connection whose socket is not
	// draining; past it the connection is closed with CloseSlowConsumer. Default 256 KiB.
	MaxOutboundBytes int
	// MaxTotalOutbound bounds the bytes queued for all backlogged connections together,
	// so a burst to many clients that stopped reading cannot grow the process without
	// limit: a connection whose backlog would pass it is closed with CloseSlowConsumer.
	// Default 256 MiB.
	MaxTotalOutbound int64
	// WriteTimeout is how long a backlogged connection may take to drain before it is
	// closed with CloseSlowConsumer. Default 10s.
	WriteTimeout time.Duration

	// Workers is the worker pool's size (authentication and Handler calls). Default
	// 4096.
	Workers int
	// MaxInflight bounds one connection's SEND and SUBSCRIBE requests queued or running
	// in the pool; past it a request is answered ERROR ErrorBusy. Default 32.
	MaxInflight int

	// DevicePolicy is the multi-device policy. Default DevicesMany.
	DevicePolicy DevicePolicy

	// ResumeBuffer bounds the QoS1 messages kept per user for clients that reconnect.
	// Default 256.
	ResumeBuffer int
	// ResumeWindow is how long QoS1 messages are kept, and how long a user's stream
	// outlives their last connection, so a client reconnecting within it gets what it
	// missed. Default 5m.
	ResumeWindow time.Duration

	// QoS1Window bounds the QoS1 messages sent to one connection and not yet
	// acknowledged; the next wait in the user's resume buffer and go out as ACKs arrive.
	// Default 32.
	QoS1Window int
	// AckTimeout is how long a connection may leave QoS1 messages unacknowledged with no
	// ACK making progress before the server sends them again (with FlagDup) on the same
	// connection. Default 20s; negative disables redelivery on a live connection (a
	// reconnect of the device still gets them).
	AckTimeout time.Duration

	// DrainSpread is the window over which Shutdown spreads the clients' GOAWAY
	// retry-after, so they do not all reconnect at once. Default 5s.
	DrainSpread time.Duration

	// ReadBufferSize is netpoll's link-buffer node size, the floor of each connection's
	// input buffer; smaller saves memory per idle connection, larger saves copies for
	// big frames. Process-wide. Default 256 bytes.
	ReadBufferSize int

	// Per-source limits and the flapping ban (flapping.go).

	// SourceConnectRate caps new connections per second from one source (an IPv4
	// address, or an IPv6 /64) as a token bucket with a burst of one second's worth.
	// It is checked before ConnectRate, so one source cannot spend the budget every
	// client shares; beyond it new ones get CloseRateLimited. Default
	// DefaultSourceConnectRate (1,000); negative means unlimited.
	SourceConnectRate float64
	// FlapThreshold bans a source with more than this many strikes within FlapWindow
	// (a strike is a failed authentication, or a connect refused by
	// SourceConnectRate): for FlapBan its new connections get CloseRateLimited at
	// accept. Default DefaultFlapThreshold (100); negative disables the ban.
	FlapThreshold int
	// FlapWindow is the window strikes are counted in. Default DefaultFlapWindow (1m).
	FlapWindow time.Duration
	// FlapBan is how long a flapping source stays banned. Default DefaultFlapBan (5m).
	FlapBan time.Duration
	// SourceTableSize is how many sources the per-source limits remember (about 64
	// bytes each, allocated by New); when full, the least recently seen source that is
	// not banned is forgotten. Default DefaultSourceTableSize (16,384).
	SourceTableSize int

	// AdminToken, if set, must be presented as "Authorization: Bearer <token>" to
	// /metrics and /debug/pprof/ (/healthz and /readyz stay open for probes); at least
	// 16 bytes. Default "" (none).
	AdminToken string
	// AdminPprofPublic serves /debug/pprof/ without AdminToken on an admin address that
	// is not loopback. Default false: there, pprof answers 403 unless AdminToken is set.
	AdminPprofPublic bool

	// proxyTrusted and wsUpgrade are Proxy.Trusted parsed and the WebSocket upgrade
	// rules, set by withDefaults.
	proxyTrusted proxyhdr.Trusted
	wsUpgrade    wsproto.UpgradeConfig

	// wall, set only by tests, replaces the wall clock (Unix nanoseconds) against which
	// token expiries are turned into wheel deadlines (refresh.go), so that made-up wheel
	// time and made-up expiries agree.
	wall func() int64
	// clock, set only by tests, replaces the timing wheel's clock (nanoseconds) and its
	// driver: the wheel then moves only when the test advances it (clock_test.go), so deadlines
	// are tested with made-up time.
	clock func() int64
}

// Defaults applied by withDefaults: each is the default of the Options field it is
// named for (tetherd's flag help quotes them).
const (
	DefaultAddr             = ":7000"
	DefaultAdminAddr        = "127.0.0.1:7002"
	DefaultAuthTimeout      = 10 * time.Second
	DefaultHeartbeat        = 25 * time.Second
	DefaultTick             = 50 * time.Millisecond
	DefaultTokenGrace       = 5 * time.Second
	DefaultPreAuthBudget    = 8 << 10
	DefaultMaxConns         = 1_000_000
	DefaultMaxConnsPerIP    = 1000
	DefaultConnectRate      = 10_000
	DefaultMaxRoomsPerConn  = 64
	DefaultMaxOutboundBytes = 256 << 10
	DefaultMaxTotalOutbound = 256 << 20
	DefaultWriteTimeout     = 10 * time.Second
	DefaultWorkers          = 4096
	DefaultMaxInflight      = 32
	DefaultDrainSpread      = 5 * time.Second
	DefaultResumeBuffer     = 256
	DefaultResumeWindow     = 5 * time.Minute
	DefaultQoS1Window       = 32
	DefaultAckTimeout       = 20 * time.Second
	DefaultReadBufferSize   = 256

	// Per-source limits and the flapping ban (flapping.go).
	DefaultSourceConnectRate = 1000
	DefaultFlapThreshold     = 100
	DefaultFlapWindow        = time.Minute
	DefaultFlapBan           = 5 * time.Minute
	DefaultSourceTableSize   = 16384
)

// withDefaults returns a copy of o with defaults filled in, or an error naming the first
// invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.AdminAddr == "" {
		o.AdminAddr = DefaultAdminAddr
	}
	if o.Authenticator == nil {
		return o, ErrNoAuthenticator
	}
	if o.Handler == nil {
		o.Handler = NopHandler{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&o.AuthTimeout, DefaultAuthTimeout)
	setDur(&o.Heartbeat, DefaultHeartbeat)
	setDur(&o.Tick, DefaultTick)
	setDur(&o.TokenGrace, DefaultTokenGrace)
	if o.TokenGrace < 0 {
		o.TokenGrace = 0
	}
	setDur(&o.WriteTimeout, DefaultWriteTimeout)
	setDur(&o.DrainSpread, DefaultDrainSpread)
	setDur(&o.ResumeWindow, DefaultResumeWindow)
	setDur(&o.AckTimeout, DefaultAckTimeout)
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&o.MaxFrame, protocol.DefaultMaxFrame)
	setInt(&o.PreAuthBudget, DefaultPreAuthBudget)
	setInt(&o.MaxConns, DefaultMaxConns)
	setInt(&o.MaxConnsPerIP, DefaultMaxConnsPerIP)
	setInt(&o.MaxRoomsPerConn, DefaultMaxRoomsPerConn)
	setInt(&o.MaxOutboundBytes, DefaultMaxOutboundBytes)
	setInt(&o.Workers, DefaultWorkers)
	setInt(&o.MaxInflight, DefaultMaxInflight)
	setInt(&o.ReadBufferSize, DefaultReadBufferSize)
	setInt(&o.ResumeBuffer, DefaultResumeBuffer)
	setInt(&o.QoS1Window, DefaultQoS1Window)
	if o.MaxTotalOutbound == 0 {
		o.MaxTotalOutbound = DefaultMaxTotalOutbound
	}
	if o.ConnectRate == 0 {
		o.ConnectRate = DefaultConnectRate
	}
	if o.SourceConnectRate == 0 {
		o.SourceConnectRate = DefaultSourceConnectRate
	}
	setInt(&o.FlapThreshold, DefaultFlapThreshold)
	setDur(&o.FlapWindow, DefaultFlapWindow)
	setDur(&o.FlapBan, DefaultFlapBan)
	setInt(&o.SourceTableSize, DefaultSourceTableSize)
	if err := o.transportDefaults(); err != nil {
		return o, err
	}

	switch {
	case o.FlapWindow < 0 || o.FlapBan < 0 || o.SourceTableSize < 0:
		return o, fmt.Errorf("server: flap window, flap ban and source table size must not be negative")
	case o.AdminToken != "" && len(o.AdminToken) < adminTokenMinLen:
		return o, fmt.Errorf("server: admin token must be at least %d bytes", adminTokenMinLen)
	case o.AuthTimeout < 0 || o.Heartbeat < 0 || o.Tick < 0 || o.WriteTimeout < 0 || o.DrainSpread < 0 || o.ResumeWindow < 0:
		return o, fmt.Errorf("server: durations must not be negative")
	case o.Heartbeat < o.Tick*2:
		return o, fmt.Errorf("server: heartbeat %v must be at least two ticks (%v)", o.Heartbeat, o.Tick)
	case o.Heartbeat > time.Duration(1<<32-1)*time.Millisecond:
		return o, fmt.Errorf("server: heartbeat %v does not fit AUTH_OK's uint32 milliseconds", o.Heartbeat)
	case o.MaxFrame < protocol.HeaderSize || o.MaxFrame > protocol.MaxFrameLimit:
		return o, fmt.Errorf("server: max frame %d outside [%d, %d]", o.MaxFrame, protocol.HeaderSize, protocol.MaxFrameLimit)
	case o.MaxTotalOutbound < 0 || o.PreAuthBudget < 0 || o.MaxConns < 0 || o.MaxRoomsPerConn < 0 || o.MaxOutboundBytes < 0 ||
		o.Workers < 0 || o.MaxInflight < 0 || o.ReadBufferSize < 0 || o.ResumeBuffer < 0 || o.QoS1Window < 0:
		return o, fmt.Errorf("server: sizes and counts must not be negative")
	case o.DevicePolicy > DevicesOnePerUser:
		return o, fmt.Errorf("server: unknown device policy %d", o.DevicePolicy)
	}
	return o, nil
}
