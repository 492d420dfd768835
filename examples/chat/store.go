package main

import "context"

// Store keeps what the chat service must remember across client reconnects and
// service restarts: conversations with their members, each conversation's messages
// (recalled ones as tombstones) and each member's delivery and read watermarks. Media
// are never stored, only their URLs and metadata.
//
// Implementations must be safe for concurrent use; each method is atomic on its own
// (the service never needs a transaction spanning two calls: a lost race between two
// calls at worst shows a receipt a moment late). memoryStore and sqliteStore
// implement it and pass the same suite (store_test.go).
type Store interface {
	// PutConversation creates c or replaces its name and members.
	PutConversation(ctx context.Context, c Conversation) error
	// Conversation returns the conversation id, or ErrNotFound.
	Conversation(ctx context.Context, id string) (Conversation, error)
	// Conversations returns the conversations user is a member of, most recently
	// active first.
	Conversations(ctx context.Context, user string) ([]Conversation, error)
	// Append gives m the next Seq of its conversation (starting at 1), stores it and
	// returns it. The conversation must exist (else ErrNotFound).
	Append(ctx context.Context, m Message) (Message, error)
	// Message returns message seq of conversation conv, or ErrNotFound.
	Message(ctx context.Context, conv string, seq int64) (Message, error)
	// Recall marks message seq recalled and erases its content (Text and Media). It
	// returns the tombstone, or ErrNotFound.
	Recall(ctx context.Context, conv string, seq int64) (Message, error)
	// History returns up to limit messages of conv with Seq < before (before <= 0:
	// from the newest), oldest first, and whether older ones exist.
	History(ctx context.Context, conv string, before int64, limit int) (msgs []Message, more bool, err error)
	// Range returns the messages of conv with after < Seq <= upto, oldest first, at
	// most limit of them.
	Range(ctx context.Context, conv string, after, upto int64, limit int) ([]Message, error)
	// MarkReceipt raises user's watermark of kind in conv to seq; it never lowers
	// it. It returns the watermark before the call.
	MarkReceipt(ctx context.Context, conv, user string, kind ReceiptKind, seq int64) (old int64, err error)
	// Receipts returns every member's watermarks in conv.
	Receipts(ctx context.Context, conv string) (map[string]Receipt, error)
	// Close releases the store.
	Close() error
}

// Conversation is a one-to-one chat (Kind "dm", ID dmID of its two members) or a group
// (Kind "group", ID "g:" and a random suffix; its members are in the tether room of
// the same name).
type Conversation struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Name    string   `json:"name,omitempty"`
	Members []string `json:"members"`
	// LastSeq is the Seq of the newest message (0 for none); filled by the store.
	LastSeq int64 `json:"last_seq"`
}

// Conversation kinds.
const (
	KindDM    = "dm"
	KindGroup = "group"
)

// Message is one chat message. Type is "text", "image", "voice", "video" or "file";
// media types carry Media. A recalled message keeps its place (Seq) with Recalled set
// and Text and Media erased.
type Message struct {
	Conv     string `json:"conv"`
	Seq      int64  `json:"seq"`
	From     string `json:"from"`
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	Media    *Media `json:"media,omitempty"`
	SentMS   int64  `json:"sent_ms"`
	Recalled bool   `json:"recalled,omitempty"`
	// ClientID is the sender's own id for the message, so its page can match the
	// reply and the push to the bubble it drew.
	ClientID string `json:"client_id,omitempty"`
}

// Media describes an image, voice note, video or file kept elsewhere: the service
// stores only this.
type Media struct {
	URL        string `json:"url"`
	Mime       string `json:"mime"`
	Size       int64  `json:"size,omitempty"`
	Name       string `json:"name,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	ThumbURL   string `json:"thumb_url,omitempty"`
}

// ReceiptKind names a watermark: delivered (a device of the member acknowledged the
// QoS1 push) or read (the member's page said so).
type ReceiptKind string

// Receipt kinds.
const (
	Delivered ReceiptKind = "delivered"
	Read      ReceiptKind = "read"
)

// Receipt is a member's watermarks in a conversation: every message with Seq up to
// Delivered reached one of its devices, up to Read was shown to it.
type Receipt struct {
	Delivered int64 `json:"delivered"`
	Read      int64 `json:"read"`
}
