package control

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// Every way of failing AUTH closes the connection with a defined code and is counted.
func TestAuthFailures(t *testing.T) {
	g := startGateway(t, func(o *Options) { o.AuthTimeout = 300 * time.Millisecond })
	f := func(name string, send func(r *rawCtl), code protocol.CloseCode, reason string) {
		t.Helper()
		before := g.metric(`tether_control_auth_failures_total{reason="` + reason + `"}`)
		r := g.raw()
		send(r)
		r.expectClosed(code)
		if after := g.metric(`tether_control_auth_failures_total{reason="` + reason + `"}`); after != before+1 {
			t.Fatalf("%s: auth_failures{%s} went %v -> %v", name, reason, before, after)
		}
	}
	// wrong secret: terminal INVALID_TOKEN
	f("wrong secret", func(r *rawCtl) { r.send(OpAuth, 1, &wire.Auth{Secret: "guess"}, nil) }, protocol.CloseInvalidToken, "bad_secret")
	// a secret that shares a prefix with the real one is as wrong
	f("prefix secret", func(r *rawCtl) { r.send(OpAuth, 1, &wire.Auth{Secret: testSecret[:5]}, nil) }, protocol.CloseInvalidToken, "bad_secret")
	// no secret at all
	f("missing secret", func(r *rawCtl) { r.send(OpAuth, 1, nil, nil) }, protocol.CloseInvalidToken, "missing_secret")
	// anything before AUTH
	f("stats first", func(r *rawCtl) { r.send(OpStats, 1, nil, nil) }, protocol.CloseProtocolError, "no_auth")
	f("ping first", func(r *rawCtl) { r.write(protocol.AppendEmpty(nil, protocol.OpPing, 1)) }, protocol.CloseProtocolError, "no_auth")
	// AUTH whose JSON is broken
	f("malformed AUTH", func(r *rawCtl) {
		r.write(protocol.AppendFrame(nil, protocol.Header{Op: OpAuth, Seq: 1}, []byte{0, 3, '{', '"', 's'}))
	}, protocol.CloseProtocolError, "malformed")
	// a pre-auth frame above 4 KiB is refused from its length prefix alone
	f("oversized AUTH", func(r *rawCtl) { r.write(binary.BigEndian.AppendUint32(nil, 1<<20)) }, protocol.CloseFrameTooLarge, "protocol_error")
	// silence
	f("timeout", func(r *rawCtl) {}, protocol.CloseAuthTimeout, "timeout")

	// The SDK reports a refused secret as a terminal *CloseError.
	_, err := service.Dial(ctxTimeout(t, 5*time.Second), g.port.Addr().String(), service.Options{Secret: "nope"})
	var ce *service.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseInvalidToken || !ce.Terminal() {
		t.Fatalf("Dial with a wrong secret = %v, want CloseError INVALID_TOKEN", err)
	}
	if v := g.metric(`tether_control_closes_total{code="3500",reason="INVALID_TOKEN"}`); v != 4 {
		t.Fatalf("INVALID_TOKEN closes = %v, want 4", v)
	}
}

// Malformed requests are answered FAIL with the request's seq and a defined code; the
// connection stays usable.
func TestBadRequests(t *testing.T) {
	g := startGateway(t, nil)
	r := g.raw()
	r.auth()
	f := func(seq uint32, frame []byte, code protocol.ErrorCode) {
		t.Helper()
		r.write(frame)
		r.expectFail(seq, code)
	}
	frame := func(op protocol.Opcode, seq uint32, body []byte) []byte {
		return protocol.AppendFrame(nil, protocol.Header{Op: op, Seq: seq}, body)
	}
	js := func(s string) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...) }

	f(2, frame(OpPush, 2, js(`{"users":`)), protocol.ErrorBadRequest)                     // truncated JSON
	f(3, frame(OpPush, 3, js(`["alice"]`)), protocol.ErrorBadRequest)                     // not an object
	f(4, frame(OpPush, 4, js(`{"users":"alice"}`)), protocol.ErrorBadRequest)             // wrong type
	f(5, frame(OpPush, 5, []byte{0, 200, '{', '}'}), protocol.ErrorBadRequest)            // json_len past the body
	f(6, frame(OpPush, 6, []byte{0}), protocol.ErrorBadRequest)                           // no room for json_len
	f(7, frame(OpPush, 7, js(`{"users":["a"],"all":true}`)), protocol.ErrorBadRequest)    // two targets
	f(8, frame(OpPush, 8, js(`{"room":"r","qos":1}`)), protocol.ErrorBadRequest)          // qos on a room
	f(9, frame(OpKick, 9, js(`{}`)), protocol.ErrorBadRequest)                            // no target
	f(10, frame(0x7F, 10, nil), protocol.ErrorUnknownOpcode)                              // unassigned control opcode
	f(11, frame(OpResult, 11, nil), protocol.ErrorUnknownOpcode)                          // a gateway-to-service opcode
	f(12, frame(protocol.OpSend, 12, nil), protocol.ErrorUnknownOpcode)                   // a client-port opcode
	f(13, frame(0x80, 13, nil), protocol.ErrorUnknownOpcode)                              // extension range
	f(14, frame(OpAuth, 14, js(`{"secret":"`+testSecret+`"}`)), protocol.ErrorBadRequest) // AUTH twice
	f(15, frame(OpReply, 15, js(`{"id":`)), protocol.ErrorBadRequest)                     // malformed REPLY
	f(18, frame(OpStats, 18, []byte{0, 10, '{', '}'}), protocol.ErrorBadRequest)          // STATS: json_len past the body
	f(19, frame(OpStats, 19, js(`[]`)), protocol.ErrorBadRequest)                         // STATS: not an object
	f(20, frame(OpStats, 20, []byte{0}), protocol.ErrorBadRequest)                        // STATS: 1-byte body

	// Still open: a PING is answered and so is a valid request.
	r.write(protocol.AppendEmpty(nil, protocol.OpPing, 16))
	r.expect(protocol.OpPong, 16)
	r.send(OpStats, 17, nil, nil)
	var st wire.StatsResult
	if _, err := wire.DecodeBody(r.expect(OpResult, 17).Body, &st); err != nil || st.Services != 1 {
		t.Fatalf("stats after bad input: %+v, %v", st, err)
	}
	// A REPLY for an unknown uplink is dropped silently and counted.
	r.send(OpReply, 0, &wire.Reply{ID: 12345}, []byte("x"))
	g.waitMetric("tether_control_replies_unknown_total", 1)

	if v := g.metric(`tether_control_fails_total{code="4000",reason="BAD_REQUEST"}`); v != 13 {
		t.Fatalf("BAD_REQUEST fails = %v, want 13", v)
	}
	if v := g.metric(`tether_control_fails_total{code="4006",reason="UNKNOWN_OPCODE"}`); v != 4 {
		t.Fatalf("UNKNOWN_OPCODE fails = %v, want 4", v)
	}
}

// The metrics pass promtool's checks (CI installs promtool; see testkit.Promtool).
func TestMetricsPromtool(t *testing.T) {
	g := startGateway(t, nil)
	g.raw().send(OpAuth, 1, &wire.Auth{Secret: "bad"}, nil)
	g.waitMetric(`tether_control_auth_failures_total{reason="bad_secret"}`, 1)
	var buf bytes.Buffer
	g.port.WriteMetrics(&buf)
	testkit.Promtool(t, buf.String())
}
