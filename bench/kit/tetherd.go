package kit

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// TetherdConfig says how to start a tetherd under test.
type TetherdConfig struct {
	// Bin is the tetherd binary. Required.
	Bin string
	// Heartbeat is the interval tetherd announces. Default: tetherd's.
	Heartbeat time.Duration
	// Control opens the control port (no secret: -dev on loopback).
	Control bool
	// Out receives tetherd's stdout and stderr. Default: discarded.
	Out io.Writer
	// Transport adds the listener of that transport (-tls-addr, -ws-addr or
	// -wss-addr) beside the raw TCP one, and makes it Tetherd.Addr. Default
	// TransportTCP: the raw TCP listener only.
	Transport Transport
	// Cert is the certificate tls and wss serve (-tls-cert, -tls-key). Required
	// for those.
	Cert Cert
	// Args are further tetherd flags, after the others (-nats URL -nats-name NAME
	// for a node of a cluster).
	Args []string
}

// transportArgs returns tetherd's flags for a listener of t on addr.
func transportArgs(t Transport, addr string, cert Cert) ([]string, error) {
	// -dev opens a WebSocket listener on a fixed port unless told otherwise
	// ("-ws-addr -"): tetherds run side by side must not fight over it.
	var args []string
	switch t {
	case TransportTCP:
		return []string{"-ws-addr", "-"}, nil
	case TransportTLS:
		args = []string{"-tls-addr", addr, "-ws-addr", "-"}
	case TransportWS:
		args = []string{"-ws-addr", addr, "-ws-origins", "*"}
	case TransportWSS:
		args = []string{"-wss-addr", addr, "-ws-addr", "-", "-ws-origins", "*"}
	default:
		return nil, fmt.Errorf("%w: %q", ErrTransport, t)
	}
	if t.Secure() {
		if cert.CertFile == "" || cert.KeyFile == "" {
			return nil, fmt.Errorf("tetherd over %s needs a certificate and key", t)
		}
		args = append(args, "-tls-cert", cert.CertFile, "-tls-key", cert.KeyFile)
	}
	return args, nil
}

// Tetherd is a tetherd process under test.
type Tetherd struct {
	cmd *exec.Cmd
	// Addr, Admin and Control are its client port for TetherdConfig.Transport,
	// admin listener and control port (empty unless TetherdConfig.Control), all
	// host:port on loopback; TCPAddr is its raw TCP client port.
	Addr, Admin, Control, TCPAddr string
	exited                        chan struct{}
}

// StartTetherd runs cfg.Bin on free loopback ports in development mode (any token is
// its user id), with the per-IP and connect-rate limits lifted because every
// connection comes from a handful of loopback addresses, and waits until its
// /healthz answers. The kernel kills it if this process dies.
func StartTetherd(ctx context.Context, cfg TetherdConfig) (*Tetherd, error) {
	ports, err := FreePorts(4)
	if err != nil {
		return nil, err
	}
	args := []string{"-dev", "-addr", ports[0], "-admin", ports[1], "-max-conns-per-ip", "-1", "-connect-rate", "-1",
		"-max-conns", "100000", "-log-level", "warn", "-drain-timeout", "1s", "-http-addr", "-"}
	targs, err := transportArgs(cfg.Transport.Or(), ports[3], cfg.Cert)
	if err != nil {
		return nil, err
	}
	args = append(args, targs...)
	if cfg.Heartbeat > 0 {
		args = append(args, "-heartbeat", cfg.Heartbeat.String())
	}
	control := "-"
	if cfg.Control {
		control = ports[2]
	}
	args = append(args, "-control", control)
	args = append(args, cfg.Args...)
	cmd := exec.Command(cfg.Bin, args...)
	cmd.Stdout, cmd.Stderr = cfg.Out, cfg.Out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", cfg.Bin, err)
	}
	t := &Tetherd{cmd: cmd, Addr: ports[0], TCPAddr: ports[0], Admin: ports[1], exited: make(chan struct{})}
	if cfg.Transport.Or() != TransportTCP {
		t.Addr = ports[3]
	}
	if cfg.Control {
		t.Control = ports[2]
	}
	go func() {
		_ = cmd.Wait()
		close(t.exited)
	}()
	hc := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get("http://" + t.Admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return t, nil
			}
		}
		select {
		case <-t.exited:
			return nil, fmt.Errorf("tetherd exited at startup (%v); flags %q", cmd.ProcessState, args)
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Stop()
			return nil, fmt.Errorf("tetherd not healthy on %s within 30s: %v", t.Admin, err)
		}
	}
}

// PID returns tetherd's process id.
func (t *Tetherd) PID() int { return t.cmd.Process.Pid }

// Exited is closed when tetherd has exited.
func (t *Tetherd) Exited() <-chan struct{} { return t.exited }

// Stop asks tetherd to drain and exit (SIGTERM) and kills it if it has not within
// 10 s.
func (t *Tetherd) Stop() {
	_ = t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.exited:
	case <-time.After(10 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.exited
	}
}

// FreePorts returns n loopback addresses whose ports were free a moment ago. Another
// process could take one before the server binds it; the server then fails to start,
// loudly.
func FreePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		lns = append(lns, ln)
		out = append(out, "127.0.0.1:"+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	return out, nil
}

// FetchProfile saves a CPU profile of seconds from the admin listener's
// /debug/pprof/profile to path.
func FetchProfile(ctx context.Context, admin, path string, seconds int) error {
	hc := http.Client{Timeout: time.Duration(seconds+30) * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot fetch CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CPU profile: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("cannot read CPU profile: %w", err)
	}
	return writeFile(path, b)
}

// Settle forces a GC in a tetherd from outside (a heap profile taken after one) and has
// it return its free pages to the OS (POST /debug/scavenge), as the in-process targets
// do with runtime/debug.FreeOSMemory, so every implementation's RSS is read the same
// way.
func Settle(ctx context.Context, admin string) error {
	if err := FetchHeap(ctx, admin, io.Discard); err != nil {
		return err
	}
	hc := http.Client{Timeout: time.Minute}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+admin+"/debug/scavenge", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot scavenge tetherd: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("tetherd scavenge: %s", resp.Status)
	}
	return nil
}

// FetchHeap writes to w a heap profile from the admin listener's
// /debug/pprof/heap?gc=1, which runs a garbage collection first: how a GC is forced
// in a tetherd from outside.
func FetchHeap(ctx context.Context, admin string, w io.Writer) error {
	hc := http.Client{Timeout: time.Minute}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot get tetherd heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("tetherd heap profile: %s", resp.Status)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("cannot read tetherd heap profile: %w", err)
	}
	return nil
}
