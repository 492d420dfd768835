package protocol

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// MaxStringLen is the longest text field a body can carry: its length is a
// uint16.
const MaxStringLen = math.MaxUint16

// Body field primitives. All integers are big-endian; str is a uint16 byte
// length followed by that many bytes of UTF-8; rest is every remaining body
// byte.

// appendStr appends a str field, or fails with ErrFieldTooLong or
// ErrInvalidUTF8 naming op and field: an encoder never produces a body its
// decoder would reject.
func appendStr(dst []byte, op Opcode, field, s string) ([]byte, error) {
	if len(s) > MaxStringLen {
		return dst, errFieldTooLong(op, field, len(s))
	}
	if !utf8.ValidString(s) {
		return dst, fmt.Errorf("protocol: %s: %s: %w", op, field, ErrInvalidUTF8)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...), nil
}

// bodyReader reads body fields in order. The first short read records an
// ErrMalformedBody naming the opcode and field; later reads return zero
// values, so a decoder reads all its fields and checks err once.
type bodyReader struct {
	b   []byte
	op  Opcode
	err error
}

// take returns the next n bytes, or nil after recording an error.
func (r *bodyReader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = errMalformed(r.op, field, n, len(r.b))
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *bodyReader) u8(field string) uint8 {
	if p := r.take(field, 1); p != nil {
		return p[0]
	}
	return 0
}

func (r *bodyReader) u16(field string) uint16 {
	if p := r.take(field, 2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *bodyReader) u32(field string) uint32 {
	if p := r.take(field, 4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *bodyReader) u64(field string) uint64 {
	if p := r.take(field, 8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// str reads a str field and copies it into a string. Bytes that are not valid
// UTF-8 record an error wrapping ErrMalformedBody and ErrInvalidUTF8: a peer
// that sends them broke PROTOCOL.md section 2, and rejecting them here keeps
// them out of map keys, logs and JSON events.
func (r *bodyReader) str(field string) string {
	n := r.u16(field)
	p := r.take(field, int(n))
	if len(p) == 0 {
		return ""
	}
	if !utf8.Valid(p) {
		r.err = errUTF8(r.op, field)
		return ""
	}
	return string(p)
}

// rest returns every remaining byte, aliasing the body with its capacity
// clipped, or nil if none remain or an earlier field failed.
func (r *bodyReader) rest() []byte {
	if r.err != nil || len(r.b) == 0 {
		return nil
	}
	p := r.b[:len(r.b):len(r.b)]
	r.b = nil
	return p
}

// CleanText makes free text (a close reason, an error message) fit a str
// field: it replaces invalid UTF-8 with U+FFFD and cuts the result to at most
// MaxStringLen bytes on a character boundary. Valid text within the limit is
// returned as it is, without allocating. Identifiers (user ids, rooms,
// routes) should be refused rather than cleaned; the encoders do that.
func CleanText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= MaxStringLen {
		return s
	}
	cut := MaxStringLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
