package kit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// DefaultNATSServer is where Debian's nats-server package installs the server.
const DefaultNATSServer = "/usr/sbin/nats-server"

// ErrNoNATSServer is returned by StartNATS when the nats-server binary is missing.
var ErrNoNATSServer = errors.New("no nats-server binary (Debian package nats-server)")

// NATSConfig says how to start a nats-server for a cluster under test.
type NATSConfig struct {
	// Bin is the nats-server binary. Default DefaultNATSServer, else the one on PATH.
	Bin string
	// Dir is JetStream's store directory (-sd). Required.
	Dir string
	// Out receives the server's stdout and stderr. Default: discarded.
	Out io.Writer
}

// NATS is a nats-server process under test.
type NATS struct {
	cmd *exec.Cmd
	// URL is its client URL, nats://127.0.0.1:port.
	URL    string
	exited chan struct{}
}

// StartNATS runs a nats-server with JetStream on a free loopback port and waits until
// it accepts connections. The kernel kills it if this process dies.
func StartNATS(ctx context.Context, cfg NATSConfig) (*NATS, error) {
	bin := cfg.Bin
	if bin == "" {
		bin = DefaultNATSServer
		if _, err := os.Stat(bin); err != nil {
			p, err := exec.LookPath("nats-server")
			if err != nil {
				return nil, fmt.Errorf("%w: not at %s nor on PATH", ErrNoNATSServer, DefaultNATSServer)
			}
			bin = p
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoNATSServer, err)
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(ports[0])
	cmd := exec.Command(bin, "-js", "-sd", cfg.Dir, "-a", host, "-p", port)
	cmd.Stdout, cmd.Stderr = cfg.Out, cfg.Out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", bin, err)
	}
	n := &NATS{cmd: cmd, URL: "nats://" + ports[0], exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(n.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ports[0], time.Second)
		if err == nil {
			c.Close()
			return n, nil
		}
		select {
		case <-n.exited:
			return nil, fmt.Errorf("nats-server exited at startup (%v)", cmd.ProcessState)
		case <-ctx.Done():
			n.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.Stop()
			return nil, fmt.Errorf("nats-server not listening on %s within 30s: %v", ports[0], err)
		}
	}
}

// PID returns the server's process id.
func (n *NATS) PID() int { return n.cmd.Process.Pid }

// Stop asks the server to exit (SIGTERM) and kills it if it has not within 10 s.
func (n *NATS) Stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}
