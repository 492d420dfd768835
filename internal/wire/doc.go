// Package wire is the codec of tether's control port: the opcodes 0x40–0x7F and the
// bodies backend services and the gateway exchange over it. docs/PROTOCOL.md §15 is the
// normative description; the gateway side (package server/control) and the Go service
// SDK (package client/service) both use this package, which depends only on the protocol
// package and the standard library, so a service binary links neither the gateway nor
// its JSON library.
//
// # Body layout
//
// Control frames use the client port's 12-byte frame header (protocol.Header). Their
// body is a small JSON object followed by opaque payload bytes:
//
//	u16 json_len | json_len bytes of a JSON object | payload (rest of the body)
//
// json_len 0 stands for {}. The payload is never base64-encoded, so a push or an uplink
// costs its own size plus a short header.
//
// # Trade-offs
//
// JSON headers cost a few microseconds per frame to encode and parse, which is
// negligible next to what a control request does (a fan-out to many connections) and
// buys a format any language reads without a code generator. The package-level
// functions use encoding/json (Std); the gateway passes its own Codec (sonic) on its hot
// path, with byte-identical output. Unknown JSON fields are ignored, so later revisions
// may add fields. Decoding copies every string out of the frame, because decoded route
// and room names outlive the read buffer; payloads returned by SplitBody and DecodeBody
// alias the body instead.
//
// # Concurrency
//
// Every function is safe for concurrent use; the message types are plain values.
package wire
