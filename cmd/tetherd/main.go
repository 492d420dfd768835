// Command tetherd runs the tether gateway: the client port for apps and games, and the
// admin port for operators (/metrics, /healthz, /readyz, /debug/pprof/).
//
// Settings come from flags, TETHER_* environment variables and an optional JSON config
// file (-config), in that order of precedence. SIGTERM or SIGINT drains the node: no new
// connections, GOAWAY to every client with a jittered retry-after, then close after
// -drain-timeout. A second signal closes at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-gw/tether/internal/netutil"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/jwtauth"
)

// settings holds every flag's value; defaults are set in newFlagSet. A gateway setting
// left at its zero value means "the library's default" (server.Options), so tetherd
// does not restate the defaults; the flag's help quotes the constant.
type settings struct {
	config string
	dev    bool

	addr, admin      string
	adminTokenFile   string
	adminPprofPublic bool

	auth, jwtAlg, jwtSecretFile, jwtPublicKey, jwtIssuer, jwtAudience string
	jwtRequireExp                                                     bool
	jwksURL, jwtUserClaim, jwtAlgs                                    string
	jwksRefresh, jwksUnknownKID                                       time.Duration
	jwksAllowUnreachable                                              bool
	mintToken                                                         string
	mintTTL                                                           time.Duration

	heartbeat, authTimeout, tick, writeTimeout time.Duration
	drainTimeout, drainSpread, resumeWindow    time.Duration
	ackTimeout                                 time.Duration
	tokenGrace                                 time.Duration

	maxFrame, preAuthBudget, maxConns, maxConnsPerIP, maxRooms  int
	maxOutbound, workers, maxInflight, readBuffer, resumeBuffer int
	qos1Window                                                  int
	maxTotalOutbound                                            int64
	connectRate                                                 float64
	devicePolicy                                                string

	sourceConnectRate       float64
	flapThreshold, srcTable int
	flapWindow, flapBan     time.Duration

	logFormat, logLevel string

	controlSettings   // the control port's flags, in control.go
	transportSettings // the TLS, WebSocket and PROXY flags, in transport.go
	clusterSettings   // the NATS cluster flags, in cluster.go
	httpAPISettings   // the HTTP API's flags, in httpapi.go
	webhookSettings   // the webhook flags, in webhook.go
}

// devAddr is the client port in -dev mode when -addr is not given: loopback only, as
// Mosquitto 2 does, because -dev accepts any token.
const devAddr = "127.0.0.1:7000"

// def is the help suffix naming a library default: " Default server.<name> (<value>)."
func def(name string, v any) string { return fmt.Sprintf(" Default %s (%v).", name, v) }

