package wire

import "github.com/tether-gw/tether/protocol"

// The JSON headers of the control-port bodies, one type per opcode (and one per
// result). Field tags are the wire names; PROTOCOL.md §15 lists them with examples.
// Connection ids are JSON numbers: they count up from 1 in one gateway process, far
// below the 2^53 that JavaScript numbers hold exactly.

// Auth is the header of AUTH, the first frame of every control connection.
type Auth struct {
	// Secret is the control port's shared secret.
	Secret string `json:"secret"`
	// Name names the service, for the gateway's logs and metrics.
	Name string `json:"name,omitempty"`
}

// AuthResult is the RESULT of a successful AUTH.
type AuthResult struct {
	// Session is the gateway's id of this control connection, for logs.
	Session uint64 `json:"session"`
	// MaxFrame is the largest length field the gateway accepts on this connection.
	MaxFrame int `json:"max_frame"`
	// ClientMaxFrame is the client port's max frame (the largest length field clients
	// accept): a PUSH payload must fit in it with the PUSH fields, a REPLY payload
	// with the SEND_REPLY fields, or the gateway answers FAIL BAD_REQUEST.
	ClientMaxFrame int `json:"client_max_frame,omitempty"`
	// UplinkTimeoutMs is how long the gateway waits for a REPLY before answering the
	// client ERROR TIMEOUT.
	UplinkTimeoutMs int64 `json:"uplink_timeout_ms"`
}

// Fail is the header of FAIL, the gateway's answer to a request that failed. The
// connection stays open.
type Fail struct {
	// Code is from the 4000–4999 range, e.g. protocol.ErrorNotFound.
	Code protocol.ErrorCode `json:"code"`
	// Message is human-readable detail, for logs.
	Message string `json:"message,omitempty"`
	// Offline is set on a PUSH that failed with NOT_FOUND: how many of the addressed
	// users (or connections) were not online.
	Offline int `json:"offline,omitempty"`
	// Delivered is set on a PUSH that failed with UNAVAILABLE: how many connections
	// of this node got it before its cross-node part failed (so a retry can tell it
	// would repeat the message to them).
	Delivered int `json:"delivered,omitempty"`
}

// Push is the header of PUSH; the payload is the message. Exactly one of Users,
// Conns, Room and All addresses it.
type Push struct {
	// Users are user ids: every connection (device) of each gets the message.
	Users []string `json:"users,omitempty"`
	// Conns are connection ids.
	Conns []uint64 `json:"conns,omitempty"`
	// Room is a room name: its members get the message with the room as channel.
	Room string `json:"room,omitempty"`
	// All sends the message to every authenticated connection.
	All bool `json:"all,omitempty"`
	// Exclude lists connection ids that must not get the message (Users, Conns and
	// Room pushes), typically the sender's own connection.
	Exclude []uint64 `json:"exclude,omitempty"`
	// QoS 1 makes a Users or Conns push sequenced and acknowledged
	// (PROTOCOL.md §11); 0 (the default) is fire-and-forget.
	QoS int `json:"qos,omitempty"`
}

// PushResult is the RESULT of PUSH.
type PushResult struct {
	// Delivered is how many connections the message was written or queued to.
	Delivered int `json:"delivered"`
	// Offline is how many addressed users had no connection (or addressed
	// connections did not exist).
	Offline int `json:"offline"`
	// MsgIDs maps each user to the msg_id its QoS1 message got in the user's
	// sequence; only for QoS1 pushes.
	MsgIDs map[string]uint64 `json:"msg_ids,omitempty"`
}

// Kick is the header of KICK: close the users' connections, or the connections, with
// CLOSE Code and Reason. Exactly one of Users and Conns is set.
type Kick struct {
	Users []string `json:"users,omitempty"`
	Conns []uint64 `json:"conns,omitempty"`
	// Code is the CLOSE code, 1000 or 3000–3999; default 3502 KICKED (terminal).
	Code protocol.CloseCode `json:"code,omitempty"`
	// Reason is sent to the clients in CLOSE.
	Reason string `json:"reason,omitempty"`
}

// KickResult is the RESULT of KICK.
type KickResult struct {
	// Kicked is how many connections were closed.
	Kicked int `json:"kicked"`
	// Missing is how many addressed users were offline (or connections not found).
	Missing int `json:"missing"`
}

// Room is the header of JOIN and LEAVE: put the users' connections, or the
// connections, in Room or take them out. Exactly one of Users and Conns is set.
type Room struct {
	Room  string   `json:"room"`
	Users []string `json:"users,omitempty"`
	Conns []uint64 `json:"conns,omitempty"`
}

// RoomResult is the RESULT of JOIN and LEAVE.
type RoomResult struct {
	// Conns is how many connections joined (or left) the room.
	Conns int `json:"conns"`
	// Missing is how many addressed users were offline (or connections not found).
	Missing int `json:"missing"`
	// Refused is how many connections could not join because they are in as many
	// rooms as the gateway allows (JOIN only).
	Refused int `json:"refused,omitempty"`
}

// Presence is the header of PRESENCE: which of Users are online, and how many
// members each of Rooms has.
type Presence struct {
	Users []string `json:"users,omitempty"`
	Rooms []string `json:"rooms,omitempty"`
}

