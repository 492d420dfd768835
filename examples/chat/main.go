// Command chat is tether's IM reference app: a chat service that runs beside tetherd
// through the control port (client/service), and a web page, served by the same
// binary, that talks to tetherd over WebSocket with the TypeScript SDK (client/js).
//
// One-to-one and group chat (a group is a tether room), text, image, voice, video and
// file messages (media as URLs with metadata), recall within a time limit, history per
// conversation (in memory or SQLite), and delivery (QoS1 ACK events) and read
// receipts. README.md shows how to run it and the protocol between page and service.
//
//	go run ./examples/chat -embedded          # an in-process gateway, nothing else to start
//	bin/tetherd -dev & go run ./examples/chat  # against a running tetherd -dev
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type settings struct {
	control, secret, httpAddr, wsURL, db, sdk string
	recallWindow, wait                        time.Duration
	embedded                                  bool
	gwAddr, wsAddr                            string
	logLevel                                  string
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var st settings
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&st.control, "control", "127.0.0.1:7001", "Address of tetherd's control port (with -embedded: where the in-process gateway opens it; 127.0.0.1:0 picks a free port).")
	fs.StringVar(&st.secret, "secret", "", "The control port's shared secret; TETHER_CONTROL_SECRET may hold it instead. tetherd -dev on loopback needs none.")
	fs.StringVar(&st.httpAddr, "http", "127.0.0.1:8080", "Address of the web page's HTTP listener.")
	fs.StringVar(&st.wsURL, "ws-url", "", "WebSocket URL the page connects to. Default ws://127.0.0.1:7003/ws (tetherd -dev's), or the in-process gateway's with -embedded.")
	fs.StringVar(&st.db, "db", "memory", "History store: \"memory\", or the path of an SQLite database file (created if missing).")
	fs.StringVar(&st.sdk, "sdk", "", "Directory of the built TypeScript SDK (client/js/dist, made by `cd client/js && npm ci && npm run build`). Default: client/js/dist found from the working directory upwards.")
	fs.DurationVar(&st.recallWindow, "recall-window", DefaultRecallWindow, "How long after sending a sender may recall a message.")
	fs.DurationVar(&st.wait, "wait", 15*time.Second, "How long to keep trying to reach the control port at start (a tetherd started at the same time).")
	fs.BoolVar(&st.embedded, "embedded", false, "Run a development gateway in this process (any token is its user id, like tetherd -dev), so nothing else needs starting.")
	fs.StringVar(&st.gwAddr, "gw-addr", "127.0.0.1:7000", "With -embedded: the gateway's TCP client port.")
	fs.StringVar(&st.wsAddr, "ws-addr", "127.0.0.1:7003", "With -embedded: the gateway's WebSocket listener.")
	fs.StringVar(&st.logLevel, "log-level", "info", "Log level: debug, info, warn or error.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(st.logLevel)); err != nil {
		fmt.Fprintf(stderr, "chat: -log-level %q: %v\n", st.logLevel, err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := serve(&st, logger, stdout); err != nil {
		fmt.Fprintf(stderr, "chat: %v\n", err)
		return 1
	}
	return 0
}

func serve(st *settings, logger *slog.Logger, stdout io.Writer) error {
	if st.secret == "" {
		st.secret = strings.TrimSpace(os.Getenv("TETHER_CONTROL_SECRET"))
	}
	sdk, err := findSDK(st.sdk)
	if err != nil {
		return err
	}
	store, err := openStore(st.db)
	if err != nil {
		return err
	}
	defer store.Close()

	controlAddr, wsURL := st.control, st.wsURL
	if st.embedded {
		gw, err := startEmbedded(st.gwAddr, st.wsAddr, st.control, st.secret, logger)
		if err != nil {
			return err
		}
		defer gw.Close()
		controlAddr = gw.ControlAddr()
		if wsURL == "" {
			wsURL = "ws://" + gw.WSAddr() + "/ws"
		}
	}
	if wsURL == "" {
		wsURL = "ws://127.0.0.1:7003/ws"
	}

	chat := NewChat(ChatOptions{Store: store, RecallWindow: st.recallWindow, Logger: logger})
	ctx, cancel := context.WithTimeout(context.Background(), st.wait)
	err = chat.Connect(ctx, controlAddr, st.secret)
	cancel()
	if err != nil {
		return err
	}
	defer chat.Close()

	ln, err := net.Listen("tcp", st.httpAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on -http %s: %w", st.httpAddr, err)
	}
	hs := &http.Server{Handler: newWeb(wsURL, sdk, st.recallWindow), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	fmt.Fprintf(stdout, "chat: serving the page on http://%s/ (open ?user=alice and ?user=bob), gateway %s, control port %s, store %s\n",
		ln.Addr(), wsURL, controlAddr, st.db)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	select {
	case <-sigs:
	case <-chat.svc.Done():
		return fmt.Errorf("the control connection ended: %w", chat.svc.Err())
	}
	return nil
}

// openStore opens the history store named by -db.
func openStore(db string) (Store, error) {
	if db == "memory" || db == "" {
		return newMemoryStore(), nil
	}
	return openSQLite(db)
}
