package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tether-gw/tether/protocol"
)

func TestAppendFrameRoundTrip(t *testing.T) {
	f := func(name string, op protocol.Opcode, hdr any, payload []byte, wantJSON string) {
		t.Helper()
		b, err := AppendFrame(nil, op, 7, hdr, payload)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fr, n, err := protocol.Parse(b, protocol.MaxFrameLimit)
		if err != nil || n != len(b) || fr.Op != op || fr.Seq != 7 {
			t.Fatalf("%s: Parse = %+v, %d, %v", name, fr.Header, n, err)
		}
		js, pl, err := SplitBody(fr.Body)
		if err != nil || string(js) != wantJSON || !bytes.Equal(pl, payload) {
			t.Fatalf("%s: SplitBody = %q, %q, %v; want %q, %q", name, js, pl, err, wantJSON, payload)
		}
	}
	f("push users", OpPush, &Push{Users: []string{"u1"}}, []byte("hi"), `{"users":["u1"]}`)
	f("stats: nil header is json_len 0", OpStats, nil, nil, "")
	f("empty object is json_len 0", OpStats, struct{}{}, nil, "")
	f("binary payload untouched", OpReply, &Reply{ID: 3}, []byte{0, 1, 0xff}, `{"id":3}`)
	f("map keys sorted", OpResult, &PresenceResult{Rooms: map[string]int{"b": 1, "a": 2}}, nil,
		`{"rooms":{"a":2,"b":1},"totals":{"connections":0,"authenticated":0,"users":0,"rooms":0}}`)
}

func TestDecodeBody(t *testing.T) {
	body := func(js string, payload string) []byte {
		return append(append([]byte{byte(len(js) >> 8), byte(len(js))}, js...), payload...)
	}
	var p Push
	pl, err := DecodeBody(body(`{"room":"r1","exclude":[4,5],"future_field":true}`, "msg"), &p)
	if err != nil || p.Room != "r1" || len(p.Exclude) != 2 || string(pl) != "msg" {
		t.Fatalf("DecodeBody = %+v, %q, %v", p, pl, err)
	}
	// Decoded strings do not alias the body.
	b := body(`{"routes":["chat."]}`, "")
	var s Subscription
	if _, err := DecodeBody(b, &s); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'x'
	}
	if s.Routes[0] != "chat." {
		t.Fatalf("decoded route changed with the buffer: %q", s.Routes[0])
	}
	bad := func(name string, b []byte) {
		t.Helper()
		var p Push
		if _, err := DecodeBody(b, &p); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	bad("one byte", []byte{0})
	bad("json_len past end", []byte{0, 9, '{', '}'})
	bad("array", body(`[1]`, ""))
	bad("null", body(`null`, ""))
	bad("truncated", body(`{"users":[`, ""))
	bad("wrong type", body(`{"users":"u"}`, ""))
	bad("trailing garbage", body(`{}x`, ""))
	if _, err := DecodeBody(nil, &p); err != nil {
		t.Fatalf("empty body: %v", err)
	}
}

func TestAppendFrameLimits(t *testing.T) {
	if _, err := AppendFrame(nil, OpPush, 1, &Push{Room: string(make([]byte, MaxJSONLen))}, nil); !errors.Is(err, ErrJSONTooLong) {
		t.Fatalf("long header: %v", err)
	}
	if _, err := AppendFrame(nil, OpPush, 1, nil, make([]byte, protocol.MaxFrameLimit)); !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("huge payload: %v", err)
	}
	if OpName(OpUplink) != "UPLINK" || OpName(0x7F) != "OPCODE(0x7f)" || !IsRequest(OpPush) || IsRequest(OpReply) {
		t.Fatal("opcode names")
	}
}

// FuzzDecodeBody checks that no body makes the decoder panic, and that whatever it
// accepts splits consistently.
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte{})                                    // empty body
	f.Add([]byte{0, 2, '{', '}', 'p'})                 // {} plus payload
	f.Add([]byte{0, 9, '{', '}'})                      // json_len past the end
	f.Add(append([]byte{0, 14}, `{"users":["a"]}`...)) // off by one
	f.Add(append([]byte{0, 15}, `{"users":["a"]}`...)) // a push to users
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Push
		payload, err := DecodeBody(b, &p)
		if err != nil {
			return
		}
		js, pl, err := SplitBody(b)
		if err != nil || !bytes.Equal(pl, payload) || 2+len(js)+len(pl) != max(len(b), 2) && len(b) != 0 {
			t.Fatalf("inconsistent split of %q", b)
		}
	})
}
