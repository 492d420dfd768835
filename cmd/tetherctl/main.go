// Command tetherctl talks to a tether gateway's control port from a shell: push
// messages, kick connections, manage rooms, query presence and stats, and tail the
// clients' uplink messages or connection events live.
//
//	tetherctl [-addr 127.0.0.1:7001] [-secret-file F] [-json] <command> [flags] [args]
//
// The secret comes from -secret-file or the TETHER_CONTROL_SECRET environment
// variable (a development gateway, tetherd -dev, accepts none). Exit codes: 0 success,
// 1 the gateway refused the operation (FAIL, e.g. NOT_FOUND), 2 usage error, 3 cannot
// connect or authenticate.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tether-gw/tether/client/service"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
	exitConn  = 3
)

const usage = `usage: tetherctl [-addr host:port] [-secret-file F] [-json] [-timeout D] <command> [flags] [args]

commands:
  push      -user u1,u2 | -conn 1,2 | -room r [-exclude 3,4] | -all  [-qos1]  <message | -file F | ->
  kick      -user u1,u2 | -conn 1,2  [-code 3502] [-reason text]
  presence  [-user u1,u2] [-room r1,r2]
  rooms     join|leave -room r  -user u1,u2 | -conn 1,2
  stats
  ping
  tail      [-routes a,b] [-prefixes chat.] [-events] [-count N]
            print uplink messages and/or connection events until Ctrl-C (events only
            by default). A tail subscribed to routes takes its share of those routes'
            uplinks away from the real services and answers each with an empty reply.
  connect   -token T [-addr 127.0.0.1:7000] [-device D] [-room r1,r2] [-route R] [-tls [-tls-ca F]]
            a terminal client on the CLIENT port (its own -addr): prints pushes, state
            changes and close codes, sends each stdin line to -route; Ctrl-C or EOF exits.

The secret is read from -secret-file, or from TETHER_CONTROL_SECRET.
Exit codes: 0 ok, 1 operation failed, 2 usage, 3 connection or authentication error.
Run "tetherctl <command> -help" for a command's flags.
`

// errUsage marks a usage error already reported.
var errUsage = errors.New("usage")

// cli is one invocation's shared state.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	json           bool
	svc            *service.Service
	// onUplink and onEvent are set by tail while parsing, before the Service exists.
	onUplink func(*service.Uplink)
	onEvent  func(service.Event)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// run is main with its inputs passed in, so tests can drive it; ctx ends a tail.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("tetherctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	addr := fs.String("addr", "127.0.0.1:7001", "Address of the gateway's control port.")
	secretFile := fs.String("secret-file", "", "File holding the control secret (surrounding whitespace is trimmed); default: $TETHER_CONTROL_SECRET.")
	asJSON := fs.Bool("json", false, "Print results as JSON, one object per line.")
	timeout := fs.Duration("timeout", 10*time.Second, "Timeout for connecting and for each request.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if fn, ok := clientCommands[cmd]; ok {
		return fn(ctx, &cli{stdin: stdin, stdout: stdout, stderr: stderr, json: *asJSON}, rest)
	}
	handler, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "tetherctl: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	secret := strings.TrimSpace(getenv("TETHER_CONTROL_SECRET")) // trimmed as tetherd trims it
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			fmt.Fprintf(stderr, "tetherctl: cannot read -secret-file: %v\n", err)
			return exitUsage
		}
		secret = strings.TrimSpace(string(b))
	}
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, json: *asJSON}
	// Parse the command's flags before connecting, so usage errors need no gateway.
	exec, err := handler(c, rest)
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "tetherctl %s: %v\n", cmd, err)
		}
		return exitUsage
	}
	dctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	svc, err := service.Dial(dctx, *addr, service.Options{
		Secret: secret, Name: "tetherctl", RequestTimeout: *timeout,
		OnUplink: func(u *service.Uplink) {
			if c.onUplink != nil {
				c.onUplink(u)
				return
			}
			_ = u.Reply(nil)
		},
		OnEvent: func(ev service.Event) {
			if c.onEvent != nil {
				c.onEvent(ev)
			}
		},
	})
	if err != nil {
		fmt.Fprintf(stderr, "tetherctl: %v\n", err)
		return exitConn
	}
	defer svc.Close()
	c.svc = svc
	if err := exec(ctx); err != nil {
		fmt.Fprintf(stderr, "tetherctl %s: %v\n", cmd, err)
		var se *service.Error
		if errors.As(err, &se) {
			return exitFail
		}
		return exitConn
	}
	return exitOK
}

// print writes v as JSON (with -json) or the human-readable text.
func (c *cli) print(v any, text string) {
	if c.json {
		b, err := json.Marshal(v)
		if err != nil {
			fmt.Fprintf(c.stderr, "tetherctl: cannot encode JSON: %v\n", err)
			return
		}
		fmt.Fprintf(c.stdout, "%s\n", b)
		return
	}
	fmt.Fprint(c.stdout, text)
}
