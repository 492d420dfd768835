package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeStream checks that the two frame readers agree on any input:
// the Decoder fed in fuzzer-chosen chunks gives exactly the frames and error
// of a Parse loop over the whole input. It also checks that every parsed frame re-encodes to its original bytes.
//
// stream is the byte stream; chunks gives the chunk sizes (each byte b is a
// chunk of b%64+1 bytes, cycling; empty means one chunk); limit is the
// maxFrame (0 = DefaultMaxFrame).
func FuzzDecodeStream(f *testing.F) {
	all := sampleStream(f)
	for _, s := range samples() {
		// One valid frame of each type, whole and split every 3 bytes.
		f.Add(s.bytes(f), []byte{}, uint16(0))
		f.Add(s.bytes(f), []byte{2}, uint16(0))
	}
	// Every frame type back to back, in uneven chunks.
	f.Add(all, []byte{0, 5, 11, 63, 2}, uint16(0))
	// A valid stream cut in the middle of a frame: the tail stays buffered.
	f.Add(all[:len(all)-3], []byte{7}, uint16(0))
	// Truncated in the length prefix and in the header.
	f.Add(all[:2], []byte{0}, uint16(0))
	f.Add(all[:9], []byte{0}, uint16(0))
	// Oversized: a maximal length prefix, rejected from 4 bytes.
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, []byte{0}, uint16(0))
	// Oversized for a small limit, followed by body bytes that must not matter.
	f.Add(frameOf(OpSendReply, 1, make([]byte, 64)), []byte{1}, uint16(32))
	// Zero length: shorter than the header.
	f.Add([]byte{0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 0, 0}, []byte{}, uint16(0))
	// Bad version after a valid frame.
	f.Add(append(frameOf(OpPing, 1, nil), rawFrame(8, 2, OpPing, 0, 0, 2, nil)...), []byte{5}, uint16(0))
	// Reserved byte and reserved flag bits set: accepted, ignored.
	f.Add(rawFrame(9, Version, 0x77, 0xFC, 0xFF, 3, []byte{1}), []byte{}, uint16(0))

	f.Fuzz(func(t *testing.T, stream, chunks []byte, limit uint16) {
		maxFrame := int(limit)
		want, rest, wantErr := parseAll(stream, maxFrame)

		// Decoder, fed in chunks.
		d := Decoder{MaxFrame: maxFrame}
		var got []Frame
		var gotErr error
		collect := func(f Frame) error { got = append(got, f.Clone()); return nil }
		for p, i := stream, 0; len(p) > 0 && gotErr == nil; i++ {
			n := len(p)
			if len(chunks) > 0 {
				n = min(int(chunks[i%len(chunks)])%64+1, len(p))
			}
			gotErr = d.Decode(p[:n], collect)
			p = p[n:]
		}
		if !framesEqual(got, want) || errText(gotErr) != errText(wantErr) {
			t.Fatalf("Decoder: %d frames, err %v; Parse loop: %d frames, err %v", len(got), gotErr, len(want), wantErr)
		}
		if wantErr == nil && d.Buffered() != len(rest) {
			t.Fatalf("Decoder buffered %d bytes; Parse loop left %d", d.Buffered(), len(rest))
		}

		// Re-encoding the frames reproduces the input, reserved byte zeroed.
		var enc []byte
		for _, f := range want {
			enc = AppendFrame(enc, f.Header, f.Body)
		}
		orig := bytes.Clone(stream[:len(enc)])
		for off := 0; off < len(orig); {
			orig[off+7] = 0
			off += Overhead + len(want[0].Body)
			want = want[1:]
		}
		if !bytes.Equal(enc, orig) {
			t.Fatalf("re-encoded frames %x differ from input %x", enc, orig)
		}
	})
}

// bodyMessages returns a zero message of every type.
func bodyMessages() []Message {
	var ms []Message
	for op := ClientOpMin; op <= ClientOpMax; op++ {
		if m := NewMessage(op); m != nil {
			ms = append(ms, m)
		}
	}
	return ms
}

// FuzzDecodeBodies decodes arbitrary bytes as every message type. Decode
// must never panic; it fails only with ErrMalformedBody; and a successful
// decode re-encodes to a body whose bytes equal the input's known fields
// (the input may carry trailing bytes that the decoder ignored), and
// decodes again to the same message.
func FuzzDecodeBodies(f *testing.F) {
	for _, s := range samples() {
		if s.msg == nil {
			continue
		}
		body := s.bytes(f)[Overhead:]
		f.Add(body)               // a valid body of each type
		f.Add(append(body, 0xEE)) // with a trailing byte from a future revision
		f.Add(body[:len(body)/2]) // truncated mid-field
	}
	f.Add([]byte{})                       // empty body
	f.Add([]byte{0xff, 0xff, 'a'})        // str length far past the end
	f.Add(bytes.Repeat([]byte{0xff}, 64)) // all ones: huge lengths and ids

	f.Fuzz(func(t *testing.T, body []byte) {
		// Longer bodies exercise no other path, and minimizing a large
		// interesting input can take the fuzzer's whole time budget.
		if len(body) > 1024 {
			body = body[:1024]
		}
		for _, m := range bodyMessages() {
			if err := m.Decode(body); err != nil {
				if !errors.Is(err, ErrMalformedBody) {
					t.Fatalf("%s: Decode error %v does not wrap ErrMalformedBody", m.Opcode(), err)
				}
				continue
			}
			frame, err := m.AppendFrame(nil, 1, 0)
			if err != nil {
				t.Fatalf("%s: re-encode of decoded %+v: %v", m.Opcode(), m, err)
			}
			enc := frame[Overhead:]
			if !bytes.HasPrefix(body, enc) {
				t.Fatalf("%s: re-encoded body %x is not a prefix of input %x", m.Opcode(), enc, body)
			}
			again := NewMessage(m.Opcode())
			if err := again.Decode(enc); err != nil {
				t.Fatalf("%s: decode of re-encoded body: %v", m.Opcode(), err)
			}
			if !reflect.DeepEqual(again, m) {
				t.Fatalf("%s: second decode %+v differs from first %+v", m.Opcode(), again, m)
			}
		}
	})
}
