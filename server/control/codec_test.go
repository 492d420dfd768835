package control

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// TestCodecsAgree: the gateway's sonic codec and the SDK's encoding/json codec write the
// same bytes for every message type, and decode the same bodies to the same values, so
// a service using wire.Std and the gateway never disagree on the wire.
func TestCodecsAgree(t *testing.T) {
	// Strings with characters encoders treat differently: HTML, non-ASCII, quotes and
	// control characters.
	odd := `<a href="x">&amp;</a> é 日本 "q" \ ` + "\t\n\x01"
	msgs := []any{
		&wire.Auth{Secret: odd, Name: "chat"},
		&wire.AuthResult{Session: 1, MaxFrame: 1 << 20, ClientMaxFrame: 65536, UplinkTimeoutMs: 10000},
		&wire.Fail{Code: protocol.ErrorNotFound, Message: odd, Offline: 2},
		&wire.Push{Users: []string{"u1", odd}, Conns: []uint64{1, 1<<53 - 1}, Room: "r", All: true, Exclude: []uint64{4}, QoS: 1},
		&wire.PushResult{Delivered: 3, Offline: 1, MsgIDs: map[string]uint64{"b": 2, "a": 1, odd: 3}},
		&wire.Kick{Users: []string{"u"}, Code: protocol.CloseKicked, Reason: odd},
		&wire.KickResult{Kicked: 1, Missing: 2},
		&wire.Room{Room: odd, Conns: []uint64{7}},
		&wire.RoomResult{Conns: 1, Missing: 1, Refused: 1},
		&wire.Presence{Users: []string{"a"}, Rooms: []string{"r"}},
		&wire.PresenceResult{
			Users:  map[string][]wire.ConnInfo{"z": {}, "a": {{Conn: 1, Device: "d", Platform: "ios", Addr: "127.0.0.1:1", Rooms: []string{"r"}}}},
			Rooms:  map[string]int{"y": 1, "x": 0},
			Totals: wire.Totals{Connections: 5, Authenticated: 4, Users: 3, Rooms: 2},
		},
		&wire.StatsResult{Totals: wire.Totals{Connections: 1}, Draining: true, Services: 2, Routes: 3, Prefixes: 4,
			EventSubscribers: 5, PendingUplinks: 6, UplinksTotal: 7},
		&wire.Subscription{Routes: []string{"echo"}, Prefixes: []string{""}, Events: true},
		&wire.SubscribeResult{Routes: []string{}, Prefixes: []string{"chat."}},
		&wire.Uplink{ID: 1, Conn: 2, User: odd, Device: "d", Platform: "p", Route: "chat.send", NoReply: true},
		&wire.Reply{ID: 1, Code: protocol.ErrorDenied, Message: odd},
		&wire.Event{Type: wire.EventOffline, Conn: 2, User: "u", Code: protocol.CloseKicked, Reason: "KICKED"},
		&struct{}{},
	}
	for _, m := range msgs {
		got, err := codec.AppendFrame(nil, OpResult, 9, m, []byte("p"))
		if err != nil {
			t.Fatalf("%T: sonic: %v", m, err)
		}
		want, err := wire.Std.AppendFrame(nil, OpResult, 9, m, []byte("p"))
		if err != nil {
			t.Fatalf("%T: std: %v", m, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%T encodes differently:\nsonic %q\n  std %q", m, got, want)
			continue
		}
		// Decode the frame's body back with both codecs into fresh values.
		body := got[protocol.LengthSize+protocol.HeaderSize:]
		v1 := reflect.New(reflect.TypeOf(m).Elem()).Interface()
		v2 := reflect.New(reflect.TypeOf(m).Elem()).Interface()
		p1, err1 := codec.DecodeBody(body, v1)
		p2, err2 := wire.Std.DecodeBody(body, v2)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(v1, v2) || !reflect.DeepEqual(v1, m) || string(p1) != "p" || string(p2) != "p" {
			t.Errorf("%T decodes differently: sonic %+v, %v; std %+v, %v", m, v1, err1, v2, err2)
		}
	}
	// Both refuse the same malformed headers.
	for _, js := range []string{`{"users":"u"}`, `{}x`, `{"users":[`, `{"room":"a` + "\x01" + `"}`, `{"conns":[-1]}`} {
		body := append([]byte{byte(len(js) >> 8), byte(len(js))}, js...)
		var a, b wire.Push
		_, err1 := codec.DecodeBody(body, &a)
		_, err2 := wire.Std.DecodeBody(body, &b)
		if !errors.Is(err1, wire.ErrMalformed) || !errors.Is(err2, wire.ErrMalformed) {
			t.Errorf("%q: sonic %v, std %v; want both ErrMalformed", js, err1, err2)
		}
	}
}
