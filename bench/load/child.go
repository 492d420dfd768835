package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tether-gw/tether/bench/kit"
)

// child is a serve or load process started by the orchestrator; it reads Commands
// on stdin and prints Events on stdout, one JSON object a line.
type child struct{ *kit.Child[Event] }

// startChild starts exe with args. JSON lines on its stdout become events; other
// lines and its stderr go to log prefixed with the name. The kernel kills the child
// if this process dies, and ctx's end kills it too.
func startChild(ctx context.Context, name, exe string, args, env []string, log *logger) (child, error) {
	c, err := kit.StartChild(ctx, name, exe, args, env, parseEvent, func(s string) { log.printf("%s", s) })
	return child{c}, err
}

// parseEvent decodes an event line; anything else is a line to log.
func parseEvent(b []byte) (Event, bool) {
	var ev Event
	if len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &ev) == nil && ev.Kind != "" {
		return ev, true
	}
	return Event{}, false
}

// send writes one command to the child's stdin.
func (c child) send(cmd Command) error {
	b, _ := json.Marshal(cmd)
	return c.Send(b)
}

// await returns the next event of one of kinds, skipping others (progress events go
// to onProgress when it is set); an "error" event, the child's exit or the timeout is
// an error.
func (c child) await(timeout time.Duration, onProgress func(Event), kinds ...string) (Event, error) {
	return c.Await(timeout, strings.Join(kinds, "/"), func(ev Event) (bool, error) {
		if ev.Kind == "error" {
			return false, errors.New(ev.Err)
		}
		if ev.Kind == "progress" && onProgress != nil {
			onProgress(ev)
		}
		return slices.Contains(kinds, ev.Kind), nil
	})
}

// logger prints the orchestrator's log lines; it clears a live progress line first.
type logger struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	progress bool // a progress line is on screen
}

func (l *logger) printf(format string, args ...any) {
	if l == nil || l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.progress {
		fmt.Fprint(l.w, "\r\033[K")
		l.progress = false
	}
	fmt.Fprintf(l.w, format+"\n", args...)
}

// status shows s as the live progress line on a terminal; elsewhere it is dropped,
// so logs stay readable.
func (l *logger) status(s string) {
	if l == nil || l.w == nil || !l.tty {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprint(l.w, "\r\033[K"+s)
	l.progress = true
}

// endStatus ends the live progress line.
func (l *logger) endStatus() {
	if l == nil || l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.progress {
		fmt.Fprint(l.w, "\n")
		l.progress = false
	}
}
