package memtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tether-gw/tether/bench/kit"
)

// child is a serve or load process started by the orchestrator; it reads commands on
// stdin and prints protocol lines (see parseLine) on stdout.
type child struct{ *kit.Child[line] }

// startChild starts exe with args. Its protocol lines become events; other stdout and
// all stderr lines are copied to log prefixed with the child's name. The child is
// killed if ctx ends first, and by the kernel if this process dies.
func startChild(ctx context.Context, name, exe string, args, env []string, log io.Writer) (child, error) {
	lw := &lineWriter{w: log}
	c, err := kit.StartChild(ctx, name, exe, args, env, func(b []byte) (line, bool) { return parseLine(string(b)) }, lw.raw)
	return child{c}, err
}

// send writes one command line to the child's stdin.
func (c child) send(cmd string) error { return c.Send([]byte(cmd)) }

// await returns the next line of one of kinds, skipping others; an "error" line, the
// child's exit or the timeout is an error.
func (c child) await(timeout time.Duration, kinds ...string) (line, error) {
	return c.Await(timeout, fmt.Sprint(kinds), func(l line) (bool, error) {
		if l.kind == "error" {
			return false, errors.New(l.fields["cmd"] + ": " + l.fields["err"])
		}
		return slices.Contains(kinds, l.kind), nil
	})
}
