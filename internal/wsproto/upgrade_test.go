package wsproto

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// request builds a request head from a request line and header lines.
func request(line string, headers ...string) []byte {
	var b strings.Builder
	b.WriteString(line + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// good is a valid browser-like upgrade request without optional headers.
var goodHeaders = []string{
	"Host: gw.example.com",
	"Upgrade: websocket",
	"Connection: Upgrade",
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
	"Sec-WebSocket-Version: 13",
}

func goodRequest(extra ...string) []byte {
	return request("GET /ws?token=abc HTTP/1.1", append(append([]string{}, goodHeaders...), extra...)...)
}

// without returns goodHeaders minus the header named name.
func without(name string) []string {
	var out []string
	for _, h := range goodHeaders {
		if !strings.HasPrefix(h, name+":") {
			out = append(out, h)
		}
	}
	return out
}

// readResponse parses resp as the HTTP response to a GET.
func readResponse(t *testing.T, resp []byte) (*http.Response, string) {
	t.Helper()
	r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(resp)), &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("response does not parse: %v\n%s", err, resp)
	}
	body, _ := io.ReadAll(r.Body)
	return r, string(body)
}

func TestUpgradeAccepts(t *testing.T) {
	req := goodRequest("Origin: https://gw.example.com", "X-Forwarded-For: 10.0.0.1, 10.0.0.2", "X-Real-IP: 10.0.0.9",
		"Sec-WebSocket-Protocol: other, tether.v1")
	frames := []byte{0x82, 0x80, 1, 2, 3, 4} // a client frame pipelined behind the head
	n, resp, info, err := Upgrade(append(append([]byte{}, req...), frames...), nil)
	if err != nil {
		t.Fatalf("refused: %v\n%s", err, resp)
	}
	if n != len(req) {
		t.Fatalf("n = %d, want the head's length %d", n, len(req))
	}
	r, _ := readResponse(t, resp)
	if r.StatusCode != 101 || r.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("bad 101: %s", resp)
	}
	if r.Header.Get("Sec-WebSocket-Protocol") != "tether.v1" || r.Header.Get("Sec-WebSocket-Extensions") != "" {
		t.Fatalf("bad negotiation: %s", resp)
	}
	want := Info{Path: "/ws", RawQuery: "token=abc", Subprotocol: "tether.v1", Host: "gw.example.com",
		Origin: "https://gw.example.com", XForwardedFor: "10.0.0.1, 10.0.0.2", XRealIP: "10.0.0.9"}
	if info != want {
		t.Fatalf("info = %+v, want %+v", info, want)
	}
}

// TestUpgradeEveryPrefix: every strict prefix of a complete head asks for
// more bytes, and the whole head is consumed exactly, whatever follows.
func TestUpgradeEveryPrefix(t *testing.T) {
	req := goodRequest("Sec-WebSocket-Protocol: tether.v1")
	for i := 0; i < len(req); i++ {
		n, resp, _, err := Upgrade(req[:i], nil)
		if n != 0 || resp != nil || err != nil {
			t.Fatalf("prefix %d: n=%d err=%v resp=%q, want n=0", i, n, err, resp)
		}
	}
	for _, tail := range []string{"", "\x82", "GET / HTTP/1.1\r\n\r\n"} {
		n, _, info, err := Upgrade(append(append([]byte{}, req...), tail...), nil)
		if err != nil || n != len(req) || info.Subprotocol != "tether.v1" {
			t.Fatalf("tail %q: n=%d err=%v info=%+v", tail, n, err, info)
		}
	}
}

