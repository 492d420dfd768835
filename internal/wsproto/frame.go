package wsproto

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// OpCode is a WebSocket frame opcode (RFC 6455 section 5.2).
type OpCode uint8

// The opcodes RFC 6455 defines; every other value is refused with 1002.
const (
	OpContinuation OpCode = 0x0 // continuation of a fragmented data message
	OpText         OpCode = 0x1 // text data frame (refused with 1003 by Stream)
	OpBinary       OpCode = 0x2 // binary data frame: the only data tether accepts
	OpClose        OpCode = 0x8 // close control frame
	OpPing         OpCode = 0x9 // ping control frame
	OpPong         OpCode = 0xA // pong control frame
)

// IsControl reports whether op is a control opcode (close, ping, pong).
func (op OpCode) IsControl() bool { return op&0x8 != 0 }

// known reports whether op is one of the six opcodes RFC 6455 defines.
func (op OpCode) known() bool {
	switch op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return true
	}
	return false
}

const (
	// MaxHeaderLen is the longest server-to-client frame header AppendHeader
	// writes: 2 bytes plus a 64-bit length, no mask (server frames are unmasked).
	MaxHeaderLen = 10

	// maxClientHeaderLen is the longest client-to-server header: 2 + 8 + 4 mask.
	maxClientHeaderLen = 14

	// MaxControlPayload is the largest control frame payload RFC 6455 allows.
	MaxControlPayload = 125

	rsv1 = 0x4 // Rsv bit of "per-message compressed" (RFC 7692)
)

// Header is a parsed client-to-server frame header.
type Header struct {
	Fin    bool    // final fragment of its message
	Rsv    uint8   // RSV1..RSV3 as the low three bits (RSV1 = 4)
	Op     OpCode  // opcode
	Masked bool    // always true once ParseHeader accepted it
	Mask   [4]byte // masking key
	Length int64   // payload length, 0..2^63-1
}

// ParseHeader parses the frame header at the start of p. n == 0 and err ==
// nil means the header is incomplete: call again with more bytes (the first
// two bytes are validated as soon as they are there, so a bad frame fails
// before its extended length arrives). On success n is the header length
// (2 to 14 bytes).
//
// It checks what RFC 6455 requires of a client frame before its payload is
// read: the frame is masked; RSV bits are zero, except RSV1 when compressed
// (permessage-deflate negotiated) and only on the first frame of a data
// message; the opcode is known; a control frame has FIN set and a length of
// at most 125; a 64-bit length has its top bit clear. Message-level rules
// (continuations, text) belong to Stream. Errors are *CloseError with code
// 1002. ParseHeader does not allocate.
func ParseHeader(p []byte, compressed bool) (h Header, n int, err error) {
	if len(p) < 2 {
		return h, 0, nil
	}
	b0, b1 := p[0], p[1]
	h.Fin = b0&0x80 != 0
	h.Rsv = (b0 >> 4) & 0x7
	h.Op = OpCode(b0 & 0x0f)
	h.Masked = b1&0x80 != 0
	len7 := int64(b1 & 0x7f)

	switch {
	case !h.Op.known():
		return h, 0, errOpcode
	case h.Rsv != 0 && !(compressed && h.Rsv == rsv1 && (h.Op == OpBinary || h.Op == OpText)):
		return h, 0, errRsv
	case h.Op.IsControl() && !h.Fin:
		return h, 0, errControlFragment
	case h.Op.IsControl() && len7 > MaxControlPayload:
		return h, 0, errControlTooLong
	case !h.Masked:
		return h, 0, errUnmasked
	}

	n = 2
	switch len7 {
	case 126:
		if len(p) < n+2 {
			return h, 0, nil
		}
		h.Length = int64(binary.BigEndian.Uint16(p[n:]))
		n += 2
	case 127:
		if len(p) < n+8 {
			return h, 0, nil
		}
		l := binary.BigEndian.Uint64(p[n:])
		if l>>63 != 0 {
			return h, 0, errLength63
		}
		h.Length = int64(l)
		n += 8
	default:
		h.Length = len7
	}
	if len(p) < n+4 {
		return h, 0, nil
	}
	copy(h.Mask[:], p[n:n+4])
	return h, n + 4, nil
}

// Unmask XORs p in place with the masking key. offset is the position of
// p[0] within the frame's payload, so a payload that arrives in pieces is
// unmasked piece by piece with the running offset. It uses ws.Cipher (word at
// a time, assembly on amd64/arm64) and does not allocate.
func Unmask(p []byte, mask [4]byte, offset int64) {
	ws.Cipher(p, mask, int(offset&3))
}

// AppendHeader appends an unmasked server-to-client frame header (at most
// MaxHeaderLen bytes) for a payload of length bytes and returns the extended
// slice. It writes the header only, so the gateway can writev it beside a
// payload shared by many connections. RSV bits are zero.
func AppendHeader(dst []byte, op OpCode, fin bool, length int) []byte {
	return appendHeader(dst, op, fin, 0, length)
}

// appendHeader is AppendHeader with RSV bits (rsv1 for a compressed message).
func appendHeader(dst []byte, op OpCode, fin bool, rsv uint8, length int) []byte {
	b0 := byte(op) | rsv<<4
	if fin {
		b0 |= 0x80
	}
	switch {
	case length < 126:
		return append(dst, b0, byte(length))
	case length <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, b0, 126), uint16(length))
	default:
		return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(length))
	}
}

// AppendPong appends a whole pong frame echoing payload, which must be at
// most MaxControlPayload bytes (a ping's payload always is); a longer
// payload is a caller bug and panics.
func AppendPong(dst []byte, payload []byte) []byte {
	if len(payload) > MaxControlPayload {
		panic("BUG: wsproto: pong payload above 125 bytes")
	}
	return append(AppendHeader(dst, OpPong, true, len(payload)), payload...)
}
