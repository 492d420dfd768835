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
	"syscall"
	"time"

	"github.com/tether-gw/tether/server"
)

// settings holds every flag's value; defaults are set in newFlagSet.
type settings struct {
	config string
	dev    bool

	addr, admin string

	auth, jwtAlg, jwtSecretFile, jwtPublicKey, jwtIssuer, jwtAudience string
	jwtRequireExp                                                     bool
	mintToken                                                         string
	mintTTL                                                           time.Duration

	heartbeat, authTimeout, tick, writeTimeout time.Duration
	drainTimeout, drainSpread                  time.Duration

	maxFrame, preAuthBudget, maxConns, maxConnsPerIP, maxRooms int
	maxOutbound, workers, maxInflight, readBuffer              int
	maxTotalOutbound                                           int64
	connectRate                                                float64
	devicePolicy                                               string

	logFormat, logLevel string

	controlSettings // the control port's flags, in control.go
}

func newFlagSet(s *settings, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tetherd", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&s.config, "config", "", "Path of a JSON config file whose keys are these flag names, e.g. {\"addr\": \":7000\", \"heartbeat\": \"25s\"}. Flags and TETHER_* environment variables override it.")
	fs.BoolVar(&s.dev, "dev", false, "Development mode: accept any token as its user id (insecure authenticator, logged loudly), allow unlimited connections per IP, and log at debug level. Never use in production.")
	fs.StringVar(&s.addr, "addr", ":7000", "Address of the client port that apps and games connect to.")
	fs.StringVar(&s.admin, "admin", "127.0.0.1:7002", "Address of the admin HTTP listener serving /metrics, /healthz, /readyz and /debug/pprof/; \"-\" disables it. Keep it off public networks.")
	fs.StringVar(&s.auth, "auth", "jwt", "Authenticator: \"jwt\" (verify tokens with -jwt-*) or \"insecure\" (any token is its own user id; development only).")
	fs.StringVar(&s.jwtAlg, "jwt-alg", "HS256", "JWT algorithm clients' tokens must use: HS256 (shared secret) or RS256 (public key). Other algorithms, including \"none\", are rejected.")
	fs.StringVar(&s.jwtSecretFile, "jwt-secret-file", "", "File holding the HS256 secret (at least 32 bytes; surrounding whitespace is trimmed). TETHER_JWT_SECRET may hold the secret itself instead.")
	fs.StringVar(&s.jwtPublicKey, "jwt-public-key", "", "PEM file holding the RS256 public key.")
	fs.StringVar(&s.jwtIssuer, "jwt-issuer", "", "If set, tokens must carry this \"iss\" claim.")
	fs.StringVar(&s.jwtAudience, "jwt-audience", "", "If set, tokens' \"aud\" claim must include this value.")
	fs.BoolVar(&s.jwtRequireExp, "jwt-require-exp", true, "Reject tokens without an \"exp\" claim.")
	fs.StringVar(&s.mintToken, "mint-token", "", "Print an HS256 token for this user id, signed with the -jwt-secret-file secret, and exit. For development and tests.")
	fs.DurationVar(&s.mintTTL, "mint-ttl", 24*time.Hour, "Lifetime of a token printed by -mint-token.")
	fs.DurationVar(&s.heartbeat, "heartbeat", 25*time.Second, "Heartbeat interval announced to clients; a client silent for 1.5 times this is disconnected.")
	fs.DurationVar(&s.authTimeout, "auth-timeout", 10*time.Second, "Time a new connection has to authenticate before it is closed.")
	fs.DurationVar(&s.tick, "tick", 50*time.Millisecond, "Resolution of the timing wheel that runs every deadline; deadlines fire at most one tick late.")
	fs.DurationVar(&s.writeTimeout, "write-timeout", 10*time.Second, "Time a client that stopped reading may take to drain its backlog before it is closed as a slow consumer.")
	fs.DurationVar(&s.drainTimeout, "drain-timeout", 30*time.Second, "On SIGTERM, how long to wait for clients to leave after GOAWAY before closing the rest.")
	fs.DurationVar(&s.drainSpread, "drain-spread", 5*time.Second, "Window over which the GOAWAY retry-after is spread so clients do not all reconnect at once.")
	fs.IntVar(&s.maxFrame, "max-frame", 64<<10, "Largest frame in bytes accepted from and sent to an authenticated client (announced in AUTH_OK).")
	fs.IntVar(&s.preAuthBudget, "pre-auth-budget", 8<<10, "Bytes a connection may send before it has authenticated.")
	fs.IntVar(&s.maxConns, "max-conns", 1_000_000, "Maximum concurrent connections; more are refused with SERVER_FULL.")
	fs.IntVar(&s.maxConnsPerIP, "max-conns-per-ip", 1000, "Maximum concurrent connections from one IP address (-1: unlimited); more are refused with RATE_LIMITED.")
	fs.Float64Var(&s.connectRate, "connect-rate", 10000, "Maximum new connections per second (-1: unlimited); more are refused with RATE_LIMITED.")
	fs.IntVar(&s.maxRooms, "max-rooms", 64, "Maximum rooms one connection may be in.")
	fs.IntVar(&s.maxOutbound, "max-outbound", 256<<10, "Bytes that may queue for a client that is not reading before it is closed as a slow consumer.")
	fs.Int64Var(&s.maxTotalOutbound, "max-total-outbound", 256<<20, "Bytes that may queue for all clients that are not reading together; past it the client that would exceed it is closed as a slow consumer, so memory stays bounded.")
	fs.IntVar(&s.workers, "workers", 4096, "Size of the worker pool that runs authentication and handlers.")
	fs.IntVar(&s.maxInflight, "max-inflight", 32, "Requests one connection may have queued or running before further ones are answered BUSY.")
	fs.IntVar(&s.readBuffer, "read-buffer", 256, "Size in bytes of each connection's smallest read-buffer node; smaller saves memory per idle connection.")
	fs.StringVar(&s.devicePolicy, "device-policy", "many", "Multi-device policy: \"many\" devices per user, one per \"platform\", or one per \"user\"; a newer login replaces the older with code REPLACED.")
	fs.StringVar(&s.logFormat, "log-format", "text", "Log format: text or json.")
	fs.StringVar(&s.logLevel, "log-level", "info", "Log level: debug, info, warn or error.")
	addControlFlags(fs, s)
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
	ctl, err := controlPort(&st, logger, getenv)
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
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
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
	if st.dev {
		printDevBanner(stdout, srv)
		if ctl != nil {
			fmt.Fprintf(stdout, "  control port %s   (try: bin/tetherctl -addr %s stats)\n\n", ctl.Addr(), ctl.Addr())
		}
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

// serverOptions maps settings onto server.Options.
func serverOptions(st *settings, logger *slog.Logger, getenv func(string) string) (server.Options, error) {
	policy, err := server.ParseDevicePolicy(st.devicePolicy)
	if err != nil {
		return server.Options{}, err
	}
	o := server.Options{
		Addr:             st.addr,
		AdminAddr:        st.admin,
		Logger:           logger,
		AuthTimeout:      st.authTimeout,
		Heartbeat:        st.heartbeat,
		Tick:             st.tick,
		MaxFrame:         st.maxFrame,
		PreAuthBudget:    st.preAuthBudget,
		MaxConns:         st.maxConns,
		MaxConnsPerIP:    st.maxConnsPerIP,
		ConnectRate:      st.connectRate,
		MaxRoomsPerConn:  st.maxRooms,
		MaxOutboundBytes: st.maxOutbound,
		MaxTotalOutbound: st.maxTotalOutbound,
		WriteTimeout:     st.writeTimeout,
		Workers:          st.workers,
		MaxInflight:      st.maxInflight,
		DevicePolicy:     policy,
		DrainSpread:      st.drainSpread,
		ReadBufferSize:   st.readBuffer,
	}
	if st.dev {
		st.auth = "insecure"
		if o.MaxConnsPerIP == 1000 {
			o.MaxConnsPerIP = -1
		}
	}
	switch st.auth {
	case "insecure":
		o.Authenticator = server.InsecureAuthenticator{}
	case "jwt":
		a, err := jwtAuthenticator(st, getenv)
		if err != nil {
			return o, err
		}
		o.Authenticator = a
	default:
		return o, fmt.Errorf("-auth %q: want jwt or insecure", st.auth)
	}
	return o, nil
}

// jwtAuthenticator builds the JWT authenticator from the -jwt-* settings.
func jwtAuthenticator(st *settings, getenv func(string) string) (*server.JWTAuthenticator, error) {
	cfg := server.JWTConfig{
		Algorithm:  st.jwtAlg,
		Issuer:     st.jwtIssuer,
		Audience:   st.jwtAudience,
		RequireExp: st.jwtRequireExp,
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
		key, err := server.LoadRSAPublicKeyPEM(pem)
		if err != nil {
			return nil, err
		}
		cfg.RSAPublicKey = key
	}
	return server.NewJWTAuthenticator(cfg)
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
	tok, err := server.MintHS256(secret, st.mintToken, st.mintTTL, nil)
	if err != nil {
		fmt.Fprintf(stderr, "tetherd: -mint-token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// printDevBanner tells a developer how to connect.
func printDevBanner(w io.Writer, srv *server.Server) {
	fmt.Fprintf(w, `
tether is running in DEVELOPMENT mode (insecure authenticator: any token is accepted as its user id).

  client port  %s   (protocol: docs/PROTOCOL.md)
  admin        http://%s/metrics  /healthz  /readyz  /debug/pprof/

Connect from Go:
  c, err := client.Dial(ctx, "127.0.0.1:%s", client.Options{Token: "alice"})   // package github.com/tether-gw/tether/client

Production mode verifies JWTs. Mint one for testing:
  head -c 32 /dev/urandom | base64 > secret && bin/tetherd -jwt-secret-file secret -mint-token alice
  bin/tetherd -jwt-secret-file secret

Stop with Ctrl-C (drains: clients get GOAWAY and reconnect elsewhere).
`, srv.Addr(), srv.AdminAddr(), portOf(srv.Addr().String()))
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}
