package memtest

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

// child is a serve or load process started by the orchestrator.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	// lines receives the child's protocol lines; it is closed when its stdout ends.
	lines chan line
	// readers counts the goroutines copying stdout and stderr, which must finish
	// before cmd.Wait.
	readers sync.WaitGroup
	waitErr chan error
}

// startChild starts exe with args. Its protocol lines go to the lines channel; other
// stdout and all stderr lines are copied to log prefixed with the child's name. The
// child is killed if ctx ends first, and by the kernel if this process dies.
func startChild(ctx context.Context, name, exe string, args, env []string, log io.Writer) (*child, error) {
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
	c := &child{name: name, cmd: cmd, stdin: stdin, lines: make(chan line, 64), waitErr: make(chan error, 1)}
	lw := &lineWriter{w: log}
	c.readers.Add(2)
	go func() {
		defer c.readers.Done()
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l, ok := parseLine(sc.Text()); ok {
				c.lines <- l
			} else {
				lw.raw("[" + name + "] " + sc.Text())
			}
		}
	}()
	go func() {
		defer c.readers.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lw.raw("[" + name + "] " + sc.Text())
		}
	}()
	go func() {
		c.readers.Wait()
		c.waitErr <- cmd.Wait()
	}()
	return c, nil
}

// send writes one command line to the child's stdin.
func (c *child) send(cmd string) error {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return fmt.Errorf("cannot send %q to %s: %w", cmd, c.name, err)
	}
	return nil
}

// await returns the next line of one of kinds, skipping others; an "error" line, the
// child's exit or the timeout is an error.
func (c *child) await(timeout time.Duration, kinds ...string) (line, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return line{}, fmt.Errorf("%s: no %v line within %v", c.name, kinds, timeout)
		case l, ok := <-c.lines:
			if !ok {
				return line{}, fmt.Errorf("%s exited while waiting for %v", c.name, kinds)
			}
			if l.kind == "error" {
				return line{}, fmt.Errorf("%s: %s: %s", c.name, l.fields["cmd"], l.fields["err"])
			}
			for _, k := range kinds {
				if l.kind == k {
					return l, nil
				}
			}
		}
	}
}

// stop closes the child's stdin, which asks it to exit, and waits up to timeout
// before killing it. It returns the child's exit error, if any.
func (c *child) stop(timeout time.Duration) error {
	_ = c.stdin.Close()
	go func() {
		for range c.lines { // keep draining so the child never blocks on stdout
		}
	}()
	select {
	case err := <-c.waitErr:
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		return nil
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.waitErr
		return fmt.Errorf("%s did not exit within %v and was killed", c.name, timeout)
	}
}
