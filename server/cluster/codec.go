package cluster

import (
	"encoding/binary"
	"errors"

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// The wire format of what nodes send each other over NATS: a small binary envelope, so a
// push's payload is carried as is (no base64, no JSON). Every message starts with the
// sender's node id (u16) and a kind byte; strings and byte strings are a u32 length then
// the bytes; lists a u32 count then the items. All integers are big-endian.

// errShort is a message that ends before its fields do.
var errShort = errors.New("cluster: truncated message")

type writer struct{ b []byte }

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *writer) bytes(p []byte) {
	w.u32(uint32(len(p)))
	w.b = append(w.b, p...)
}
func (w *writer) str(s string) {
	w.u32(uint32(len(s)))
	w.b = append(w.b, s...)
}
func (w *writer) strs(ss []string) {
	w.u32(uint32(len(ss)))
	for _, s := range ss {
		w.str(s)
	}
}
func (w *writer) ids(ids []uint64) {
	w.u32(uint32(len(ids)))
	for _, id := range ids {
		w.u64(id)
	}
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.err = errShort
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}
func (r *reader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}
func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}
func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}
func (r *reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}
func (r *reader) count() int {
	n := r.u32()
	if int64(n) > int64(len(r.b)) { // every item takes at least a byte
		r.err = errShort
		return 0
	}
	return int(n)
}
func (r *reader) bytes() []byte { return r.take(int(r.u32())) }
func (r *reader) str() string   { return string(r.bytes()) }
func (r *reader) strs() []string {
	n := r.count()
	var out []string
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.str())
	}
	return out
}
func (r *reader) ids() []uint64 {
	n := r.count()
	var out []uint64
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.u64())
	}
	return out
}

// Message kinds besides the server's ClusterKinds (which are below 64).
const (
	kindCounts    = 64 // a node's count changes (or its full state when full is set)
	kindHeartbeat = 65 // a node is alive
	kindSync      = 66 // a request for a node's full counts
)

// encodeOp encodes an operation for other nodes.
func encodeOp(node uint16, m *server.ClusterMessage) []byte {
	w := writer{b: make([]byte, 0, 64+len(m.Payload))}
	w.u16(node)
	w.u8(uint8(m.Kind))
	w.strs(m.Users)
	w.ids(m.Conns)
	w.str(m.Room)
	w.bytes(m.Payload)
	w.ids(m.Exclude)
	w.u16(uint16(m.Code))
	w.str(m.Reason)
	w.str(m.Login.UserID)
	w.str(m.Login.DeviceID)
	w.str(m.Login.Platform)
	w.u64(m.Login.TokenHash)
	w.u64(m.Login.ConnID)
	w.u64(uint64(m.Login.At))
	return w.b
}

// decodeOp decodes encodeOp's output (after its node and kind, which r has read).
func decodeOp(kind uint8, r *reader) (*server.ClusterMessage, error) {
	m := &server.ClusterMessage{Kind: server.ClusterKind(kind)}
	m.Users = r.strs()
	m.Conns = r.ids()
	m.Room = r.str()
	m.Payload = r.bytes()
	m.Exclude = r.ids()
	m.Code = protocol.CloseCode(r.u16())
	m.Reason = r.str()
	m.Login.UserID = r.str()
	m.Login.DeviceID = r.str()
	m.Login.Platform = r.str()
	m.Login.TokenHash = r.u64()
	m.Login.ConnID = r.u64()
	m.Login.At = int64(r.u64())
	return m, r.err
}

// countEntry is one changed count.
type countEntry struct {
	kind server.CountKind
	key  string
	n    uint32
}

// encodeCounts encodes a node's count changes, or with full its whole state.
func encodeCounts(node uint16, instance uint64, seq uint64, full bool, entries []countEntry) []byte {
	w := writer{}
	w.u16(node)
	w.u8(kindCounts)
	w.u64(instance)
	w.u64(seq)
	if full {
		w.u8(1)
	} else {
		w.u8(0)
	}
	w.u32(uint32(len(entries)))
	for _, e := range entries {
		w.u8(uint8(e.kind))
		w.str(e.key)
		w.u32(e.n)
	}
	return w.b
}