func TestUpgradeRefusals(t *testing.T) {
	long := "X-Pad: " + strings.Repeat("a", DefaultMaxHeaderBytes)
	cases := []struct {
		name   string
		cfg    *UpgradeConfig
		req    []byte
		status int
	}{
		{"POST", nil, request("POST /ws HTTP/1.1", goodHeaders...), 405},
		{"HTTP/1.0", nil, request("GET /ws HTTP/1.0", goodHeaders...), 400},
		{"garbage request line", nil, request("hello"), 400},
		{"wrong path", nil, request("GET /other HTTP/1.1", goodHeaders...), 404},
		{"path prefix is not the path", nil, request("GET /ws/x HTTP/1.1", goodHeaders...), 404},
		{"custom path", &UpgradeConfig{Path: "/live"}, goodRequest(), 404},
		{"no Host", nil, request("GET /ws HTTP/1.1", without("Host")...), 400},
		{"no Upgrade (plain GET)", nil, request("GET /ws HTTP/1.1", without("Upgrade")...), 426},
		{"Upgrade: h2c", nil, request("GET /ws HTTP/1.1", append(without("Upgrade"), "Upgrade: h2c")...), 426},
		{"no Connection", nil, request("GET /ws HTTP/1.1", without("Connection")...), 400},
		{"Connection: keep-alive", nil, request("GET /ws HTTP/1.1", append(without("Connection"), "Connection: keep-alive")...), 400},
		{"no key", nil, request("GET /ws HTTP/1.1", without("Sec-WebSocket-Key")...), 400},
		{"short key", nil, request("GET /ws HTTP/1.1", append(without("Sec-WebSocket-Key"), "Sec-WebSocket-Key: abc")...), 400},
		{"key not base64", nil, request("GET /ws HTTP/1.1", append(without("Sec-WebSocket-Key"), "Sec-WebSocket-Key: ************************")...), 400},
		{"no version", nil, request("GET /ws HTTP/1.1", without("Sec-WebSocket-Version")...), 400},
		{"version 8", nil, request("GET /ws HTTP/1.1", append(without("Sec-WebSocket-Version"), "Sec-WebSocket-Version: 8")...), 426},
		{"header without colon", nil, goodRequest("nonsense"), 400},
		{"head too large", nil, goodRequest(long), 431},
		{"head too large for a small limit", &UpgradeConfig{MaxHeaderBytes: 100}, goodRequest(), 431},
		{"subprotocol mismatch", nil, goodRequest("Sec-WebSocket-Protocol: chat, superchat"), 400},
		{"cross origin", nil, goodRequest("Origin: https://evil.example"), 403},
		{"origin null", nil, goodRequest("Origin: null"), 403},
		{"origin not in list", &UpgradeConfig{AllowedOrigins: []string{"https://app.example.com"}}, goodRequest("Origin: https://gw.example.com"), 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, resp, info, err := Upgrade(tc.req, tc.cfg)
			var ue *UpgradeError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want *UpgradeError\n%s", err, resp)
			}
			if ue.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", ue.Status, ue.Reason, tc.status)
			}
			if n <= 0 || n > len(tc.req) {
				t.Fatalf("n = %d for a %d-byte request", n, len(tc.req))
			}
			if info != (Info{}) {
				t.Fatalf("refusal carries info %+v", info)
			}
			r, body := readResponse(t, resp)
			if r.StatusCode != tc.status || !r.Close || body != ue.Reason+"\n" || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Fatalf("bad refusal response:\n%s", resp)
			}
			if tc.status == 426 && (r.Header.Get("Sec-WebSocket-Version") != "13" || r.Header.Get("Upgrade") != "websocket") {
				t.Fatalf("426 without Upgrade/Sec-WebSocket-Version:\n%s", resp)
			}
			if tc.status == 405 && r.Header.Get("Allow") != "GET" {
				t.Fatalf("405 without Allow:\n%s", resp)
			}
		})
	}
}

// TestUpgradeSlowloris: a head that never ends is waited for (n == 0) only
// until MaxHeaderBytes are buffered, then refused 431, never buffered forever.
func TestUpgradeSlowloris(t *testing.T) {
	buf := []byte("GET /ws HTTP/1.1\r\nX-Drip: ")
	for len(buf) < DefaultMaxHeaderBytes-1 {
		buf = append(buf, 'a')
	}
	if n, _, _, err := Upgrade(buf, nil); n != 0 || err != nil {
		t.Fatalf("below the limit: n=%d err=%v, want wait", n, err)
	}
	buf = append(buf, 'a', 'a', 'a')
	n, resp, _, err := Upgrade(buf, nil)
	var ue *UpgradeError
	if !errors.As(err, &ue) || ue.Status != 431 || n == 0 {
		t.Fatalf("at the limit: n=%d err=%v resp=%q, want 431", n, err, resp)
	}
}

func TestUpgradeOrigins(t *testing.T) {
	cases := []struct {
		allowed []string
		origin  string // "" sends no Origin
		ok      bool
	}{
		{nil, "", true},                            // not a browser
		{nil, "https://gw.example.com", true},      // same origin
		{nil, "https://GW.example.com", true},      // hosts compare case-insensitively
		{nil, "http://gw.example.com:8080", false}, // port differs from Host
		{nil, "https://other.example", false},
		{[]string{"*"}, "https://other.example", true},
		{[]string{"https://a.example", "https://app.example.com"}, "https://app.example.com", true},
		{[]string{"https://app.example.com"}, "http://app.example.com", false}, // scheme matters
		{[]string{"https://app.example.com"}, "", true},
	}
	for _, tc := range cases {
		var extra []string
		if tc.origin != "" {
			extra = append(extra, "Origin: "+tc.origin)
		}
		_, resp, _, err := Upgrade(goodRequest(extra...), &UpgradeConfig{AllowedOrigins: tc.allowed})
		if (err == nil) != tc.ok {
			t.Errorf("allowed %q origin %q: err = %v, want ok=%v\n%s", tc.allowed, tc.origin, err, tc.ok, resp)
		}
	}
}

