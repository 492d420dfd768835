package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server/webhook"
)

// The webhook flags build a Sender only with a URL and a long enough secret.
func TestWebhookSettings(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(" webhook-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(name string, w webhookSettings, env map[string]string, wantSender bool, wantErr string) {
		t.Helper()
		st := settings{webhookSettings: w}
		s, err := webhookSender(&st, testkit.Logger(), func(k string) string { return env[k] })
		switch {
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("%s: err = %v, want %q", name, err, wantErr)
		case wantErr == "" && err != nil:
			t.Fatalf("%s: %v", name, err)
		case (s != nil) != wantSender || (st.observer != nil) != wantSender:
			t.Fatalf("%s: sender %v, observer %v; want one: %v", name, s, st.observer, wantSender)
		}
		if s != nil {
			s.Close(testkit.Context(t, 5*time.Second))
		}
	}
	const url = "http://127.0.0.1:1/hook"
	env := map[string]string{"TETHER_WEBHOOK_SECRET": " env-secret-0123456789 "}
	f("off", webhookSettings{webhookEvents: true}, env, false, "")
	f("env secret", webhookSettings{webhookURL: url, webhookEvents: true}, env, true, "")
	f("secret file", webhookSettings{webhookURL: url, webhookEvents: true, webhookSecretFile: secretFile}, nil, true, "")
	f("missing file", webhookSettings{webhookURL: url, webhookEvents: true, webhookSecretFile: secretFile + ".nope"}, nil, false, "cannot read -webhook-secret-file")
	f("no secret", webhookSettings{webhookURL: url, webhookEvents: true}, nil, false, "needs a secret")
	f("short secret", webhookSettings{webhookURL: url, webhookEvents: true}, map[string]string{"TETHER_WEBHOOK_SECRET": "short"}, false, "shorter than 16 bytes")
	f("bad URL", webhookSettings{webhookURL: "127.0.0.1/hook", webhookEvents: true}, env, false, "http or https")
	f("nothing to post", webhookSettings{webhookURL: url}, env, false, "would post nothing")
	f("routes only", webhookSettings{webhookURL: url, webhookRoutes: "chat, notify"}, env, true, "")
	f("negative queue", webhookSettings{webhookURL: url, webhookEvents: true, webhookQueue: -1}, env, false, "negative")
}

// tetherd refuses webhooks without the control port that carries them.
func TestRunRefusesWebhooksWithoutControl(t *testing.T) {
	var out testkit.LockedBuffer
	code := run([]string{"-dev", "-addr", "127.0.0.1:0", "-admin", "-", "-ws-addr", "-", "-control", "-", "-http-addr", "-", "-webhook-url", "http://127.0.0.1:1/"},
		io.Discard, &out, func(k string) string {
			if k == "TETHER_WEBHOOK_SECRET" {
				return "webhook-secret-0123456789"
			}
			return ""
		})
	if code != 2 || !strings.Contains(out.String(), "needs the control port") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}

// With -webhook-url, a client's login and its drain at SIGTERM reach the receiver,
// signed; /metrics carries the webhook series.
func TestRunWebhooks(t *testing.T) {
	const secret = "webhook-secret-0123456789"
	var mu sync.Mutex
	var got []webhook.Event
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header, body, 0); err != nil {
			t.Errorf("Verify: %v", err)
		}
		var ev webhook.Event
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}))
	defer rcv.Close()
	events := func() []webhook.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]webhook.Event(nil), got...)
	}
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	addr, admin := free(), free()
	var out testkit.LockedBuffer
	done := make(chan int, 1)
	go func() {
		env := func(k string) string {
			if k == "TETHER_WEBHOOK_SECRET" {
				return secret
			}
			return ""
		}
		done <- run([]string{"-dev", "-addr", addr, "-ws-addr", "-", "-admin", admin, "-control", "127.0.0.1:0",
			"-http-addr", "-", "-drain-timeout", "5s", "-drain-spread", "100ms", "-webhook-url", rcv.URL + "/hook"}, &out, &out, env)
	}()
	var c net.Conn
	testkit.WaitFor(t, "tetherd listening", func() bool {
		var err error
		c, err = net.Dial("tcp", addr)
		return err == nil
	})
	defer c.Close()
	fc := testkit.NewFrameConn(t, c)
	hello, _ := (&protocol.Hello{Token: "alice"}).AppendFrame(nil, 1, 0)
	fc.Write(hello)
	if f, err := fc.Next(10 * time.Second); err != nil || f.Op != protocol.OpAuthOK {
		t.Fatalf("got %v %v, want AUTH_OK\n%s", f.Op, err, out.String())
	}
	testkit.WaitFor(t, "online event", func() bool { return len(events()) >= 1 })
	if ev := events()[0]; ev.Type != "online" || ev.User != "alice" {
		t.Fatalf("event %+v", ev)
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `tether_webhook_deliveries_total{result="ok"} 1`) {
		t.Errorf("/metrics lacks the webhook deliveries:\n%s", body)
	}
	testkit.Promtool(t, string(body))
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	if f, err := fc.Next(10 * time.Second); err != nil || f.Op != protocol.OpGoAway {
		t.Fatalf("got %v %v, want GOAWAY", f.Op, err)
	}
	c.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("tetherd did not exit after drain")
	}
	// The offline event was delivered before tetherd exited.
	if evs := events(); len(evs) != 2 || evs[1].Type != "offline" || evs[1].User != "alice" {
		t.Fatalf("events %+v, want online then offline", evs)
	}
}