func newFlagSet(s *settings, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tetherd", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&s.config, "config", "", "Path of a JSON config file whose keys are these flag names, e.g. {\"addr\": \":7000\", \"heartbeat\": \"25s\"}. Flags and TETHER_* environment variables override it.")
	fs.BoolVar(&s.dev, "dev", false, "Development mode: accept any token as its user id (insecure authenticator, logged loudly), listen on "+devAddr+" unless -addr is given, lift the per-IP and per-source limits and the flapping ban, and log at debug level. Never use in production.")
	fs.StringVar(&s.addr, "addr", "", "Address of the client port that apps and games connect to."+def("server.DefaultAddr", fmt.Sprintf("%q", server.DefaultAddr))+" With -dev the default is "+devAddr+" (loopback only).")
	fs.StringVar(&s.admin, "admin", "", "Address of the admin HTTP listener serving /metrics, /healthz, /readyz and /debug/pprof/; \"-\" disables it."+def("server.DefaultAdminAddr", fmt.Sprintf("%q", server.DefaultAdminAddr))+" Off loopback it warns, and serves /debug/pprof/ only with an admin token or -admin-pprof-public.")
	fs.StringVar(&s.adminTokenFile, "admin-token-file", "", "File holding the admin bearer token (at least 16 bytes; surrounding whitespace is trimmed) that /metrics and /debug/pprof/ then require as \"Authorization: Bearer <token>\"; /healthz and /readyz stay open. TETHER_ADMIN_TOKEN may hold the token itself instead.")
	fs.BoolVar(&s.adminPprofPublic, "admin-pprof-public", false, "Serve /debug/pprof/ (heap and goroutine dumps, profiles, traces) without an admin token on a non-loopback -admin address.")
	fs.StringVar(&s.auth, "auth", "jwt", "Authenticator: \"jwt\" (verify tokens with -jwt-*) or \"insecure\" (any token is its own user id; development only).")
	fs.StringVar(&s.jwtAlg, "jwt-alg", "HS256", "JWT algorithm clients' tokens must use: HS256 (shared secret) or RS256 (public key). Other algorithms, including \"none\", are rejected.")
	fs.StringVar(&s.jwtSecretFile, "jwt-secret-file", "", "File holding the HS256 secret (at least 32 bytes; surrounding whitespace is trimmed). TETHER_JWT_SECRET may hold the secret itself instead.")
	fs.StringVar(&s.jwtPublicKey, "jwt-public-key", "", "PEM file holding the RS256 public key.")
	fs.StringVar(&s.jwtIssuer, "jwt-issuer", "", "If set, tokens must carry this \"iss\" claim.")
	fs.StringVar(&s.jwtAudience, "jwt-audience", "", "If set, tokens' \"aud\" claim must include this value.")
	fs.BoolVar(&s.jwtRequireExp, "jwt-require-exp", true, "Reject tokens without an \"exp\" claim.")
	fs.StringVar(&s.jwksURL, "jwks-url", "", "Verify OAuth 2.0 / OIDC access tokens with the keys of the provider's JWK Set at this https URL (its jwks_uri) instead of -jwt-secret-file or -jwt-public-key; -jwt-alg is then ignored (see -jwt-algs). Set -jwt-issuer and -jwt-audience with it. See docs/AUTH.md.")
	fs.StringVar(&s.jwtAlgs, "jwt-algs", "", "With -jwks-url: the comma-separated algorithms accepted, among RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 and EdDSA; HS* and \"none\" are refused. Default RS256,ES256,EdDSA.")
	fs.StringVar(&s.jwtUserClaim, "jwt-user-claim", "", "The string claim that is the user id, e.g. email or https://example.com/uid; a dotted name not found as is is followed into nested objects (user.id). Default sub.")
	fs.DurationVar(&s.jwksRefresh, "jwks-refresh", 0, "With -jwks-url: how often the JWK Set is refetched in the background."+def("jwtauth.DefaultJWKSRefresh", jwtauth.DefaultJWKSRefresh))
	fs.DurationVar(&s.jwksUnknownKID, "jwks-unknown-kid-interval", 0, "With -jwks-url: the shortest time between two refetches caused by tokens naming an unknown key id; tokens with unknown kids in between are refused at once."+def("jwtauth.DefaultJWKSUnknownKIDInterval", jwtauth.DefaultJWKSUnknownKIDInterval))
	fs.BoolVar(&s.jwksAllowUnreachable, "jwks-allow-unreachable", false, "With -jwks-url: start even if the JWK Set cannot be fetched, refusing tokens until a fetch succeeds. By default an unreachable provider at startup is a startup error.")
	fs.StringVar(&s.mintToken, "mint-token", "", "Print an HS256 token for this user id, signed with the -jwt-secret-file secret, and exit. For development and tests.")
	fs.DurationVar(&s.mintTTL, "mint-ttl", 24*time.Hour, "Lifetime of a token printed by -mint-token.")
	fs.DurationVar(&s.heartbeat, "heartbeat", 0, "Heartbeat interval announced to clients; a client silent for 1.5 times this is disconnected."+def("server.DefaultHeartbeat", server.DefaultHeartbeat))
	fs.DurationVar(&s.authTimeout, "auth-timeout", 0, "Time a new connection has to authenticate before it is closed."+def("server.DefaultAuthTimeout", server.DefaultAuthTimeout))
	fs.DurationVar(&s.tick, "tick", 0, "Resolution of the timing wheel that runs every deadline; deadlines fire at most one tick late."+def("server.DefaultTick", server.DefaultTick))
	fs.DurationVar(&s.writeTimeout, "write-timeout", 0, "Time a client that stopped reading may take to drain its backlog before it is closed as a slow consumer."+def("server.DefaultWriteTimeout", server.DefaultWriteTimeout))
	fs.DurationVar(&s.drainTimeout, "drain-timeout", 30*time.Second, "On SIGTERM, how long to wait for clients to leave after GOAWAY before closing the rest.")
	fs.DurationVar(&s.drainSpread, "drain-spread", 0, "Window over which the GOAWAY retry-after is spread so clients do not all reconnect at once."+def("server.DefaultDrainSpread", server.DefaultDrainSpread))
	fs.DurationVar(&s.resumeWindow, "resume-window", 0, "How long QoS1 messages are kept for a user, and a user's stream outlives their last connection, so a client reconnecting within it gets what it missed."+def("server.DefaultResumeWindow", server.DefaultResumeWindow))
	fs.IntVar(&s.resumeBuffer, "resume-buffer", 0, "QoS1 messages kept per user for clients that reconnect."+def("server.DefaultResumeBuffer", server.DefaultResumeBuffer))
	fs.IntVar(&s.qos1Window, "qos1-window", 0, "Unacknowledged QoS1 pushes in flight per connection; later ones wait in the user's stream until ACKs open the window."+def("server.DefaultQoS1Window", server.DefaultQoS1Window))
	fs.DurationVar(&s.tokenGrace, "token-grace", 0, "How long past its token's expiry a connection that sent no REFRESH is kept before it is closed with SESSION_EXPIRED (3008, reconnect)."+def("server.DefaultTokenGrace", server.DefaultTokenGrace))
	fs.DurationVar(&s.ackTimeout, "ack-timeout", 0, "How long a connection may leave QoS1 pushes unacknowledged before they are sent again with DUP; negative turns live redelivery off (reconnects still redeliver)."+def("server.DefaultAckTimeout", server.DefaultAckTimeout))
	fs.IntVar(&s.maxFrame, "max-frame", 0, "Largest frame in bytes accepted from and sent to an authenticated client (announced in AUTH_OK)."+def("protocol.DefaultMaxFrame", protocol.DefaultMaxFrame))
	fs.IntVar(&s.preAuthBudget, "pre-auth-budget", 0, "Bytes a connection may send before it has authenticated."+def("server.DefaultPreAuthBudget", server.DefaultPreAuthBudget))
	fs.IntVar(&s.maxConns, "max-conns", 0, "Maximum concurrent connections; more are refused with SERVER_FULL."+def("server.DefaultMaxConns", server.DefaultMaxConns))
	fs.IntVar(&s.maxConnsPerIP, "max-conns-per-ip", 0, "Maximum concurrent connections from one IP address (-1: unlimited); more are refused with RATE_LIMITED."+def("server.DefaultMaxConnsPerIP", server.DefaultMaxConnsPerIP)+" -dev makes it unlimited.")
	fs.Float64Var(&s.connectRate, "connect-rate", 0, "Maximum new connections per second from all sources together (-1: unlimited); more are refused with RATE_LIMITED."+def("server.DefaultConnectRate", server.DefaultConnectRate))
	fs.Float64Var(&s.sourceConnectRate, "source-connect-rate", 0, "Maximum new connections per second from one source address (an IPv4 address or an IPv6 /64; -1: unlimited), checked before -connect-rate so one source cannot spend everyone's budget; more are refused with RATE_LIMITED."+def("server.DefaultSourceConnectRate", server.DefaultSourceConnectRate)+" -dev makes it unlimited.")
	fs.IntVar(&s.flapThreshold, "flap-threshold", 0, "Ban a source with more than this many failed logins and over-rate connects within -flap-window: for -flap-ban its connections are refused with RATE_LIMITED (-1: never ban)."+def("server.DefaultFlapThreshold", server.DefaultFlapThreshold)+" -dev turns the ban off.")
	fs.DurationVar(&s.flapWindow, "flap-window", 0, "Window in which -flap-threshold counts a source's failed logins and over-rate connects."+def("server.DefaultFlapWindow", server.DefaultFlapWindow))
	fs.DurationVar(&s.flapBan, "flap-ban", 0, "How long a source over -flap-threshold stays banned."+def("server.DefaultFlapBan", server.DefaultFlapBan))
	fs.IntVar(&s.srcTable, "source-table-size", 0, "How many source addresses the per-source limits remember (about 64 bytes each); when full, the least recently seen unbanned source is forgotten."+def("server.DefaultSourceTableSize", server.DefaultSourceTableSize))
	fs.IntVar(&s.maxRooms, "max-rooms", 0, "Maximum rooms one connection may be in."+def("server.DefaultMaxRoomsPerConn", server.DefaultMaxRoomsPerConn))
	fs.IntVar(&s.maxOutbound, "max-outbound", 0, "Bytes that may queue for a client that is not reading before it is closed as a slow consumer."+def("server.DefaultMaxOutboundBytes", server.DefaultMaxOutboundBytes))
	fs.Int64Var(&s.maxTotalOutbound, "max-total-outbound", 0, "Bytes that may queue for all clients that are not reading together; past it the client that would exceed it is closed as a slow consumer, so memory stays bounded."+def("server.DefaultMaxTotalOutbound", server.DefaultMaxTotalOutbound))
	fs.IntVar(&s.workers, "workers", 0, "Size of the worker pool that runs authentication and handlers."+def("server.DefaultWorkers", server.DefaultWorkers))
	fs.IntVar(&s.maxInflight, "max-inflight", 0, "Requests one connection may have queued or running before further ones are answered BUSY."+def("server.DefaultMaxInflight", server.DefaultMaxInflight))
	fs.IntVar(&s.readBuffer, "read-buffer", 0, "Size in bytes of each connection's smallest read-buffer node; smaller saves memory per idle connection."+def("server.DefaultReadBufferSize", server.DefaultReadBufferSize))
	fs.StringVar(&s.devicePolicy, "device-policy", "", "Multi-device policy: \"many\" devices per user, one per \"platform\", or one per \"user\"; a newer login replaces the older with code REPLACED. Default \"many\" (server.DevicesMany).")
	fs.StringVar(&s.logFormat, "log-format", "text", "Log format: text or json.")
	fs.StringVar(&s.logLevel, "log-level", "info", "Log level: debug, info, warn or error.")
	addControlFlags(fs, s)
	addTransportFlags(fs, &s.transportSettings)
	addClusterFlags(fs, &s.clusterSettings)
	addHTTPAPIFlags(fs, &s.httpAPISettings)
	addWebhookFlags(fs, &s.webhookSettings)
	return fs
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// run is main with its inputs passed in, so tests can drive it.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	var st settings
	fs := newFlagSet(&st, stderr)
	if err := applyLayers(fs, args, &st.config, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "tetherd: %v\n", err)
		return 2
	}
	if st.mintToken != "" {
		return mint(&st, stdout, stderr, getenv)
	}
	logger, err := newLogger(&st, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tetherd: %v\n", err)
		return 2
	}
	opts, err := serverOptions(&st, logger, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tetherd: %v\n", err)
		return 2
	}
	if c, ok := opts.Authenticator.(io.Closer); ok {
		defer c.Close() // the JWKS refresh goroutine
	}
	certs, err := applyTransport(&st, &opts, logger)
	if err != nil {
		fmt.Fprintf(stderr, "tetherd: %v\n", err)
		return 2
	}
	broker, err := applyCluster(&st, &opts, logger, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tetherd: %v\n", err)
		return 2
	}
	hooks, err := webhookSender(&st, logger, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tetherd: %v\n", err)
		return 2
	}
	ctl, err := controlPort(&st, logger, getenv)
	if err == nil {
		err = checkWebhooks(hooks, ctl)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tetherd: %v\n", err)
		return 2
	}
	if ctl != nil {
		opts.Handler = ctl
	}
	srv, err := server.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "tetherd: %v\n", err)
		return 2
	}
	if ctl != nil {
		srv.RegisterMetricsWriter(ctl.WriteMetrics)
	}
	if broker != nil {
		srv.RegisterMetricsWriter(writeClusterMetrics(broker))
	}
	if hooks != nil {
		srv.RegisterMetricsWriter(hooks.WriteMetrics)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hupDone := make(chan struct{})
	defer close(hupDone)
	var apiCerts atomic.Pointer[certStore] // the HTTP API's, once it has started
	go func() {
		for {
			select {
			case <-hup:
				certs.reload()
				apiCerts.Load().reload()
			case <-hupDone:
				return
			}
		}
	}()
	if err := srv.Start(); err != nil {
		fmt.Fprintf(stderr, "tetherd: %v\n", err)
		return 1
	}
	if ctl != nil {
		if err := ctl.Start(srv); err != nil {
			srv.Close()
			fmt.Fprintf(stderr, "tetherd: %v\n", err)
			return 1
		}
		// Closed after the drain, so services can answer the uplinks in flight.
		defer ctl.Close()
	}
	closeAPI, err := startHTTPAPI(&st, logger, getenv, srv, ctl, &apiCerts)
	if err != nil {
		srv.Close()
		fmt.Fprintf(stderr, "tetherd: %v\n", err)
		return 1
	}
	defer closeAPI() // after the drain too, so services can push to the clients still there
	if st.dev {
		printDevBanner(stdout, srv)
		if ctl != nil {
			fmt.Fprintf(stdout, "  control port %s   (try: bin/tetherctl -addr %s stats)\n", ctl.Addr(), ctl.Addr())
		}
		if st.httpAddr != "-" && st.httpAddr != "" {
			fmt.Fprintf(stdout, "  HTTP API     http://%s/v1/   (try: curl http://%s/v1/stats; docs/HTTPAPI.md)\n", st.httpAddr, st.httpAddr)
		}
		fmt.Fprintln(stdout)
	}
	sig := <-sigs
	logger.Info("signal received: draining (send it again to stop at once)", "signal", sig.String(), "timeout", st.drainTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), st.drainTimeout)
	defer cancel()
	go func() {
		<-sigs
		logger.Warn("second signal: closing now")
		cancel()
	}()
	if err := srv.Shutdown(ctx); err != nil {
		logger.Warn("drain cut short; remaining clients were closed", "err", err)
	}
	closeWebhooks(hooks, logger)
	return 0
}