func TestUpgradeSubprotocol(t *testing.T) {
	// No offer: accepted without a subprotocol.
	_, resp, info, err := Upgrade(goodRequest(), nil)
	if err != nil || info.Subprotocol != "" || bytes.Contains(resp, []byte("Sec-WebSocket-Protocol")) {
		t.Fatalf("no offer: err=%v info=%+v\n%s", err, info, resp)
	}
	// Offer across two header lines.
	_, _, info, err = Upgrade(goodRequest("Sec-WebSocket-Protocol: a", "Sec-WebSocket-Protocol: b, x.v2"), &UpgradeConfig{Subprotocol: "x.v2"})
	if err != nil || info.Subprotocol != "x.v2" {
		t.Fatalf("second line: err=%v info=%+v", err, info)
	}
}

func TestUpgradeCompression(t *testing.T) {
	offer := "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
	_, resp, info, err := Upgrade(goodRequest(offer), nil)
	if err != nil || info.Deflate || bytes.Contains(resp, []byte("deflate")) {
		t.Fatalf("compression off: err=%v info=%+v\n%s", err, info, resp)
	}
	_, resp, info, err = Upgrade(goodRequest(offer), &UpgradeConfig{Compression: true})
	if err != nil || !info.Deflate {
		t.Fatalf("compression on: err=%v info=%+v\n%s", err, info, resp)
	}
	r, _ := readResponse(t, resp)
	ext := r.Header.Get("Sec-WebSocket-Extensions")
	if !strings.Contains(ext, "permessage-deflate") || !strings.Contains(ext, "server_no_context_takeover") || !strings.Contains(ext, "client_no_context_takeover") {
		t.Fatalf("extension response %q", ext)
	}
	// An offer that limits our window is declined, not refused.
	_, _, info, err = Upgrade(goodRequest("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10"), &UpgradeConfig{Compression: true})
	if err != nil || info.Deflate {
		t.Fatalf("server_max_window_bits: err=%v info=%+v", err, info)
	}
	// Compression on but not offered.
	_, _, info, err = Upgrade(goodRequest(), &UpgradeConfig{Compression: true})
	if err != nil || info.Deflate {
		t.Fatalf("not offered: err=%v info=%+v", err, info)
	}
}

// TestUpgradeRealClient runs gobwas/ws' Dialer (which checks the accept key
// and the subprotocol) and a net/http-built request against Upgrade.
func TestUpgradeRealClient(t *testing.T) {
	cli, srv := net.Pipe()
	defer cli.Close()
	done := make(chan error, 1)
	go func() {
		defer srv.Close()
		var buf []byte
		chunk := make([]byte, 64) // small reads: the head arrives in pieces
		for {
			k, err := srv.Read(chunk)
			if err != nil {
				done <- err
				return
			}
			buf = append(buf, chunk[:k]...)
			n, resp, info, uerr := Upgrade(buf, &UpgradeConfig{Compression: true})
			if n == 0 && uerr == nil {
				continue
			}
			if _, err := srv.Write(resp); err != nil {
				done <- err
				return
			}
			if uerr == nil && (info.Subprotocol != "tether.v1" || info.RawQuery != "t=1") {
				uerr = errors.New("info " + info.Subprotocol + " " + info.RawQuery)
			}
			done <- uerr
			return
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := ws.Dialer{
		Protocols: []string{"tether.v1"},
		NetDial:   func(context.Context, string, string) (net.Conn, error) { return cli, nil },
	}
	_, _, hs, err := d.Dial(ctx, "ws://gw.example.com/ws?t=1")
	if err != nil {
		t.Fatalf("dialer: %v", err)
	}
	if hs.Protocol != "tether.v1" {
		t.Fatalf("dialer negotiated %q", hs.Protocol)
	}
	if err := <-done; err != nil {
		t.Fatalf("server side: %v", err)
	}

	// net/http's own request writer.
	req, _ := http.NewRequest(http.MethodGet, "http://gw.example.com/ws", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Origin", "http://gw.example.com")
	var b bytes.Buffer
	if err := req.Write(&b); err != nil {
		t.Fatal(err)
	}
	n, resp, _, err := Upgrade(b.Bytes(), nil)
	if err != nil || n != b.Len() {
		t.Fatalf("net/http request: n=%d/%d err=%v\n%s", n, b.Len(), err, resp)
	}
}
