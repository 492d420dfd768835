package protocol

import "strings"

// Flags is the header's flags byte. Bits not defined here are reserved:
// senders set them to 0 and receivers ignore them.
type Flags uint8

// Defined flag bits.
const (
	// FlagAckRequested on a PUSH makes it QoS1: the client must acknowledge
	// its msg_id with an ACK (acknowledgements are cumulative).
	FlagAckRequested Flags = 1 << 0

	// FlagNoReply on a SEND makes it fire-and-forget: the server sends no
	// SEND_REPLY and no ERROR for it.
	FlagNoReply Flags = 1 << 1

	// FlagDup on a QoS1 PUSH says the server sent this msg_id to the
	// client's device before (a redelivery, like MQTT's DUP); the client
	// deduplicates by msg_id as for any push.
	FlagDup Flags = 1 << 2
)

// Has reports whether every bit of x is set in f.
func (f Flags) Has(x Flags) bool {
	return f&x == x
}

// String returns the set flags joined by "|" (e.g. "ACK_REQUESTED|0x80"),
// undefined bits in hex, or "0" when no bit is set. It is meant for logs and
// allocates.
func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var parts []string
	if f.Has(FlagAckRequested) {
		parts = append(parts, "ACK_REQUESTED")
	}
	if f.Has(FlagNoReply) {
		parts = append(parts, "NO_REPLY")
	}
	if f.Has(FlagDup) {
		parts = append(parts, "DUP")
	}
	if rest := f &^ (FlagAckRequested | FlagNoReply | FlagDup); rest != 0 {
		parts = append(parts, "0x"+hexByte(uint8(rest)))
	}
	return strings.Join(parts, "|")
}

func hexByte(b uint8) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&0xf]})
}
