package faults

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tether-gw/tether/bench/kit"
)

// daemon is a tetherd process under measurement.
type daemon struct {
	cmd                  *exec.Cmd
	Addr, Admin, Control string
	exited               chan struct{}
}

// daemonConfig says how to start a tetherd.
type daemonConfig struct {
	Bin string
	// Addr is the client port's address; empty means a free loopback port.
	Addr string
	// Control opens the control port on a free loopback port.
	Control bool
	// NoFile, when positive, runs tetherd under prlimit --nofile=NoFile.
	NoFile int
	// Args are further tetherd flags.
	Args []string
	// Out receives tetherd's stdout and stderr (its log). Default: discarded.
	Out io.Writer
}

// startDaemon starts tetherd on free loopback ports and waits for its /healthz.
func startDaemon(ctx context.Context, cfg daemonConfig) (*daemon, error) {
	ports, err := kit.FreePorts(3)
	if err != nil {
		return nil, err
	}
	d := &daemon{Addr: cfg.Addr, Admin: ports[1], exited: make(chan struct{})}
	if d.Addr == "" {
		d.Addr = ports[0]
	}
	control := "-"
	if cfg.Control {
		control, d.Control = ports[2], ports[2]
	}
	args := append([]string{"-addr", d.Addr, "-admin", d.Admin, "-control", control, "-drain-timeout", "1s"}, cfg.Args...)
	bin := cfg.Bin
	if cfg.NoFile > 0 {
		args = append([]string{"--nofile=" + strconv.Itoa(cfg.NoFile), "--", bin}, args...)
		bin = "prlimit"
	}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = cfg.Out, cfg.Out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", bin, err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.exited)
	}()
	hc := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get("http://" + d.Admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("tetherd exited at startup (%v); args %q", d.cmd.ProcessState, args)
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("tetherd not healthy on %s within 30s: %v", d.Admin, err)
		}
	}
}

// stop sends SIGTERM and kills tetherd if it has not exited within 10 s.
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// metricsClient fetches /metrics; one client keeps its connection alive.
var metricsClient = http.Client{Timeout: 5 * time.Second}

// metric returns the sum of every sample of the metric name (all label sets) whose
// labels contain match ("" matches all), from the admin listener's /metrics.
func (d *daemon) metric(name, match string) (float64, error) {
	resp, err := metricsClient.Get("http://" + d.Admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if match != "" && !strings.Contains(rest, match) {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// jwtSecret is the HS256 secret every measurement's tetherd verifies tokens with.
const jwtSecret = "bench-jwt-secret-0123456789abcdef0123456789"

// floodTarget is what the flood measurements share: the tetherd binary, the directory
// for its secrets and log, and further tetherd flags.
type floodTarget struct {
	Tetherd string
	Dir     string
	// Args are further tetherd flags.
	Args string
}

// bind registers the shared flags.
func (t *floodTarget) bind(fs *flag.FlagSet) {
	fs.StringVar(&t.Tetherd, "tetherd", "", "The tetherd binary. Required.")
	fs.StringVar(&t.Dir, "dir", "", "Directory for the secrets and tetherd's log; default a new temporary one, removed after.")
	fs.StringVar(&t.Args, "tetherd-args", "", "Further tetherd flags, space-separated, e.g. \"-flap-threshold -1\".")
}

// workspace is a measurement's directory with tetherd's JWT and control secrets in it.
type workspace struct {
	dir, jwt, control string // the directory and the two secret files
}

// newWorkspace checks that a tetherd binary was given, and prepares dir (or a new
// temporary directory, removed by cleanup) with the JWT and control secrets.
func newWorkspace(tetherd, dir string) (ws workspace, cleanup func(), err error) {
	if tetherd == "" {
		return ws, nil, errors.New("-tetherd is required")
	}
	if ws.dir, cleanup, err = workDir(dir); err != nil {
		return ws, nil, err
	}
	if ws.jwt, err = writeSecret(ws.dir, "jwt.secret", jwtSecret); err == nil {
		ws.control, err = writeSecret(ws.dir, "control.secret", controlSecret)
	}
	if err != nil {
		cleanup()
		return ws, nil, err
	}
	return ws, cleanup, nil
}

// writeSecret writes secret to a new file under dir and returns its path.
func writeSecret(dir, name, secret string) (string, error) {
	p := dir + "/" + name
	return p, os.WriteFile(p, []byte(secret+"\n"), 0o600)
}

// describe returns the server's refusal and close counters, for an error message.
func (d *daemon) describe() string {
	resp, err := metricsClient.Get("http://" + d.Admin + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if (strings.HasPrefix(l, "tether_connections_refused_total") || strings.HasPrefix(l, "tether_closes_total") || strings.HasPrefix(l, "tether_protocol_errors_total") || strings.HasPrefix(l, "tether_auth_failures_total") || strings.HasPrefix(l, "tether_accept")) && !strings.HasSuffix(l, " 0") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}
