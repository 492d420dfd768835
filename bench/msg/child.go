package msg

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/tether-gw/tether/bench/kit"
)

// Child is a serve or load process started by an orchestrator: Commands go to its
// stdin, Events come from its stdout. Its methods may be called from any goroutine.
type Child struct{ *kit.Child[Event] }

// StartChild starts exe with args. Event lines on its stdout become events; other
// lines and its stderr go to logf, prefixed with the name. The kernel kills the
// child if this process dies, and ctx's end kills it too.
func StartChild(ctx context.Context, name, exe string, args, env []string, logf func(string)) (Child, error) {
	c, err := kit.StartChild(ctx, name, exe, args, env, ParseEvent, logf)
	return Child{c}, err
}

// Do writes one command to the child's stdin.
func (c Child) Do(cmd Command) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		panic("BUG: msg: cannot encode command: " + err.Error())
	}
	return c.Send(b)
}

// Await returns the next event of one of kinds, skipping others (progress events go
// to onProgress when it is set); an "error" event, the child's exit or the timeout is
// an error.
func (c Child) Await(timeout time.Duration, onProgress func(Event), kinds ...string) (Event, error) {
	return c.Child.Await(timeout, strings.Join(kinds, "/"), func(ev Event) (bool, error) {
		if ev.Kind == "error" {
			return false, errors.New(ev.Err)
		}
		if ev.Kind == "progress" && onProgress != nil {
			onProgress(ev)
		}
		return slices.Contains(kinds, ev.Kind), nil
	})
}

// ReadCommands decodes the commands on in and delivers them on the returned channel,
// which is closed when in ends. A line that is not a command is answered with an
// "error" event on ew.
func ReadCommands(in io.Reader, ew *Writer) <-chan Command {
	cmds := make(chan Command)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			var c Command
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				ew.Errorf("bad command %q: %v", sc.Text(), err)
				continue
			}
			cmds <- c
		}
	}()
	return cmds
}
