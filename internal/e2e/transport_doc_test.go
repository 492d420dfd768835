package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tether-gw/tether/internal/testkit/protodoc"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// PROTOCOL.md §1.2 holds a worked WebSocket frame and a table of WebSocket negative
// vectors; these tests run them against a real server, so the document cannot drift
// from the code.

var wsVectorRE = regexp.MustCompile("^\\| `([a-z0-9_]+)` \\| `([0-9a-f +]+)` \\| `([^`]+)` \\|")

// TestDocWebSocketVectors sends each vector's bytes on an authenticated WebSocket
// connection and checks the reaction the table states.
func TestDocWebSocketVectors(t *testing.T) {
	section := protodoc.Between(t, protodoc.Text(t), "<!-- ws-vectors:begin -->", "<!-- ws-vectors:end -->")
	g, _ := allTransports(t, nil)
	addr := g.srv.ListenerAddr(server.TransportWS).String()
	ran := 0
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		m := wsVectorRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("PROTOCOL.md WebSocket vector row does not parse:\n%s", line)
		}
		name, reaction := m[1], m[3]
		var raw []byte
		for _, part := range strings.Split(m[2], " + ") {
			raw = append(raw, protodoc.Hex(t, part)...)
		}
		t.Run(name, func(t *testing.T) {
			nc, br, st := wsUpgrade(t, addr, "/ws", "")
			if st != 101 {
				t.Fatalf("upgrade: %d", st)
			}
			hello, _ := (&protocol.Hello{Token: userName(t)}).AppendFrame(nil, 1, 0)
			nc.Write(wsClientFrame(true, 0x2, hello, false))
			if op, p, err := wsReadFrame(br); err != nil || op != 0x2 || protocol.Opcode(p[5]) != protocol.OpAuthOK {
				t.Fatalf("auth: op %x %v", op, err)
			}
			nc.Write(raw)
			if strings.HasPrefix(reaction, "PONG ") {
				want := strings.TrimPrefix(reaction, "PONG ")
				if want == "-" {
					want = ""
				}
				for {
					op, p, err := wsReadFrame(br)
					if err != nil {
						t.Fatalf("waiting for the pong: %v", err)
					}
					if op == 0xA {
						if hex.EncodeToString(p) != want {
							t.Fatalf("pong payload %x, want %s", p, want)
						}
						break
					}
				}
				// The connection stays open: a tether PING is answered.
				nc.Write(wsClientFrame(true, 0x2, protocol.AppendEmpty(nil, protocol.OpPing, 32343), false))
				for {
					op, p, err := wsReadFrame(br)
					if err != nil {
						t.Fatalf("after the vector: %v", err)
					}
					if op == 0x2 && bytes.Contains(p, protocol.AppendEmpty(nil, protocol.OpPong, 32343)) {
						return
					}
				}
			}
			code, err := strconv.Atoi(reaction)
			if err != nil {
				t.Fatalf("reaction %q: want a close code or PONG", reaction)
			}
			wsExpectClose(t, br, uint16(code))
		})
		ran++
	}
	if ran < 8 {
		t.Fatalf("only %d WebSocket vectors found in PROTOCOL.md", ran)
	}
}

// TestDocWebSocketWorkedFrame: the worked frame's client bytes are a tether PING in a
// masked binary message, and the server answers exactly the server bytes.
func TestDocWebSocketWorkedFrame(t *testing.T) {
	section := protodoc.Between(t, protodoc.Text(t), "<!-- ws-worked:begin -->", "<!-- ws-worked:end -->")
	lines := map[string][]byte{}
	for _, line := range strings.Split(section, "\n") {
		if f := strings.Fields(line); len(f) > 1 && (f[0] == "client" || f[0] == "server") {
			lines[f[0]] = protodoc.Hex(t, strings.Join(f[1:], " "))
		}
	}
	cl, sv := lines["client"], lines["server"]
	if cl == nil || sv == nil {
		t.Fatal("worked frame lines not found")
	}
	g, _ := allTransports(t, nil)
	nc, br, _ := wsUpgrade(t, g.srv.ListenerAddr(server.TransportWS).String(), "/ws", "")
	nc.Write(cl) // a PING is answered before authentication too
	op, p, err := wsReadFrame(br)
	if err != nil {
		t.Fatal(err)
	}
	got := append([]byte{0x80 | op, byte(len(p))}, p...)
	if !bytes.Equal(got, sv) {
		t.Fatalf("server sent % x, PROTOCOL.md says % x", got, sv)
	}
	if binary.BigEndian.Uint32(p) != 8 || protocol.Opcode(p[5]) != protocol.OpPong {
		t.Fatal("the worked server frame is not a PONG")
	}
}
