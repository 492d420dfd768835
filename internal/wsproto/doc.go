// Package wsproto is the slice-based RFC 6455 layer tether needs to serve
// WebSocket from a non-blocking reactor read callback, with no goroutine per
// connection: an opening-handshake parser over the bytes buffered so far
// (Upgrade), a resumable frame decoder for client-to-server frames (Decoder,
// built on ParseHeader, Unmask and Stream) and encoders for the few
// server-to-client frames the gateway writes (AppendHeader, AppendClose,
// AppendPong).
//
// It leans on github.com/gobwas/ws for the parts that are easy to get subtly
// wrong (the header checks and Sec-WebSocket-Accept of ws.Upgrader, run over a
// bytes reader; ws.Cipher for unmasking; the close-code constants; wsflate
// for permessage-deflate parameter negotiation) and keeps the rest here,
// because gobwas' frame API reads from an io.Reader and would block or
// buffer where a reactor callback only has "whatever bytes arrived".
//
// # What it trades away
//
// Nothing here blocks and nothing buffers a data frame: binary payloads are
// unmasked in place in the caller's buffer and handed out piece by piece, so
// a message is never held whole (except a permessage-deflate message, which
// is collected and inflated when it ends; compression is off unless
// UpgradeConfig.Compression asks for it). The price is that text messages are not
// supported at all (tether frames travel only as binary messages; a text
// frame is refused with 1003 rather than validated as UTF-8), and the
// decoder does not reassemble messages; the tether frame decoder above it
// already accepts any split of its byte stream.
//
// # Close codes
//
// tether's own close codes (1000 and 3000-3999, protocol.CloseCode) are sent
// as the WebSocket close code unchanged: 3000-3999 is the range RFC 6455
// section 7.4.2 registers for libraries and applications, and 1000 means the
// same thing in both. WebSocket-level violations found here use the RFC 6455
// codes: 1002 protocol error (unmasked client frame, RSV bits, unknown
// opcode, fragmented or oversized control frame, continuation without a
// message, new message inside an unfinished one, malformed close payload),
// 1003 unsupported data (text frames), 1007 invalid payload (close reason not
// UTF-8) and 1009 message too big (Decoder.MaxMessage). These are returned as
// *CloseError, whose Code is what the gateway should put in its close frame.
//
// # Concurrency
//
// Upgrade, ParseHeader, Unmask and the Append functions are pure and safe to
// call from any goroutine. A Decoder or Stream belongs to one connection and
// must be used by one goroutine at a time (the reactor's read callback for
// that connection); nothing in this package starts a goroutine or takes a
// lock.
package wsproto
