package protocol

import (
	"encoding/binary"
	"math"
)

// AppendHeader appends the length prefix and fixed header of a frame whose
// body will be bodyLen bytes long, and returns the extended slice. The caller
// appends exactly bodyLen body bytes next. A zero h.Version is written as
// Version; the reserved byte is written as 0. AppendHeader allocates only if
// dst lacks Overhead bytes of capacity.
//
// AppendHeader does not check the length against any frame limit; it panics
// only if bodyLen is negative or the length does not fit the uint32 field,
// which is a bug in the caller.
func AppendHeader(dst []byte, h Header, bodyLen int) []byte {
	if bodyLen < 0 || uint64(bodyLen) > math.MaxUint32-HeaderSize {
		panic("protocol: BUG: AppendHeader: body length out of range")
	}
	return appendHeader(dst, h, uint32(HeaderSize+bodyLen))
}

// AppendFrame appends a complete frame with header h and the given body to
// dst and returns the extended slice. It is the general-purpose encoder for
// bodies built elsewhere; the message types' AppendFrame methods build the
// body in place instead. It allocates only if dst lacks capacity.
func AppendFrame(dst []byte, h Header, body []byte) []byte {
	dst = AppendHeader(dst, h, len(body))
	return append(dst, body...)
}

// AppendEmpty appends a frame with an empty body and no flags, as used by
// PING, PONG and OK, and returns the extended slice. It allocates only if
// dst lacks Overhead bytes of capacity.
func AppendEmpty(dst []byte, op Opcode, seq uint32) []byte {
	return appendHeader(dst, Header{Op: op, Seq: seq}, HeaderSize)
}

// BeginFrame appends the prefix and header of a frame whose body length is
// not known yet, with a placeholder length. It returns the extended slice
// and the offset of the frame's first byte. The caller appends the body to
// out and then calls EndFrame(out, start) to patch in the length:
//
//	b, start := protocol.BeginFrame(buf[:0], protocol.Header{Op: protocol.OpSendReply, Seq: seq})
//	b = append(b, reply...)
//	b = protocol.EndFrame(b, start)
//
// Several frames may be begun and ended one after another in the same
// buffer. BeginFrame allocates only if dst lacks Overhead bytes of capacity.
func BeginFrame(dst []byte, h Header) (out []byte, start int) {
	start = len(dst)
	return appendHeader(dst, h, 0), start
}

// EndFrame writes the length of the frame that BeginFrame began at offset
// start of b, counting every byte appended since, and returns b. It panics
// if b is too short to hold the frame begun at start or if the length
// overflows the uint32 field, both bugs in the caller.
func EndFrame(b []byte, start int) []byte {
	if start < 0 || len(b)-start < Overhead {
		panic("protocol: BUG: EndFrame: no frame begun at start")
	}
	length := len(b) - start - LengthSize
	if uint64(length) > math.MaxUint32 {
		panic("protocol: BUG: EndFrame: frame length overflows uint32")
	}
	binary.BigEndian.PutUint32(b[start:], uint32(length))
	return b
}

func appendHeader(dst []byte, h Header, length uint32) []byte {
	v := h.Version
	if v == 0 {
		v = Version
	}
	dst = binary.BigEndian.AppendUint32(dst, length)
	dst = append(dst, v, byte(h.Op), byte(h.Flags), 0)
	return binary.BigEndian.AppendUint32(dst, h.Seq)
}