// PresenceResult is the RESULT of PRESENCE.
type PresenceResult struct {
	// Users maps every asked user to its connections; an offline user maps to an
	// empty list.
	Users map[string][]ConnInfo `json:"users,omitempty"`
	// Rooms maps every asked room to its member count (0 for an unknown room).
	Rooms map[string]int `json:"rooms,omitempty"`
	// Totals are the gateway's counts (in a cluster, summed over the nodes that
	// answered).
	Totals Totals `json:"totals"`
	// Nodes is how many cluster nodes answered, this one included, and Missing how many
	// did not in time; both absent on a single node.
	Nodes   int `json:"nodes,omitempty"`
	Missing int `json:"missing,omitempty"`
}

// ConnInfo describes one client connection in a PresenceResult.
type ConnInfo struct {
	Conn     uint64   `json:"conn"`
	Device   string   `json:"device,omitempty"`
	Platform string   `json:"platform,omitempty"`
	Addr     string   `json:"addr,omitempty"`
	Rooms    []string `json:"rooms,omitempty"`
	// Node is the cluster node holding the connection (absent on a single node).
	Node uint16 `json:"node,omitempty"`
}

// Totals are the gateway's connection counts.
type Totals struct {
	Connections   int64 `json:"connections"`
	Authenticated int64 `json:"authenticated"`
	Users         int   `json:"users"`
	Rooms         int   `json:"rooms"`
}

// StatsResult is the RESULT of STATS: the gateway's counts and the control port's.
type StatsResult struct {
	Totals
	// Node is this gateway's node id in a cluster (absent on a single node), as in
	// ConnInfo.Node.
	Node uint16 `json:"node,omitempty"`
	// Draining is true once the gateway has begun a graceful shutdown.
	Draining bool `json:"draining"`
	// Services is the number of authenticated control connections.
	Services int `json:"services"`
	// Routes and Prefixes count the distinct exact routes and prefixes subscribed.
	Routes   int `json:"routes"`
	Prefixes int `json:"prefixes"`
	// EventSubscribers counts the control connections subscribed to events.
	EventSubscribers int `json:"event_subscribers"`
	// PendingUplinks is the number of uplinks waiting for a REPLY.
	PendingUplinks int `json:"pending_uplinks"`
	// UplinksTotal counts the uplinks dispatched to services since start.
	UplinksTotal uint64 `json:"uplinks_total"`
}

// Subscription is the header of SUBSCRIBE and UNSUBSCRIBE. Routes match a client
// SEND's route exactly, Prefixes match its beginning ("" matches every route), and
// Events (true) subscribes to, or unsubscribes from, connection events.
type Subscription struct {
	Routes   []string `json:"routes,omitempty"`
	Prefixes []string `json:"prefixes,omitempty"`
	Events   bool     `json:"events,omitempty"`
	// Acks subscribes to "ack" events: a client's QoS1 acknowledgement advanced.
	Acks bool `json:"acks,omitempty"`
}

// SubscribeResult is the RESULT of SUBSCRIBE and UNSUBSCRIBE: everything this
// control connection is subscribed to afterwards, sorted.
type SubscribeResult struct {
	Routes   []string `json:"routes"`
	Prefixes []string `json:"prefixes"`
	Events   bool     `json:"events"`
	Acks     bool     `json:"acks,omitempty"`
}

// Uplink is the header of UPLINK: a client's SEND routed to this service. The payload
// is the SEND's payload.
type Uplink struct {
	// ID identifies the uplink in the REPLY.
	ID uint64 `json:"id"`
	// Conn, User, Device and Platform describe the sending connection.
	Conn     uint64 `json:"conn"`
	User     string `json:"user"`
	Device   string `json:"device,omitempty"`
	Platform string `json:"platform,omitempty"`
	// Route is the SEND's route.
	Route string `json:"route"`
	// NoReply is true when the client asked for no answer; the service must not
	// send a REPLY (the gateway would drop it).
	NoReply bool `json:"noreply,omitempty"`
}

// Reply is the header of REPLY, a service's answer to an UPLINK; the payload is the
// reply. Code 0 sends the client SEND_REPLY with the payload; a code from the
// 4000–4999 range sends it ERROR Code with Message instead.
type Reply struct {
	ID      uint64             `json:"id"`
	Code    protocol.ErrorCode `json:"code,omitempty"`
	Message string             `json:"message,omitempty"`
}

// Event types.
const (
	EventOnline  = "online"
	EventOffline = "offline"
	// EventAck is a client's QoS1 acknowledgement: every message of the user's
	// sequence for the connection with an id up to MsgID was acknowledged.
	EventAck = "ack"
)

// Event is the header of EVENT: a client connection authenticated (online) or closed
// (offline, with its close code and that code's name as reason).
type Event struct {
	Type     string             `json:"type"`
	Conn     uint64             `json:"conn"`
	User     string             `json:"user"`
	Device   string             `json:"device,omitempty"`
	Platform string             `json:"platform,omitempty"`
	Code     protocol.CloseCode `json:"code,omitempty"`
	Reason   string             `json:"reason,omitempty"`
	MsgID    uint64             `json:"msg_id,omitempty"`
}
