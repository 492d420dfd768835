package server

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/internal/testkit/protodoc"
	"github.com/tether-gw/tether/protocol"
)

// The negative conformance vectors of docs/PROTOCOL.md section 17, parsed from the
// document and run against a real server over loopback, so that the table and the code
// cannot drift apart.

// probeSeq is the seq of the PING that checks a connection stayed open (section 17).
const probeSeq = 32343

// vector is one row of the section 17 tables.
type vector struct {
	name   string
	state  string // "connected" or "authenticated"
	bytes  []byte
	react  reaction
	source string // the row, for failure messages
}

// reaction is what the server does with a vector.
type reaction struct {
	kind string // CLOSE, ERROR, OK, PONG, AUTH_OK, SEND_REPLY, REFRESH_OK, NONE, EOF
	code uint16 // a CloseCode or an ErrorCode, by kind
	seq  uint32
}

var (
	vectorRowRE  = regexp.MustCompile("^\\| `([a-z0-9_]+)` \\| (connected|authenticated) \\| (.+?) \\| `([^`]+)` \\| [^|]+ \\|$")
	bytesPartRE  = regexp.MustCompile("^`([0-9a-f]{2}(?: [0-9a-f]{2})*)`(?: × ([0-9]+))?$")
	reactionRE   = regexp.MustCompile(`^(?:CLOSE ([0-9]+)|ERROR ([0-9]+) seq ([0-9]+)|(OK|PONG|AUTH_OK|SEND_REPLY|REFRESH_OK) seq ([0-9]+)|(NONE|EOF))$`)
	vectorsBegin = "<!-- vectors:begin -->"
	vectorsEnd   = "<!-- vectors:end -->"
)

// docVectors parses every vector row between the section 17 markers. Any line there that
// starts like a vector row but does not parse fails the test, so a typo cannot drop a
// vector silently.
func docVectors(t *testing.T) []vector {
	t.Helper()
	section := protodoc.Between(t, protodoc.Text(t), vectorsBegin, vectorsEnd)
	var vs []vector
	seen := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		m := vectorRowRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("PROTOCOL.md vector row does not parse:\n%s", line)
		}
		v := vector{name: m[1], state: m[2], source: line}
		if seen[v.name] {
			t.Fatalf("PROTOCOL.md vector %q appears twice", v.name)
		}
		seen[v.name] = true
		for _, part := range strings.Split(m[3], " + ") {
			pm := bytesPartRE.FindStringSubmatch(part)
			if pm == nil {
				t.Fatalf("vector %s: bytes part %q does not parse", v.name, part)
			}
			b := protodoc.Hex(t, pm[1])
			n := 1
			if pm[2] != "" {
				n, _ = strconv.Atoi(pm[2])
			}
			for range n {
				v.bytes = append(v.bytes, b...)
			}
		}
		v.react = parseReaction(t, v.name, m[4])
		vs = append(vs, v)
	}
	return vs
}

func parseReaction(t *testing.T, name, s string) reaction {
	t.Helper()
	m := reactionRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("vector %s: reaction %q does not parse", name, s)
	}
	num := func(s string) uint32 {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			t.Fatalf("vector %s: %q: %v", name, s, err)
		}
		return uint32(n)
	}
	switch {
	case m[1] != "":
		return reaction{kind: "CLOSE", code: uint16(num(m[1]))}
	case m[2] != "":
		return reaction{kind: "ERROR", code: uint16(num(m[2])), seq: num(m[3])}
	case m[4] != "":
		return reaction{kind: m[4], seq: num(m[5])}
	default:
		return reaction{kind: m[6]}
	}
}

func TestConformanceVectors(t *testing.T) {
	vs := docVectors(t)
	// The section lists at least this many; fewer means the parser lost rows.
	if len(vs) < 30 {
		t.Fatalf("PROTOCOL.md section 17 has %d vectors; want at least 30", len(vs))
	}
	s := startServer(t, func(o *Options) {
		// Roomy timings: a vector takes milliseconds, but the machine may be loaded.
		o.Heartbeat = 20 * time.Second
		o.AuthTimeout = 20 * time.Second
	})
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			runVector(t, s, v)
		})
	}
}

