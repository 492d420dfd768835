package kit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Child is a process started by an orchestrator: a server, a loader or a floor peer.
// Its stdout lines that parse as events arrive on Events; every other line, and all
// of its stderr, goes to the orchestrator's log. Its methods may be called from any
// goroutine.
type Child[E any] struct {
	name   string
	cmd    *exec.Cmd
	wmu    sync.Mutex
	stdin  io.WriteCloser
	events chan E
	// readers counts the goroutines copying stdout and stderr, which must finish
	// before cmd.Wait.
	readers sync.WaitGroup
	exited  chan struct{}
	err     error // the exit status, once exited is closed
}

// StartChild starts exe with args and env. parse turns one stdout line into an event,
// or reports false for a line to log; logf receives such lines and the child's
// stderr, prefixed with "[name] ". The kernel kills the child if this process dies
// (Pdeathsig), and ctx's end kills it too.
func StartChild[E any](ctx context.Context, name, exe string, args, env []string, parse func([]byte) (E, bool), logf func(string)) (*Child[E], error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	if logf == nil {
		logf = func(string) {}
	}
	c := &Child[E]{name: name, cmd: cmd, stdin: stdin, events: make(chan E, 256), exited: make(chan struct{})}
	c.readers.Add(2)
	go func() {
		defer c.readers.Done()
		defer close(c.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20) // bench/load's reports carry histograms
		for sc.Scan() {
			if ev, ok := parse(sc.Bytes()); ok {
				c.events <- ev
			} else {
				logf("[" + name + "] " + sc.Text())
			}
		}
	}()
	go func() {
		defer c.readers.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logf("[" + name + "] " + sc.Text())
		}
	}()
	go func() {
		c.readers.Wait()
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// Name returns the name the child was started with.
func (c *Child[E]) Name() string { return c.name }

// PID returns the child's process id.
func (c *Child[E]) PID() int { return c.cmd.Process.Pid }

// Events returns the child's events; the channel is closed when its stdout ends.
// Only one goroutine should receive from it at a time (Await receives from it too).
func (c *Child[E]) Events() <-chan E { return c.events }

// Exited is closed once the child has exited and its output is read.
func (c *Child[E]) Exited() <-chan struct{} { return c.exited }

// Err returns the child's exit status; it is valid once Exited is closed.
func (c *Child[E]) Err() error { return c.err }

// Send writes line and a newline to the child's stdin.
func (c *Child[E]) Send(line []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.stdin.Write(append(line[:len(line):len(line)], '\n')); err != nil {
		return fmt.Errorf("cannot send %q to %s: %w", line, c.name, err)
	}
	return nil
}

// Await returns the first event for which match reports done, skipping the others.
// An error from match, the child's exit or the timeout is an error; what names the
// awaited event in those errors.
func (c *Child[E]) Await(timeout time.Duration, what string, match func(E) (done bool, err error)) (E, error) {
	var zero E
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return zero, fmt.Errorf("%s: no %s within %v", c.name, what, timeout)
		case ev, ok := <-c.events:
			if !ok {
				<-c.exited
				return zero, fmt.Errorf("%s exited while waiting for %s: %v", c.name, what, c.err)
			}
			done, err := match(ev)
			if err != nil {
				return zero, fmt.Errorf("%s: %w", c.name, err)
			}
			if done {
				return ev, nil
			}
		}
	}
}

// Stop closes the child's stdin, which asks it to exit, and kills it if it has not
// within timeout. It returns the child's exit error, if any.
func (c *Child[E]) Stop(timeout time.Duration) error {
	c.wmu.Lock()
	_ = c.stdin.Close()
	c.wmu.Unlock()
	go func() {
		for range c.events { // keep draining so the child never blocks on stdout
		}
	}()
	select {
	case <-c.exited:
		if c.err != nil {
			return fmt.Errorf("%s: %w", c.name, c.err)
		}
		return nil
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not exit within %v and was killed", c.name, timeout)
	}
}
