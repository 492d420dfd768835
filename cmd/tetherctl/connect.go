package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tether-gw/tether/client"
)

// connect is a terminal client of the gateway's client port (package client, the Go
// SDK): unlike the other commands it does not use the control port, so it has its own
// -addr and run hands it the invocation before dialling anything. It prints every
// push, state change and reply as one line, joins -room rooms, and sends each line of
// stdin to -route. Ctrl-C or the end of stdin exits 0; a terminal close code from the
// gateway (e.g. KICKED) exits 1; a failed first connect exits 3.
func connect(ctx context.Context, c *cli, args []string) int {
	fs := newFlags(c, "connect", "[-addr 127.0.0.1:7000] -token T [-device D] [-room r1,r2] [-route R] [-tls [-tls-ca F]]")
	addr := fs.String("addr", "127.0.0.1:7000", "Address of the gateway's client port (tetherd -addr; not the control port).")
	token := fs.String("token", "", "Token to authenticate with (required); a development gateway (tetherd -dev) takes it as the user id.")
	device := fs.String("device", "", "Device id; the gateway resumes QoS1 messages per device. Default: the gateway assigns one per connection.")
	roomsFlag := fs.String("room", "", "Comma-separated rooms to join (and rejoin after every reconnect).")
	route := fs.String("route", "", "Route that each line typed on stdin is sent to (SEND); its reply or error is printed. Default: lines are not sent.")
	useTLS := fs.Bool("tls", false, "Connect with TLS (tetherd -tls-addr), verifying the gateway's certificate.")
	caFile := fs.String("tls-ca", "", "PEM file of the CA that signed the gateway's certificate (with -tls), for a private CA.")
	if err := parse(fs, args); err != nil {
		return exitUsage
	}
	if *token == "" || fs.NArg() > 0 {
		fmt.Fprintln(c.stderr, "tetherctl connect: give -token (and no arguments)")
		fs.Usage()
		return exitUsage
	}
	p := &printer{w: c.stdout}
	opts := client.Options{Token: *token, DeviceID: *device, ClientVersion: "tetherctl"}
	if *useTLS || *caFile != "" {
		cfg, err := tlsConfig(*caFile)
		if err != nil {
			fmt.Fprintf(c.stderr, "tetherctl connect: %v\n", err)
			return exitUsage
		}
		opts.TLS = cfg
	}
	var cl atomic.Pointer[client.Client]
	opts.OnStateChange = func(s client.State, err error) {
		switch {
		case s == client.StateConnected:
			if x := cl.Load(); x != nil { // the first connect is printed once Dial returns
				p.connected(x)
			}
		case s == client.StateReconnecting:
			p.line("disconnected: %s; reconnecting with backoff", describeErr(err))
		case s == client.StateClosed && err != nil:
			p.line("closed: %s", describeErr(err))
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	x, err := client.Dial(dctx, *addr, opts)
	cancel()
	if err != nil {
		fmt.Fprintf(c.stderr, "tetherctl connect: %s\n", describeErr(err))
		return exitConn
	}
	cl.Store(x)
	defer x.Close()
	p.connected(x)
	for _, room := range list(*roomsFlag) {
		if err := x.Subscribe(ctx, room); err != nil {
			p.line("join %s: %s", room, describeErr(err))
		} else {
			p.line("joined %s", room)
		}
	}
	lines := make(chan struct{})
	go func() { // stdin: each line a SEND, one at a time, while pushes print
		defer close(lines)
		sc := bufio.NewScanner(c.stdin)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			if ctx.Err() != nil {
				return
			}
			send(ctx, x, p, *route, sc.Text())
		}
	}()
	pushes := x.Pushes()
	for {
		select {
		case <-ctx.Done(): // Ctrl-C
			return exitOK
		case <-lines: // end of stdin
			return exitOK
		case m, ok := <-pushes:
			if !ok { // the client ended: a terminal close code, printed by OnStateChange
				return exitFail
			}
			p.push(m)
		}
	}
}

// send sends one typed line to route and prints the reply or the error.
func send(ctx context.Context, x *client.Client, p *printer, route, line string) {
	if line == "" {
		return
	}
	if route == "" {
		p.line("not sent: give -route to send typed lines")
		return
	}
	reply, err := x.Send(ctx, route, []byte(line))
	if err != nil {
		if ctx.Err() == nil {
			p.line("send %s: %s", route, describeErr(err))
		}
		return
	}
	p.line("reply %s: %s", route, text(reply))
}

// printer writes one line at a time, each prefixed with the time: pushes, state
// changes and replies come from different goroutines.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) line(format string, args ...any) {
	s := time.Now().Format("15:04:05.000") + " " + fmt.Sprintf(format, args...) + "\n"
	p.mu.Lock()
	defer p.mu.Unlock()
	io.WriteString(p.w, s)
}

func (p *printer) connected(x *client.Client) {
	a := x.LastAuth()
	p.line("connected: conn=%d user=%s epoch=%d resume=%s heartbeat=%v", a.ConnID, a.UserID, a.Epoch, a.Resume,
		time.Duration(a.HeartbeatMs)*time.Millisecond)
}

func (p *printer) push(m client.Push) {
	to := "user"
	if m.Channel != "" {
		to = "room " + m.Channel
	}
	extra := ""
	if m.Redelivered {
		extra = " (redelivered)"
	}
	p.line("push %s id=%d%s: %s", to, m.MsgID, extra, text(m.Payload))
}

// text shows a payload as text when it is printable UTF-8, else as "base64:…".
func text(b []byte) string {
	if !utf8.Valid(b) {
		return "base64:" + base64.StdEncoding.EncodeToString(b)
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && r != '\t' {
			return "base64:" + base64.StdEncoding.EncodeToString(b)
		}
	}
	return string(b)
}

// describeErr names close codes and error codes: "3502 KICKED (bye)".
func describeErr(err error) string {
	var ce *client.CloseError
	var se *client.ServerError
	switch {
	case err == nil:
		return "no error"
	case errors.As(err, &ce):
		s := fmt.Sprintf("close code %d %s", uint16(ce.Code), ce.Code)
		if ce.Reason != "" {
			s += " (" + ce.Reason + ")"
		}
		if ce.Local {
			s += ", sent by this client"
		}
		return s
	case errors.As(err, &se):
		s := fmt.Sprintf("error %d %s", uint16(se.Code), se.Code)
		if se.Message != "" {
			s += " (" + se.Message + ")"
		}
		return s
	}
	return err.Error()
}

// tlsConfig verifies the gateway against the system roots, or caFile's CAs.
func tlsConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read -tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-tls-ca %s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
