package load

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process started by the orchestrator: a server or a loader.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	wmu   sync.Mutex
	// events receives the child's JSON lines; it is closed when its stdout ends.
	events  chan Event
	readers sync.WaitGroup
	waitErr chan error
	exited  chan struct{}
	err     error
}

// startChild starts exe with args. JSON lines on its stdout become events; other
// lines and its stderr go to log prefixed with the name. The kernel kills the child
// if this process dies, and ctx's end kills it too.
func startChild(ctx context.Context, name, exe string, args, env []string, log *logger) (*child, error) {
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
	c := &child{name: name, cmd: cmd, stdin: stdin, events: make(chan Event, 256),
		waitErr: make(chan error, 1), exited: make(chan struct{})}
	c.readers.Add(2)
	go func() {
		defer c.readers.Done()
		defer close(c.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20) // reports carry histograms
		for sc.Scan() {
			var ev Event
			if t := sc.Bytes(); len(t) > 0 && t[0] == '{' && json.Unmarshal(t, &ev) == nil && ev.Kind != "" {
				c.events <- ev
			} else {
				log.printf("[%s] %s", name, sc.Text())
			}
		}
	}()
	go func() {
		defer c.readers.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.printf("[%s] %s", name, sc.Text())
		}
	}()
	go func() {
		c.readers.Wait()
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// pid returns the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// send writes one command to the child's stdin.
func (c *child) send(cmd Command) error {
	b, _ := json.Marshal(cmd)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("cannot send %s to %s: %w", cmd.Op, c.name, err)
	}
	return nil
}

// await returns the next event of one of kinds, skipping others (progress events go
// to onProgress when it is set); an "error" event, the child's exit or the timeout is
// an error.
func (c *child) await(timeout time.Duration, onProgress func(Event), kinds ...string) (Event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return Event{}, fmt.Errorf("%s: no %s within %v", c.name, strings.Join(kinds, "/"), timeout)
		case ev, ok := <-c.events:
			if !ok {
				<-c.exited
				return Event{}, fmt.Errorf("%s exited while waiting for %s: %v", c.name, strings.Join(kinds, "/"), c.err)
			}
			if ev.Kind == "error" {
				return Event{}, fmt.Errorf("%s: %s", c.name, ev.Err)
			}
			if ev.Kind == "progress" && onProgress != nil {
				onProgress(ev)
			}
			for _, k := range kinds {
				if ev.Kind == k {
					return ev, nil
				}
			}
		}
	}
}

// stop closes the child's stdin, which asks it to exit, and kills it if it has not
// within timeout.
func (c *child) stop(timeout time.Duration) {
	c.wmu.Lock()
	_ = c.stdin.Close()
	c.wmu.Unlock()
	go func() {
		for range c.events { // keep draining so the child never blocks on stdout
		}
	}()
	select {
	case <-c.exited:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
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
