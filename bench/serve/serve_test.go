package serve

import (
	"bufio"
	"context"
	"flag"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/msg"
	"github.com/tether-gw/tether/protocol"
)

// TestArgsRoundTrip parses what Args renders with Flags.
func TestArgsRoundTrip(t *testing.T) {
	f := func(cfg Config) {
		t.Helper()
		args := Args(cfg)
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var got Config
		Flags(fs, &got)
		if args[0] != CommandName || fs.Parse(args[1:]) != nil || got != cfg {
			t.Errorf("Args(%+v) = %q, parsed back as %+v", cfg, args, got)
		}
	}
	// tether-memtest's server.
	f(Config{Impl: ImplNetpoll, Addr: "127.0.0.1:0", Heartbeat: 5 * time.Second, MemProfileRate: 16 << 10, MaxLifetime: time.Minute})
	// tether-bench's embedded gateway.
	f(Config{Impl: ImplTether, Addr: "127.0.0.1:0", Heartbeat: time.Minute, Admin: true, Control: true, MaxLifetime: 3 * time.Minute})
	// The TLS baseline and tetherd over wss, with their certificate.
	f(Config{Impl: ImplBaseline, Addr: "127.0.0.1:0", Heartbeat: time.Minute, Transport: kit.TransportTLS, CertFile: "/w/cert.pem", KeyFile: "/w/key.pem", MaxLifetime: time.Minute})
	f(Config{Impl: ImplTetherd, Addr: "127.0.0.1:0", Heartbeat: time.Minute, Tetherd: "bin/tetherd", Transport: kit.TransportWSS, CertFile: "/w/cert.pem", KeyFile: "/w/key.pem", MaxLifetime: time.Minute})
}

// TestBaselineTransports serves the baseline on every transport and shows a client
// of the bench's (kit.TransportDialer, as the loaders dial) authenticates over it;
// the raw-TCP-only servers refuse the others.
func TestBaselineTransports(t *testing.T) {
	cert, err := kit.SelfSignedCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range kit.Transports {
		tg, err := start(Config{Impl: ImplBaseline, Addr: "127.0.0.1:0", Heartbeat: time.Minute, Transport: tr,
			CertFile: cert.CertFile, KeyFile: cert.KeyFile}.withDefaults())
		if err != nil {
			t.Fatalf("%s: %v", tr, err)
		}
		d, err := kit.ClientTransport{Transport: tr, CAFile: cert.CertFile}.NewDialer(&net.Dialer{})
		if err != nil {
			t.Fatal(err)
		}
		handshakeOver(t, d, tg.listening().Addr, false)
		tg.close()
	}
	if _, err := start(Config{Impl: ImplNetpoll, Transport: kit.TransportWS}.withDefaults()); err == nil {
		t.Error("netpoll over ws was accepted")
	}
}

// TestServeCommands runs every in-process implementation, checks that it listens
// where it says, and drives the stats, gc, heap and quit commands.
func TestServeCommands(t *testing.T) {
	for _, impl := range []string{ImplTether, ImplBaseline, ImplBare, ImplNetpoll} {
		t.Run(impl, func(t *testing.T) {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			done := make(chan error, 1)
			go func() {
				done <- Serve(Config{Impl: impl, Admin: impl == ImplTether, Control: impl == ImplTether, MaxLifetime: time.Minute}, inR, outW)
				outW.Close()
			}()
			sc := bufio.NewScanner(outR)
			next := func(kind string) msg.Event {
				t.Helper()
				for sc.Scan() {
					if ev, ok := msg.ParseEvent(sc.Bytes()); ok {
						if ev.Kind != kind {
							t.Fatalf("got event %+v, want %s", ev, kind)
						}
						return ev
					}
				}
				t.Fatalf("output ended before %s (%v)", kind, <-done)
				return msg.Event{}
			}
			send := func(line string) {
				t.Helper()
				if _, err := io.WriteString(inW, line+"\n"); err != nil {
					t.Fatal(err)
				}
			}
			ln := next("listening")
			if ln.Impl != impl || ln.PID <= 0 || ln.GOMAXPROCS <= 0 {
				t.Errorf("listening event %+v", ln)
			}
			if impl == ImplTether && (ln.Admin == "" || ln.Control == "") {
				t.Errorf("tether with -admin -control listens on admin %q, control %q", ln.Admin, ln.Control)
			}
			handshake(t, ln.Addr, impl == ImplBare)
			send(`{"op":"gc"}`)
			if ev := next("stats"); ev.Mem == nil || ev.Mem.HeapAlloc <= 0 {
				t.Errorf("stats after gc: %+v", ev.Mem)
			}
			path := t.TempDir() + "/heap.pb.gz"
			send(`{"op":"heap","path":"` + path + `"}`)
			if ev := next("heap"); ev.Path != path {
				t.Errorf("heap event %+v, want path %s", ev, path)
			}
			send(`{"op":"nonsense"}`)
			if ev := next("error"); ev.Err == "" {
				t.Errorf("unknown command answered with %+v", ev)
			}
			send(`{"op":"quit"}`)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve = %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Serve did not return after quit")
			}
			inW.Close()
		})
	}
}

// handshake dials addr, sends HELLO then PING in one write, and waits for AUTH_OK and
// PONG (for a bare echo server: the HELLO and PING themselves), which shows the
// server speaks the protocol where the listening event said.
func handshake(t *testing.T, addr string, bare bool) {
	t.Helper()
	d, err := kit.ClientTransport{}.NewDialer(&net.Dialer{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	handshakeOver(t, d, addr, bare)
}

// handshakeOver is handshake over d's transport.
func handshakeOver(t *testing.T, d *kit.TransportDialer, addr string, bare bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, addr)
	if err != nil {
		t.Fatalf("cannot dial the address the listening event gave: %v", err)
	}
	defer c.Close()
	b, err := (&protocol.Hello{Token: "u0-0", DeviceID: "test"}).AppendFrame(nil, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	b = protocol.AppendEmpty(b, protocol.OpPing, 2)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	want := []protocol.Opcode{protocol.OpAuthOK, protocol.OpPong}
	if bare {
		want = []protocol.Opcode{protocol.OpHello, protocol.OpPing}
	}
	var got []protocol.Opcode
	var dec protocol.Decoder
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for len(got) < len(want) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if err := dec.Decode(buf[:n], func(f protocol.Frame) error { got = append(got, f.Op); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// The order is not checked: the gateway answers a PING at once while the HELLO
	// is being authenticated elsewhere.
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("server answered %v, want %v", got, want)
	}
}
