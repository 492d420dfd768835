package protocol

import (
	"bytes"
	"encoding/binary"
)

// Version is the protocol version this package speaks and writes into every
// frame header. A receiver rejects any other version with
// ErrUnsupportedVersion.
const Version = 1

// Frame layout sizes, in bytes.
const (
	// LengthSize is the size of the big-endian uint32 length prefix. The
	// prefix counts the bytes after itself: HeaderSize + len(body).
	LengthSize = 4

	// HeaderSize is the size of the fixed header after the prefix: version,
	// opcode, flags, reserved (one byte each) and a big-endian uint32 seq.
	HeaderSize = 8

	// Overhead is the number of bytes a frame adds to its body.
	Overhead = LengthSize + HeaderSize
)

// Frame size limits. Each is a value of the length field, so the frame on the
// wire is LengthSize bytes longer.
const (
	// MaxFrameLimit is the absolute ceiling on the length field (16 MiB).
	// Limits passed to Parse or a Decoder are clamped to it, and
	// message encoders refuse to produce a larger frame.
	MaxFrameLimit = 16 << 20

	// DefaultMaxFrame is the limit used when a caller passes 0 or less
	// (64 KiB); it is
	// also the server's default max_frame announced in AUTH_OK.
	DefaultMaxFrame = 64 << 10

	// PreAuthMaxFrame is the limit a server applies before AUTH_OK (4 KiB),
	// so an unauthenticated peer cannot make it buffer more.
	PreAuthMaxFrame = 4 << 10
)

// Header is the fixed 8-byte frame header that follows the length prefix.
// The reserved byte is not represented: senders write 0 and receivers ignore
// it.
type Header struct {
	// Version is the protocol version. Encoders write Version when it is 0.
	Version uint8
	// Op is the opcode, which determines the body layout.
	Op Opcode
	// Flags holds per-frame flags; unknown bits are preserved by decoding
	// and ignored by this package.
	Flags Flags
	// Seq correlates requests and replies: replies echo the request's seq,
	// PONG echoes PING's, and server-initiated frames use 0.
	Seq uint32
}

// Frame is one decoded frame. Body aliases the buffer the frame was decoded
// from: it is valid only as long as that buffer, as stated by the function
// that returned the Frame (Parse: as long as its input; Decoder: during the
// callback). Use Clone to keep a frame longer. Body's capacity is clipped to its length, so appending
// to it never overwrites the next frame in the buffer.
type Frame struct {
	Header
	// Body is the opcode-specific body, possibly empty.
	Body []byte
}

// Clone returns a copy of f whose Body is a newly allocated slice (nil when
// f.Body is empty), valid independently of the buffer f was decoded from.
func (f Frame) Clone() Frame {
	if len(f.Body) == 0 {
		f.Body = nil
		return f
	}
	f.Body = bytes.Clone(f.Body)
	return f
}

// Size returns the number of bytes the frame occupies on the wire.
func (f Frame) Size() int {
	return Overhead + len(f.Body)
}

// Parse parses one frame at the start of b, checking the length field
// against maxFrame (0 or less means DefaultMaxFrame; values above
// MaxFrameLimit are clamped to it). It returns the frame and the number of
// bytes it occupied in b. The frame's Body aliases b and is valid as long
// as b is.
//
// When b does not yet hold a complete frame, Parse returns n == 0 and a nil
// error; the caller reads more and calls Parse again with the longer buffer.
// Errors are reported as early as the bytes allow, without waiting for the
// rest of the frame:
//
//   - ErrFrameTooShort or ErrFrameTooLarge once the 4 prefix bytes are there;
//   - ErrUnsupportedVersion once the 12 prefix and header bytes are there.
//
// After an error the stream cannot be resynchronised; the connection must be
// closed (see CloseCodeFor). Parse does not look inside the body: use the
// message types' Decode methods for that. Parse does not allocate.
func Parse(b []byte, maxFrame int) (f Frame, n int, err error) {
	if len(b) < LengthSize {
		return Frame{}, 0, nil
	}
	length := binary.BigEndian.Uint32(b)
	if err := checkLength(length, limitOf(maxFrame)); err != nil {
		return Frame{}, 0, err
	}
	if len(b) < Overhead {
		return Frame{}, 0, nil
	}
	h, err := parseHeader(b[LengthSize:Overhead])
	if err != nil {
		return Frame{}, 0, err
	}
	n = LengthSize + int(length)
	if len(b) < n {
		return Frame{}, 0, nil
	}
	return Frame{Header: h, Body: b[Overhead:n:n]}, n, nil
}

// limitOf applies the defaulting and clamping rules for a maxFrame argument.
func limitOf(maxFrame int) int {
	switch {
	case maxFrame <= 0:
		return DefaultMaxFrame
	case maxFrame > MaxFrameLimit:
		return MaxFrameLimit
	default:
		return maxFrame
	}
}

// checkLength validates a length field against an already normalised limit.
func checkLength(length uint32, limit int) error {
	if length < HeaderSize {
		return errTooShort(length)
	}
	if uint64(length) > uint64(limit) {
		return errTooLarge(length, limit)
	}
	return nil
}

// parseHeader decodes the 8 header bytes in b and checks the version.
func parseHeader(b []byte) (Header, error) {
	_ = b[HeaderSize-1] // bounds check hint
	if b[0] != Version {
		return Header{}, errVersion(b[0])
	}
	return Header{
		Version: b[0],
		Op:      Opcode(b[1]),
		Flags:   Flags(b[2]),
		// b[3] is reserved: ignored on receipt.
		Seq: binary.BigEndian.Uint32(b[4:]),
	}, nil
}
