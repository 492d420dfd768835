package control

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
)

func TestOptionsValidation(t *testing.T) {
	f := func(name string, o Options, want string) {
		t.Helper()
		_, err := New(o)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Fatalf("%s: err = %v, want %q", name, err, want)
		}
	}
	f("no secret", Options{}, "Secret is required")
	f("secret and insecure", Options{Secret: "x", Insecure: true}, "exclude each other")
	f("tiny max frame", Options{Secret: "x", MaxFrame: 100}, "MaxFrame")
	f("negative timeout", Options{Secret: "x", WriteTimeout: -1}, "negative")
	f("defaults", Options{Secret: "x"}, "")
	// Off loopback the secret needs MinSecretLen bytes; on loopback any length will do.
	f("short secret, public", Options{Secret: "fifteen-bytes!!", Addr: "0.0.0.0:7001"}, "shorter than 16 bytes")
	f("short secret, every interface", Options{Secret: "x", Addr: ":7001"}, "shorter than 16 bytes")
	f("long secret, public", Options{Secret: "sixteen-bytes!!!", Addr: "0.0.0.0:7001"}, "")
	f("short secret, ipv6 loopback", Options{Secret: "x", Addr: "[::1]:7001"}, "")
	f("negative unauthenticated cap", Options{Secret: "x", MaxUnauthenticated: -1}, "negative")
	f("lock-out max below lock-out", Options{Secret: "x", AuthLockout: time.Minute, AuthLockoutMax: time.Second}, "AuthLockoutMax")
	f("throttle disabled", Options{Secret: "x", MaxAuthFailures: -1}, "")
	f("insecure", Options{Insecure: true}, "")
}

func TestStartErrors(t *testing.T) {
	g := startGateway(t, nil)
	if err := g.port.Start(g.srv); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
	p, _ := New(Options{Insecure: true, Addr: "0.0.0.0:0"})
	if err := p.Start(g.srv); !errors.Is(err, ErrInsecureAddr) {
		t.Fatalf("insecure public Start = %v, want ErrInsecureAddr", err)
	}
	p.Close()
	if err := p.Start(g.srv); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
	// An insecure loopback port accepts any secret, including none.
	p, _ = New(Options{Insecure: true, Addr: "127.0.0.1:0", Logger: testLogger()})
	if err := p.Start(g.srv); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	svc, err := service.Dial(context.Background(), p.Addr().String(), service.Options{})
	if err != nil {
		t.Fatalf("insecure port refused an empty secret: %v", err)
	}
	svc.Close()
}
