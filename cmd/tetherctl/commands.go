package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/protocol"
)

// A command parses its flags and returns the action to run once connected.
type command func(c *cli, args []string) (func(ctx context.Context) error, error)

var commands = map[string]command{
	"push":     push,
	"kick":     kick,
	"presence": presence,
	"rooms":    rooms,
	"stats":    stats,
	"ping":     ping,
	"tail":     tail,
}

// clientCommands use the client port, not the control port: run hands them the
// invocation (with their own flags, -addr included) without dialling the control port.
var clientCommands = map[string]func(ctx context.Context, c *cli, args []string) int{
	"connect": connect,
}

// newFlags returns a command's flag set, reporting errors to stderr.
func newFlags(c *cli, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("tetherctl "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: tetherctl %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses fs, mapping every failure (and -help) to errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	return nil
}

// list splits a comma-separated flag value, dropping empty items.
func list(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// ids parses a comma-separated list of connection ids.
func ids(s string) ([]uint64, error) {
	var out []uint64
	for _, x := range list(s) {
		id, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad connection id %q", x)
		}
		out = append(out, id)
	}
	return out, nil
}

// exactlyOne checks that exactly one of the named selectors was given.
func exactlyOne(names string, set ...bool) error {
	n := 0
	for _, b := range set {
		if b {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("give exactly one of %s", names)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func push(c *cli, args []string) (func(context.Context) error, error) {
	fs := newFlags(c, "push", "-user u1,u2 | -conn 1,2 | -room r [-exclude 3,4] | -all [-qos1] <message | -file F | ->")
	users := fs.String("user", "", "Comma-separated user ids: every connection of each gets the message.")
	conns := fs.String("conn", "", "Comma-separated connection ids.")
	room := fs.String("room", "", "Room whose members get the message.")
	all := fs.Bool("all", false, "Send to every connection.")
	exclude := fs.String("exclude", "", "Comma-separated connection ids that must not get the message.")
	qos1 := fs.Bool("qos1", false, "QoS1: sequenced, acknowledged and kept for resume (users and conns only).")
	file := fs.String("file", "", "Read the message from this file instead of the argument.")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if err := exactlyOne("-user, -conn, -room and -all", *users != "", *conns != "", *room != "", *all); err != nil {
		return nil, err
	}
	connIDs, err := ids(*conns)
	if err != nil {
		return nil, err
	}
	ex, err := ids(*exclude)
	if err != nil {
		return nil, err
	}
	var payload []byte
	switch {
	case *file != "" && fs.NArg() == 0:
		if payload, err = os.ReadFile(*file); err != nil {
			return nil, fmt.Errorf("cannot read -file: %w", err)
		}
	case *file == "" && fs.NArg() == 1 && fs.Arg(0) == "-":
		if payload, err = io.ReadAll(c.stdin); err != nil {
			return nil, fmt.Errorf("cannot read stdin: %w", err)
		}
	case *file == "" && fs.NArg() == 1:
		payload = []byte(fs.Arg(0))
	default:
		return nil, errors.New("give the message as one argument, with -file F, or - for stdin")
	}
	return func(ctx context.Context) error {
		opts := service.PushOptions{QoS1: *qos1, Exclude: ex}
		var res service.PushResult
		var err error
		switch {
		case *users != "":
			res, err = c.svc.PushUsers(ctx, list(*users), payload, opts)
		case *conns != "":
			res, err = c.svc.PushConns(ctx, connIDs, payload, opts)
		case *room != "":
			res, err = c.svc.PushRoom(ctx, *room, payload, ex...)
		default:
			res, err = c.svc.Broadcast(ctx, payload, ex...)
		}
		if err != nil {
			return err
		}
		text := "delivered to " + plural(res.Delivered, "connection", "connections")
		if *users != "" || *conns != "" {
			text += ", " + strconv.Itoa(res.Offline) + " offline"
		}
		text += "\n"
		for _, u := range sortedKeys(res.MsgIDs) {
			text += fmt.Sprintf("  msg_id %s=%d\n", u, res.MsgIDs[u])
		}
		c.print(res, text)
		return nil
	}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func kick(c *cli, args []string) (func(context.Context) error, error) {
	fs := newFlags(c, "kick", "-user u1,u2 | -conn 1,2 [-code 3502] [-reason text]")
	users := fs.String("user", "", "Comma-separated user ids: all their connections are closed.")
	conns := fs.String("conn", "", "Comma-separated connection ids.")
	code := fs.Uint("code", uint(protocol.CloseKicked), "CLOSE code: 3502 KICKED (terminal) by default; 3000-3499 lets the clients reconnect.")
	reason := fs.String("reason", "", "Reason sent to the clients.")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if err := exactlyOne("-user and -conn", *users != "", *conns != ""); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	connIDs, err := ids(*conns)
	if err != nil {
		return nil, err
	}
	if *code > 0xFFFF {
		return nil, fmt.Errorf("-code %d out of range", *code)
	}
	return func(ctx context.Context) error {
		var res service.KickResult
		var err error
		if *users != "" {
			res, err = c.svc.KickUsers(ctx, list(*users), protocol.CloseCode(*code), *reason)
		} else {
			res, err = c.svc.KickConns(ctx, connIDs, protocol.CloseCode(*code), *reason)
		}
		if err != nil {
			return err
		}
		c.print(res, fmt.Sprintf("kicked %s, %d not found\n", plural(res.Kicked, "connection", "connections"), res.Missing))
		return nil
	}, nil
}

func presence(c *cli, args []string) (func(context.Context) error, error) {
	fs := newFlags(c, "presence", "[-user u1,u2] [-room r1,r2]")
	users := fs.String("user", "", "Comma-separated user ids to look up.")
	roomList := fs.String("room", "", "Comma-separated rooms whose member counts to report.")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return func(ctx context.Context) error {
		res, err := c.svc.Presence(ctx, list(*users), list(*roomList))
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, u := range list(*users) {
			cs := res.Users[u]
			if len(cs) == 0 {
				fmt.Fprintf(&b, "%s: offline\n", u)
				continue
			}
			fmt.Fprintf(&b, "%s: online, %s\n", u, plural(len(cs), "connection", "connections"))
			for _, ci := range cs {
				fmt.Fprintf(&b, "  conn %d  device %q  platform %q  addr %s  rooms %s\n",
					ci.Conn, ci.Device, ci.Platform, ci.Addr, strings.Join(ci.Rooms, ","))
			}
		}
		for _, r := range list(*roomList) {
			fmt.Fprintf(&b, "room %s: %s\n", r, plural(res.Rooms[r], "member", "members"))
		}
		t := res.Totals
		fmt.Fprintf(&b, "gateway: %s (%d authenticated), %s, %s\n", plural(int(t.Connections), "connection", "connections"),
			t.Authenticated, plural(t.Users, "user", "users"), plural(t.Rooms, "room", "rooms"))
		c.print(res, b.String())
		return nil
	}, nil
}

func rooms(c *cli, args []string) (func(context.Context) error, error) {
	if len(args) == 0 || (args[0] != "join" && args[0] != "leave") {
		fmt.Fprintln(c.stderr, "usage: tetherctl rooms join|leave -room r -user u1,u2 | -conn 1,2")
		return nil, errUsage
	}
	join := args[0] == "join"
	fs := newFlags(c, "rooms "+args[0], "-room r -user u1,u2 | -conn 1,2")
	room := fs.String("room", "", "Room name.")
	users := fs.String("user", "", "Comma-separated user ids: all their connections.")
	conns := fs.String("conn", "", "Comma-separated connection ids.")
	if err := parse(fs, args[1:]); err != nil {
		return nil, err
	}
	if *room == "" {
		return nil, errors.New("-room is required")
	}
	if err := exactlyOne("-user and -conn", *users != "", *conns != ""); err != nil {
		return nil, err
	}
	connIDs, err := ids(*conns)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		var res service.RoomResult
		var err error
		switch {
		case join && *users != "":
			res, err = c.svc.JoinUsers(ctx, *room, list(*users)...)
		case join:
			res, err = c.svc.JoinConns(ctx, *room, connIDs...)
		case *users != "":
			res, err = c.svc.LeaveUsers(ctx, *room, list(*users)...)
		default:
			res, err = c.svc.LeaveConns(ctx, *room, connIDs...)
		}
		if err != nil {
			return err
		}
		verb := "left"
		if join {
			verb = "joined"
		}
		text := fmt.Sprintf("%s %s %s, %d not found", plural(res.Conns, "connection", "connections"), verb, *room, res.Missing)
		if res.Refused > 0 {
			text += fmt.Sprintf(", %d at their room limit", res.Refused)
		}
		c.print(res, text+"\n")
		return nil
	}, nil
}

func stats(c *cli, args []string) (func(context.Context) error, error) {
	fs := newFlags(c, "stats", "")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		st, err := c.svc.Stats(ctx)
		if err != nil {
			return err
		}
		c.print(st, fmt.Sprintf(`connections       %d
authenticated     %d
users             %d
rooms             %d
draining          %t
services          %d
routes            %d
prefixes          %d
event subscribers %d
pending uplinks   %d
uplinks total     %d
`, st.Connections, st.Authenticated, st.Users, st.Rooms, st.Draining, st.Services, st.Routes, st.Prefixes,
			st.EventSubscribers, st.PendingUplinks, st.UplinksTotal))
		return nil
	}, nil
}

func ping(c *cli, args []string) (func(context.Context) error, error) {
	fs := newFlags(c, "ping", "")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		d, err := c.svc.Ping(ctx)
		if err != nil {
			return err
		}
		c.print(map[string]any{"rtt_us": d.Microseconds()}, fmt.Sprintf("pong in %v\n", d))
		return nil
	}, nil
}

// tailLine is one line of tail -json output.
type tailLine struct {
	Kind string `json:"kind"` // "uplink" or "event"
	*service.Event
	Uplink        *service.Uplink `json:"uplink,omitempty"`
	Payload       *string         `json:"payload,omitempty"`
	PayloadBase64 []byte          `json:"payload_base64,omitempty"`
}

func tail(c *cli, args []string) (func(context.Context) error, error) {
	fs := newFlags(c, "tail", "[-routes a,b] [-prefixes chat.] [-events] [-count N]")
	routes := fs.String("routes", "", "Comma-separated routes whose uplinks to print (and answer with an empty reply).")
	prefixes := fs.String("prefixes", "", "Comma-separated route prefixes whose uplinks to print (and answer).")
	events := fs.Bool("events", false, "Print connection events (the default when no routes or prefixes are given).")
	count := fs.Int("count", 0, "Exit after printing this many lines (0: run until interrupted).")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	sub := service.Subscription{Routes: list(*routes), Prefixes: list(*prefixes), Events: *events}
	if len(sub.Routes) == 0 && len(sub.Prefixes) == 0 {
		sub.Events = true
	}
	var mu sync.Mutex
	printed := 0
	enough := make(chan struct{})
	emit := func(line tailLine, text string) {
		mu.Lock()
		defer mu.Unlock()
		if *count > 0 && printed >= *count {
			return
		}
		c.print(line, text)
		printed++
		if *count > 0 && printed == *count {
			close(enough)
		}
	}
	c.onEvent = func(ev service.Event) {
		text := fmt.Sprintf("event %-7s user=%s conn=%d device=%q platform=%q", ev.Type, ev.User, ev.Conn, ev.Device, ev.Platform)
		if ev.Type == "offline" {
			text += fmt.Sprintf(" code=%d (%s)", uint16(ev.Code), ev.Reason)
		}
		emit(tailLine{Kind: "event", Event: &ev}, text+"\n")
	}
	c.onUplink = func(u *service.Uplink) {
		line := tailLine{Kind: "uplink", Uplink: u}
		shown := fmt.Sprintf("%d bytes (binary)", len(u.Payload))
		if utf8.Valid(u.Payload) {
			s := string(u.Payload)
			line.Payload = &s
			shown = strconv.Quote(s)
		} else {
			line.PayloadBase64 = u.Payload
		}
		emit(line, fmt.Sprintf("uplink id=%d route=%s user=%s conn=%d device=%q: %s\n", u.ID, u.Route, u.User, u.Conn, u.Device, shown))
		_ = u.Reply(nil)
	}
	return func(ctx context.Context) error {
		if _, err := c.svc.Subscribe(ctx, sub); err != nil {
			return err
		}
		if !c.json {
			fmt.Fprintf(c.stderr, "tailing %s (Ctrl-C to stop)\n", describe(sub))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-enough:
			return nil
		case <-c.svc.Done():
			return c.svc.Err()
		}
	}, nil
}

func describe(sub service.Subscription) string {
	var parts []string
	if len(sub.Routes) > 0 {
		parts = append(parts, "routes "+strings.Join(sub.Routes, ","))
	}
	if len(sub.Prefixes) > 0 {
		parts = append(parts, "prefixes "+strings.Join(sub.Prefixes, ","))
	}
	if sub.Events {
		parts = append(parts, "connection events")
	}
	return strings.Join(parts, " and ")
}