// newLogger builds the slog logger from -log-format and -log-level.
func newLogger(st *settings, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(st.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", st.logLevel)
	}
	if st.dev && st.logLevel == "info" { // -dev raises the default level only
		level = slog.LevelDebug
	}
	ho := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch st.logFormat {
	case "text":
		h = slog.NewTextHandler(w, ho)
	case "json":
		h = slog.NewJSONHandler(w, ho)
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", st.logFormat)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	return l, nil
}

// serverOptions maps settings onto server.Options. Settings left at zero stay zero, so
// the library applies its defaults; -dev changes only settings that were not given.
func serverOptions(st *settings, logger *slog.Logger, getenv func(string) string) (server.Options, error) {
	policy, err := server.ParseDevicePolicy(st.devicePolicy)
	if err != nil {
		return server.Options{}, err
	}
	token, err := adminToken(st, getenv)
	if err != nil {
		return server.Options{}, err
	}
	o := server.Options{
		Addr:              st.addr,
		AdminAddr:         st.admin,
		AdminToken:        token,
		AdminPprofPublic:  st.adminPprofPublic,
		Logger:            logger,
		AuthTimeout:       st.authTimeout,
		Heartbeat:         st.heartbeat,
		Tick:              st.tick,
		MaxFrame:          st.maxFrame,
		PreAuthBudget:     st.preAuthBudget,
		MaxConns:          st.maxConns,
		MaxConnsPerIP:     st.maxConnsPerIP,
		ConnectRate:       st.connectRate,
		SourceConnectRate: st.sourceConnectRate,
		FlapThreshold:     st.flapThreshold,
		FlapWindow:        st.flapWindow,
		FlapBan:           st.flapBan,
		SourceTableSize:   st.srcTable,
		MaxRoomsPerConn:   st.maxRooms,
		MaxOutboundBytes:  st.maxOutbound,
		MaxTotalOutbound:  st.maxTotalOutbound,
		WriteTimeout:      st.writeTimeout,
		Workers:           st.workers,
		MaxInflight:       st.maxInflight,
		DevicePolicy:      policy,
		DrainSpread:       st.drainSpread,
		ResumeWindow:      st.resumeWindow,
		ResumeBuffer:      st.resumeBuffer,
		QoS1Window:        st.qos1Window,
		AckTimeout:        st.ackTimeout,
		TokenGrace:        st.tokenGrace,
		ReadBufferSize:    st.readBuffer,
	}
	if st.dev {
		st.auth = "insecure"
		if o.Addr == "" {
			o.Addr = devAddr
		}
		// A developer load-tests from one machine: lift what counts per source.
		for _, v := range []*int{&o.MaxConnsPerIP, &o.FlapThreshold} {
			if *v == 0 {
				*v = -1
			}
		}
		if o.SourceConnectRate == 0 {
			o.SourceConnectRate = -1
		}
	}
	switch st.auth {
	case "insecure":
		o.Authenticator = server.InsecureAuthenticator{}
	case "jwt":
		a, err := jwtAuthenticator(st, getenv, logger)
		if err != nil {
			return o, err
		}
		o.Authenticator = a
	default:
		return o, fmt.Errorf("-auth %q: want jwt or insecure", st.auth)
	}
	return o, nil
}

// adminToken reads the admin bearer token from -admin-token-file or TETHER_ADMIN_TOKEN,
// trimming surrounding whitespace in both ("" when neither is set).
func adminToken(st *settings, getenv func(string) string) (string, error) {
	tok, from := getenv("TETHER_ADMIN_TOKEN"), "TETHER_ADMIN_TOKEN"
	if st.adminTokenFile != "" {
		b, err := os.ReadFile(st.adminTokenFile)
		if err != nil {
			return "", fmt.Errorf("cannot read -admin-token-file: %w", err)
		}
		tok, from = string(b), "-admin-token-file "+st.adminTokenFile
	}
	if tok == "" {
		return "", nil
	}
	tok = strings.TrimSpace(tok)
	if len(tok) < adminTokenMinLen {
		return "", fmt.Errorf("%s: the admin token must be at least %d bytes (not counting surrounding whitespace)", from, adminTokenMinLen)
	}
	return tok, nil
}

// adminTokenMinLen matches the server's minimum (it rejects shorter tokens too); checked
// here to name the flag or variable in the error.
const adminTokenMinLen = 16

// jwtAuthenticator builds the JWT authenticator from the -jwt-* and -jwks-* settings.
func jwtAuthenticator(st *settings, getenv func(string) string, logger *slog.Logger) (*jwtauth.Authenticator, error) {
	cfg := jwtauth.Config{
		Algorithm:  st.jwtAlg,
		Issuer:     st.jwtIssuer,
		Audience:   st.jwtAudience,
		RequireExp: st.jwtRequireExp,
		UserClaim:  st.jwtUserClaim,
	}
	if st.jwksURL != "" {
		if st.jwtSecretFile != "" || st.jwtPublicKey != "" {
			return nil, errors.New("-jwks-url cannot be combined with -jwt-secret-file or -jwt-public-key")
		}
		cfg.Algorithm = ""
		cfg.JWKSURL = st.jwksURL
		for alg := range strings.SplitSeq(st.jwtAlgs, ",") {
			if alg = strings.TrimSpace(alg); alg != "" {
				cfg.Algorithms = append(cfg.Algorithms, alg)
			}
		}
		cfg.JWKSRefresh, cfg.JWKSUnknownKIDInterval = st.jwksRefresh, st.jwksUnknownKID
		cfg.JWKSAllowUnreachable = st.jwksAllowUnreachable
		cfg.Logger = logger
		return jwtauth.New(cfg)
	}
	switch st.jwtAlg {
	case "HS256":
		secret, err := hmacSecret(st, getenv)
		if err != nil {
			return nil, err
		}
		cfg.HMACSecret = secret
	case "RS256":
		if st.jwtPublicKey == "" {
			return nil, errors.New("-jwt-alg RS256 needs -jwt-public-key")
		}
		pem, err := os.ReadFile(st.jwtPublicKey)
		if err != nil {
			return nil, fmt.Errorf("cannot read -jwt-public-key: %w", err)
		}
		key, err := jwtauth.LoadRSAPublicKeyPEM(pem)
		if err != nil {
			return nil, err
		}
		cfg.RSAPublicKey = key
	}
	return jwtauth.New(cfg)
}

// hmacSecret reads the HS256 secret from -jwt-secret-file or TETHER_JWT_SECRET.
func hmacSecret(st *settings, getenv func(string) string) ([]byte, error) {
	if st.jwtSecretFile != "" {
		b, err := os.ReadFile(st.jwtSecretFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read -jwt-secret-file: %w", err)
		}
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if s := getenv("TETHER_JWT_SECRET"); s != "" {
		return []byte(s), nil
	}
	return nil, errors.New("JWT auth needs a secret: -jwt-secret-file or TETHER_JWT_SECRET (or run with -dev for the insecure development authenticator)")
}

// mint prints a development token.
func mint(st *settings, stdout, stderr io.Writer, getenv func(string) string) int {
	secret, err := hmacSecret(st, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tetherd: -mint-token: %v\n", err)
		return 2
	}
	tok, err := jwtauth.MintHS256(secret, st.mintToken, st.mintTTL, nil)
	if err != nil {
		fmt.Fprintf(stderr, "tetherd: -mint-token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// printDevBanner tells a developer how to connect.
func printDevBanner(w io.Writer, srv *server.Server) {
	devBanner(w, srv.Addr().String(), srv.AdminAddr())
	if a := srv.ListenerAddr(server.TransportWS); a != nil {
		fmt.Fprintf(w, "  websocket    ws://%s%s   (subprotocol %s; the TypeScript SDK in client/js)\n\n", a, server.DefaultWebSocketPath, server.WebSocketSubprotocol)
	}
}

// devBanner writes the -dev banner for the client port addr and the admin address.
func devBanner(w io.Writer, addr, admin string) {
	exposure := "loopback only: other machines cannot connect (give -addr :" + portOf(addr) + " to listen on every interface)"
	if !netutil.IsLoopback(addr) {
		exposure = "WARNING: not loopback: anyone who can reach this address can log in as anyone"
	}
	fmt.Fprintf(w, `
tether is running in DEVELOPMENT mode (insecure authenticator: any token is accepted as its user id).

  client port  %s   (%s; protocol: docs/PROTOCOL.md)
  admin        http://%s/metrics  /healthz  /readyz  /debug/pprof/

Connect from Go:
  c, err := client.Dial(ctx, "127.0.0.1:%s", client.Options{Token: "alice"})   // package github.com/tether-gw/tether/client

Production mode verifies JWTs. Mint one for testing:
  head -c 32 /dev/urandom | base64 > secret && bin/tetherd -jwt-secret-file secret -mint-token alice
  bin/tetherd -jwt-secret-file secret

Stop with Ctrl-C (drains: clients get GOAWAY and reconnect elsewhere).
`, addr, exposure, admin, portOf(addr))
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}
