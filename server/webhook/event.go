package webhook

import "time"

// Event types posted.
const (
	TypeOnline  = "online"
	TypeOffline = "offline"
	TypeUplink  = "uplink"
)

// Event is the JSON body of one delivery (docs/WEBHOOKS.md shows each type).
type Event struct {
	// Type is TypeOnline, TypeOffline or TypeUplink.
	Type string `json:"type"`
	// Conn, User, Device and Platform describe the client connection.
	Conn     uint64 `json:"conn"`
	User     string `json:"user"`
	Device   string `json:"device,omitempty"`
	Platform string `json:"platform,omitempty"`
	// Code and Reason are an offline event's close code and its name
	// (PROTOCOL.md §9), e.g. 3502 and "KICKED".
	Code   uint16 `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Route and Payload are an uplink's route and payload; the payload travels
	// base64-encoded (standard alphabet, padded) and is absent when empty.
	Route   string `json:"route,omitempty"`
	Payload []byte `json:"payload_b64,omitempty"`
	// Node is the cluster node the connection is on (0 on a single node); in a
	// cluster each node posts its own connections' events.
	Node uint16 `json:"node"`
	// Time is when the gateway saw the event (RFC 3339 with nanoseconds, UTC).
	Time time.Time `json:"time"`
	// ID identifies the delivery; retries keep it, so a receiver dedupes by it.
	ID string `json:"id"`
}
