package main

// The chat's own protocol, in JSON over tether: requests are the payloads of the
// clients' SENDs on the routes below, answered by SEND_REPLY with a JSON result (or
// ERROR: 4000 BAD_REQUEST for a malformed request, 4004 DENIED for one the user may
// not make, 4008 NOT_FOUND for a conversation or message that does not exist);
// the service's pushes to users are Events. README.md lists them with examples.

// Routes the service subscribes to.
const (
	RouteSend    = "chat.send"    // sendRequest → messageReply
	RouteRecall  = "chat.recall"  // recallRequest → messageReply
	RouteRead    = "chat.read"    // readRequest → {}
	RouteHistory = "chat.history" // historyRequest → historyReply
	RouteGroups  = "chat.groups"  // groupsRequest → conversationReply
	RouteTyping  = "chat.typing"  // typingRequest, sent with NO_REPLY
)

// Routes is every route the service answers.
var Routes = []string{RouteSend, RouteRecall, RouteRead, RouteHistory, RouteGroups, RouteTyping}

// Message types.
var messageTypes = map[string]bool{"text": true, "image": true, "voice": true, "video": true, "file": true}

type sendRequest struct {
	Conv     string `json:"conv"`
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	Media    *Media `json:"media,omitempty"`
	ClientID string `json:"client_id,omitempty"`
}

type messageReply struct {
	Message Message `json:"message"`
}

type recallRequest struct {
	Conv string `json:"conv"`
	Seq  int64  `json:"seq"`
}

type readRequest struct {
	Conv string `json:"conv"`
	Seq  int64  `json:"seq"`
}

// historyRequest without Conv asks for every conversation of the user with its
// newest Limit messages (a first load, or a resume that was not recovered); with Conv,
// for Limit messages before Before (0: the newest) of that conversation.
type historyRequest struct {
	Conv   string `json:"conv,omitempty"`
	Before int64  `json:"before,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// historyPage is one conversation's page of history with every member's receipts.
type historyPage struct {
	Conv     Conversation       `json:"conv"`
	Messages []Message          `json:"messages"`
	More     bool               `json:"more"`
	Receipts map[string]Receipt `json:"receipts"`
}

type historyReply struct {
	// Conversations answers a request without Conv.
	Conversations []historyPage `json:"conversations,omitempty"`
	// Page answers a request with Conv.
	Page *historyPage `json:"page,omitempty"`
}

// groupsRequest: Op "create" (Name, Members: the others), "join" or "leave" (Conv),
// or "dm" (User: open the one-to-one conversation with User).
type groupsRequest struct {
	Op      string   `json:"op"`
	Name    string   `json:"name,omitempty"`
	Members []string `json:"members,omitempty"`
	Conv    string   `json:"conv,omitempty"`
	User    string   `json:"user,omitempty"`
}

type conversationReply struct {
	Conv Conversation `json:"conv"`
}

type typingRequest struct {
	Conv string `json:"conv"`
}

// Event is what the service pushes to users: QoS1 to each member for "message",
// "recall", "receipt" (to the senders of the messages it covers) and "conversation"
// (a group's members changed); QoS0 for "typing" (to the group's room).
type Event struct {
	Type string `json:"type"`
	// Message: the new message ("message").
	Message *Message `json:"message,omitempty"`
	// Conversation: the message's conversation ("message"), or the changed one
	// ("conversation").
	Conversation *Conversation `json:"conversation,omitempty"`
	// Conv and Seq: the recalled message ("recall"), the watermark ("receipt"), the
	// conversation ("typing").
	Conv string `json:"conv,omitempty"`
	Seq  int64  `json:"seq,omitempty"`
	// User: who recalled, received or read, or types.
	User string `json:"user,omitempty"`
	// Kind: "delivered" or "read" ("receipt").
	Kind ReceiptKind `json:"kind,omitempty"`
}

// Event types.
const (
	EventMessage      = "message"
	EventRecall       = "recall"
	EventReceipt      = "receipt"
	EventConversation = "conversation"
	EventTyping       = "typing"
)
