package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/tether-gw/tether/protocol"
)

// MaxJSONLen is the longest JSON header a body can carry: its length is a u16.
const MaxJSONLen = math.MaxUint16

var (
	// ErrMalformed reports a control body that cannot be decoded: a json_len past the
	// end of the body, a header that is not a JSON object, or JSON that does not fit
	// the operation's fields. The wrapping error says which.
	ErrMalformed = errors.New("control: malformed body")

	// ErrJSONTooLong reports a header longer than MaxJSONLen given to AppendFrame.
	ErrJSONTooLong = errors.New("control: JSON header too long")
)

// Codec encodes and decodes the JSON headers. Its two functions must behave like
// encoding/json's Marshal (without HTML escaping, map keys sorted) and Unmarshal
// (strings copied out of the input, trailing data an error): Std is that, and the
// gateway plugs in a faster implementation with the same output (server/control tests
// that the two agree byte for byte on every message type). A Codec is a plain value,
// safe for concurrent use if its functions are.
type Codec struct {
	// Marshal encodes v as one JSON value.
	Marshal func(v any) ([]byte, error)
	// Unmarshal decodes one JSON value into v, a pointer.
	Unmarshal func(data []byte, v any) error
}

// Std is the codec built on encoding/json, the default of the package-level functions.
// It keeps the service SDK free of dependencies outside the standard library.
var Std = Codec{Marshal: stdMarshal, Unmarshal: json.Unmarshal}

// stdEncoder is a json.Encoder with its buffer, pooled: a fresh one per header cost
// three allocations more than json.Marshal (BenchmarkStdPush).
type stdEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var stdEncoders = sync.Pool{New: func() any {
	e := &stdEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// stdMarshal is json.Marshal without HTML escaping ("<" stays "<", as sonic and most
// encoders write it) and without the Encoder's trailing newline. It allocates the
// result only.
func stdMarshal(v any) ([]byte, error) {
	e := stdEncoders.Get().(*stdEncoder)
	defer func() {
		if e.buf.Cap() <= 64<<10 { // do not keep a huge header's buffer
			e.buf.Reset()
			stdEncoders.Put(e)
		}
	}()
	if err := e.enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.Clone(bytes.TrimSuffix(e.buf.Bytes(), []byte{'\n'})), nil
}

// AppendFrame is Std.AppendFrame.
func AppendFrame(dst []byte, op protocol.Opcode, seq uint32, hdr any, payload []byte) ([]byte, error) {
	return Std.AppendFrame(dst, op, seq, hdr, payload)
}

// DecodeBody is Std.DecodeBody.
func DecodeBody(body []byte, v any) (payload []byte, err error) { return Std.DecodeBody(body, v) }

// AppendFrame appends a complete control frame to dst: the 12-byte header with op and
// seq, then hdr encoded as JSON (nil, or an object that encodes as {}, gives
// json_len 0), then payload. It returns ErrJSONTooLong for a header above MaxJSONLen
// and protocol.ErrFrameTooLarge for a frame above protocol.MaxFrameLimit; the
// receiver's own, lower limit is the caller's to check. AppendFrame allocates the
// JSON encoding, and dst's growth when it lacks capacity.
func (c Codec) AppendFrame(dst []byte, op protocol.Opcode, seq uint32, hdr any, payload []byte) ([]byte, error) {
	var js []byte
	if hdr != nil {
		var err error
		if js, err = c.Marshal(hdr); err != nil {
			return dst, fmt.Errorf("control: cannot encode %s header: %w", OpName(op), err)
		}
		if string(js) == "{}" {
			js = nil
		}
	}
	if len(js) > MaxJSONLen {
		return dst, fmt.Errorf("%w: %s header is %d bytes, limit %d", ErrJSONTooLong, OpName(op), len(js), MaxJSONLen)
	}
	bodyLen := 2 + len(js) + len(payload)
	if bodyLen > protocol.MaxFrameLimit-protocol.HeaderSize {
		return dst, fmt.Errorf("%w: %s body of %d bytes", protocol.ErrFrameTooLarge, OpName(op), bodyLen)
	}
	dst = protocol.AppendHeader(dst, protocol.Header{Op: op, Seq: seq}, bodyLen)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(js)))
	dst = append(dst, js...)
	return append(dst, payload...), nil
}

// SplitBody splits a control body into its JSON header and its payload, both aliasing
// body. An empty body is the same as json_len 0 with no payload. It returns an error
// wrapping ErrMalformed when the body is a single byte or json_len runs past its end.
// It does not look inside the JSON.
func SplitBody(body []byte) (js, payload []byte, err error) {
	switch len(body) {
	case 0:
		return nil, nil, nil
	case 1:
		return nil, nil, fmt.Errorf("%w: body of 1 byte cannot hold json_len", ErrMalformed)
	}
	n := int(binary.BigEndian.Uint16(body))
	if 2+n > len(body) {
		return nil, nil, fmt.Errorf("%w: json_len %d runs past the %d-byte body", ErrMalformed, n, len(body))
	}
	return body[2 : 2+n], body[2+n:], nil
}

// DecodeBody decodes a control body's JSON header into v, a pointer to one of this
// package's message types, and returns the payload, which aliases body. json_len 0
// leaves v unchanged. The header must be a JSON object; fields v does not have are
// ignored. Errors wrap ErrMalformed. Strings in v are copies, valid after body is
// reused.
func (c Codec) DecodeBody(body []byte, v any) (payload []byte, err error) {
	js, payload, err := SplitBody(body)
	if err != nil {
		return nil, err
	}
	if len(js) == 0 {
		return payload, nil
	}
	if !isObject(js) {
		return nil, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	if err := c.Unmarshal(js, v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return payload, nil
}

// isObject reports whether js, after leading white space, starts an object. It keeps
// "null", arrays and scalars, which the JSON decoder would accept or misreport, out.
func isObject(js []byte) bool {
	for _, c := range js {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}
