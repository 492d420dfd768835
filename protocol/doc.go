// Package protocol implements tether's binary wire protocol: the frame
// layout, the opcodes, the close and error codes, and one message type per
// opcode body. docs/PROTOCOL.md is the normative description for client
// implementers; this package is its reference implementation and its tests
// check that the worked frames printed there match the bytes produced here.
//
// # Scope
//
// The package only converts between bytes and values. It does no I/O, keeps
// no per-connection state beyond the Decoder's partial frame, and does not
// enforce the connection state machine (which opcodes are allowed before
// HELLO, heartbeats, QoS1 bookkeeping): the server and client packages do,
// following the rules written down in PROTOCOL.md.
//
// # Frames
//
// A frame is a 4-byte big-endian length prefix, an 8-byte fixed header
// (version, opcode, flags, reserved, seq) and a body:
//
//	length uint32 | version uint8 | opcode uint8 | flags uint8 | reserved uint8 | seq uint32 | body
//
// Two readers cover the ways bytes arrive:
//
//   - Parse parses one frame at the start of a byte slice.
//   - Decoder is a resumable streaming decoder for a byte stream read in
//     arbitrary chunks (net.Conn reads).
//
// The package depends on the standard library only, so the client SDK that
// imports it links no reactor.
//
// Both check the length prefix against a caller-supplied limit as soon
// as its 4 bytes are available, before allocating or waiting for the body, so
// a peer cannot make the reader buffer more than the limit.
//
// # Trade-offs
//
// Decoding is zero-copy: a Frame's Body and the []byte payload fields of the
// messages alias the input buffer, and each function says how long that
// buffer stays valid. Callers that keep a payload longer must copy it
// (Frame.Clone, or bytes.Clone on the field). Text fields (tokens, routes,
// rooms, reasons) are decoded into strings, which copies them: they are short
// and routinely outlive the read buffer as map keys. Decoders reject text
// that is not valid UTF-8 (ErrInvalidUTF8, wrapped with ErrMalformedBody), at
// the cost of one utf8.Valid pass over each string. Encoders refuse it too
// (ErrInvalidUTF8), so no frame they build is one a decoder rejects; CleanText
// makes free text (reasons, messages) fit.
//
// Encoding appends to a caller-owned slice and allocates nothing when the
// slice has room, so a hot path can reuse one buffer per connection. An
// encoded frame is an ordinary []byte: a broadcast is encoded once and the
// same slice is written to every recipient (for example with netpoll's
// Writer.WriteBinary), which is safe only as long as nobody modifies the
// slice afterwards.
//
// Encoders do not check a frame against the peer's announced max_frame;
// that limit belongs to the connection, so the caller checks it. Message
// encoders do refuse a frame above MaxFrameLimit and a text field longer than
// 65535 bytes, the two things no receiver can ever accept.
//
// # Concurrency
//
// All functions and message methods are safe for concurrent use on distinct
// values. A Decoder belongs to one connection's reading goroutine.
package protocol