// runVector applies v's preamble, sends its bytes and checks the reaction.
func runVector(t *testing.T, s *Server, v vector) {
	r := dialRaw(t, s)
	if v.state == "authenticated" {
		r.send(&protocol.Hello{Token: "conf#" + v.name, DeviceID: "conf-" + v.name, Platform: "conformance", ClientVersion: "1"}, 1, 0)
		r.expect(protocol.OpAuthOK)
	}
	r.write(v.bytes)

	failf := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\n%s", v.source, fmt.Sprintf(format, args...))
	}
	next := func() (protocol.Frame, error) { return r.next(10 * time.Second) }
	want := v.react
	switch want.kind {
	case "CLOSE":
		f, err := next()
		for err == nil && f.Op == protocol.OpPong {
			f, err = next() // PONGs for PINGs in the vector may come first
		}
		if err != nil {
			failf("want CLOSE %d, got %v", want.code, err)
		}
		if f.Op != protocol.OpClose {
			failf("want CLOSE %d, got %v %x", want.code, f.Op, short(f.Body))
		}
		var m protocol.Close
		if err := m.Decode(f.Body); err != nil {
			failf("CLOSE body: %v", err)
		}
		if uint16(m.Code) != want.code || f.Seq != 0 || f.Version != protocol.Version {
			failf("got CLOSE %d (%q) seq %d version %d; want CLOSE %d seq 0 version %d",
				m.Code, m.Reason, f.Seq, f.Version, want.code, protocol.Version)
		}
		expectEOF(t, r, v, "after CLOSE")
		return
	case "EOF":
		expectEOF(t, r, v, "")
		return
	case "ERROR", "OK", "PONG", "AUTH_OK", "SEND_REPLY", "REFRESH_OK":
		f, err := next()
		if err != nil {
			failf("want %s, got %v", want.kind, err)
		}
		op := map[string]protocol.Opcode{"ERROR": protocol.OpError, "OK": protocol.OpOK, "PONG": protocol.OpPong,
			"AUTH_OK": protocol.OpAuthOK, "SEND_REPLY": protocol.OpSendReply, "REFRESH_OK": protocol.OpRefreshOK}[want.kind]
		if f.Op != op || f.Seq != want.seq {
			failf("got %v seq %d (body %x); want %s seq %d", f.Op, f.Seq, short(f.Body), want.kind, want.seq)
		}
		if op == protocol.OpError {
			var m protocol.Error
			if err := m.Decode(f.Body); err != nil {
				failf("ERROR body: %v", err)
			}
			if uint16(m.Code) != want.code {
				failf("got ERROR %d (%q); want ERROR %d", m.Code, m.Message, want.code)
			}
		}
	case "NONE":
	}
	// The connection stays open: the probe PING is the next thing answered.
	r.write(protocol.AppendEmpty(nil, protocol.OpPing, probeSeq))
	f, err := next()
	if err != nil {
		failf("connection did not stay open: probe PING: %v", err)
	}
	if f.Op != protocol.OpPong || f.Seq != probeSeq {
		failf("probe PING answered by %v seq %d (body %x); want PONG seq %d first", f.Op, f.Seq, short(f.Body), probeSeq)
	}
}

// expectEOF requires that the server closes the connection with no (further) frame.
func expectEOF(t *testing.T, r *rawConn, v vector, when string) {
	t.Helper()
	f, err := r.next(10 * time.Second)
	if err == nil {
		t.Fatalf("%s\nwant the connection closed %s, got %v seq %d (body %x)", v.source, when, f.Op, f.Seq, short(f.Body))
	}
	if !testkit.IsClosed(err) {
		t.Fatalf("%s\nwant the connection closed %s, got %v", v.source, when, err)
	}
}

// short cuts a body to its first 32 bytes for a failure message.
func short(b []byte) []byte { return b[:min(len(b), 32)] }

// The decisions below are spec rules outside the vector table, checked the same way.

func TestConformanceAuthRepliesEchoSeq(t *testing.T) {
	// PROTOCOL.md 6.2, 6.3 and 10: AUTH_OK and AUTH_FAIL carry the HELLO's seq.
	s := startServer(t, func(o *Options) {
		o.Authenticator = AuthenticatorFunc(func(_ context.Context, req AuthRequest) (Identity, error) {
			if req.Token == "bad" {
				return Identity{}, &AuthError{Code: protocol.CloseInvalidToken, Reason: "bad token"}
			}
			return Identity{UserID: "u"}, nil
		})
	})
	r := dialRaw(t, s)
	r.send(&protocol.Hello{Token: "good", DeviceID: "d-ok"}, 77, 0)
	if f := r.expect(protocol.OpAuthOK); f.Seq != 77 {
		t.Errorf("AUTH_OK seq %d; want the HELLO's 77", f.Seq)
	}
	r = dialRaw(t, s)
	r.send(&protocol.Hello{Token: "bad", DeviceID: "d-fail"}, 78, 0)
	if f := r.expect(protocol.OpAuthFail); f.Seq != 78 {
		t.Errorf("AUTH_FAIL seq %d; want the HELLO's 78", f.Seq)
	}
}

func TestConformanceEpochFitsJSON(t *testing.T) {
	// PROTOCOL.md 2 and 6.2: epoch in [1, 2^53), last_id at most 2^53-1.
	s := startServer(t, nil)
	ok := dialRaw(t, s).hello("epoch-user", "d1", "ios")
	if ok.Epoch < 1 || ok.Epoch >= 1<<53 {
		t.Errorf("AUTH_OK epoch %d outside [1, 2^53)", ok.Epoch)
	}
	if ok.LastID >= 1<<53 {
		t.Errorf("AUTH_OK last_id %d above 2^53-1", ok.LastID)
	}
}

func TestConformanceReplacedSameDevice(t *testing.T) {
	// PROTOCOL.md 6.1 and 13: a login with the same device_id replaces the older
	// connection, which gets CLOSE 3503 REPLACED before it is closed, under every policy.
	for _, p := range []DevicePolicy{DevicesMany, DevicesOnePerPlatform, DevicesOnePerUser} {
		t.Run(p.String(), func(t *testing.T) { replaceSameDevice(t, p, "replaced-user") })
	}
}
