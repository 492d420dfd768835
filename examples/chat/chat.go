package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/protocol"
)

// Defaults of ChatOptions.
const (
	DefaultRecallWindow = 2 * time.Minute
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 200
	DefaultPendingTTL   = 5 * time.Minute // the gateway's default resume window
	MaxTextLen          = 4000
	MaxGroupMembers     = 200
	// MaxSyncConversations bounds a first load: the most recently active
	// conversations; older ones come back when they get a message.
	MaxSyncConversations = 100
)

// ChatOptions configures a Chat; the zero value of each field keeps its default.
type ChatOptions struct {
	// Store keeps conversations, messages and receipts. Default: a memory store.
	Store Store
	// RecallWindow is how long after sending a sender may recall a message.
	// Default DefaultRecallWindow.
	RecallWindow time.Duration
	// PendingTTL is how long a message's msg ids are kept waiting for their ack
	// events (the gateway's resume window). Default DefaultPendingTTL.
	PendingTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives the service's logs. Default slog.Default().
	Logger *slog.Logger
}

func (o ChatOptions) withDefaults() ChatOptions {
	if o.Store == nil {
		o.Store = newMemoryStore()
	}
	if o.RecallWindow == 0 {
		o.RecallWindow = DefaultRecallWindow
	}
	if o.PendingTTL == 0 {
		o.PendingTTL = DefaultPendingTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Chat is the chat service: it answers the chat routes' uplinks, pushes messages,
// recalls and receipts to the users concerned, and keeps groups' rooms in step with
// their members.
//
// Goroutines: uplinks run on the service SDK's uplink goroutines (many at once);
// connection and ack events are queued by OnEvent (which must not block) and handled
// in order by one worker goroutine, which may make control-port requests. mu
// serialises membership changes (read, modify, write of a conversation), so one Chat
// must be the only writer of its Store's conversations.
type Chat struct {
	opts  ChatOptions
	store Store
	log   *slog.Logger
	svc   *service.Service
	dl    *deliveries

	mu sync.Mutex // membership changes

	qmu    sync.Mutex
	queue  []service.Event
	wake   chan struct{}
	done   chan struct{}
	worker sync.WaitGroup
	closed sync.Once
}

// NewChat returns a Chat; Connect attaches it to a gateway.
func NewChat(opts ChatOptions) *Chat {
	opts = opts.withDefaults()
	return &Chat{
		opts: opts, store: opts.Store, log: opts.Logger,
		dl:   newDeliveries(opts.PendingTTL, 4096),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// Connect dials the gateway's control port at addr with secret (reconnecting when the
// connection is lost) and subscribes to the chat routes, connection events and ack
// events. Until ctx ends it tries again every quarter second while the port refuses
// connections (a gateway started alongside), but not when the gateway refuses the
// secret. Close undoes it.
func (c *Chat) Connect(ctx context.Context, addr, secret string) error {
	var svc *service.Service
	var err error
	for {
		svc, err = service.Dial(ctx, addr, service.Options{
			Secret: secret, Name: "chat", Logger: c.log, Reconnect: true,
			OnUplink: c.onUplink, OnEvent: c.onEvent,
		})
		var ce *service.CloseError
		if err == nil || errors.As(err, &ce) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
			continue
		}
		break
	}
	if err != nil {
		return fmt.Errorf("cannot connect to the control port %s: %w", addr, err)
	}
	c.svc = svc
	c.worker.Add(1)
	go c.work()
	if _, err := svc.Subscribe(ctx, service.Subscription{Routes: Routes, Events: true, Acks: true}); err != nil {
		c.Close()
		return fmt.Errorf("cannot subscribe to the chat routes: %w", err)
	}
	return nil
}

// Close stops the worker and closes the control connection; the Store stays open.
// Calls after the first do nothing.
func (c *Chat) Close() error {
	var err error
	c.closed.Do(func() {
		close(c.done)
		c.worker.Wait()
		if c.svc != nil {
			err = c.svc.Close()
		}
	})
	return err
}

// onUplink decodes a request, runs its handler and answers with its JSON result or
// the ERROR its error maps to.
func (c *Chat) onUplink(u *service.Uplink) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.handle(ctx, u)
	if u.NoReply {
		return
	}
	if err != nil {
		code := protocol.ErrorInternal
		switch {
		case errors.Is(err, errBadRequest):
			code = protocol.ErrorBadRequest
		case errors.Is(err, errDenied):
			code = protocol.ErrorDenied
		case errors.Is(err, ErrNotFound):
			code = protocol.ErrorNotFound
		default:
			c.log.Warn("chat request failed", "route", u.Route, "user", u.User, "err", err)
		}
		u.Fail(code, err.Error())
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		u.Fail(protocol.ErrorInternal, err.Error())
		return
	}
	u.Reply(b)
}

func decode[T any](payload []byte) (T, error) {
	var v T
	if err := json.Unmarshal(payload, &v); err != nil {
		return v, badRequest("malformed JSON: %v", err)
	}
	return v, nil
}

func (c *Chat) handle(ctx context.Context, u *service.Uplink) (any, error) {
	if u.User == "" {
		return nil, denied("anonymous connection")
	}
	switch u.Route {
	case RouteSend:
		req, err := decode[sendRequest](u.Payload)
		if err != nil {
			return nil, err
		}
		return c.send(ctx, u.User, req)
	case RouteRecall:
		req, err := decode[recallRequest](u.Payload)
		if err != nil {
			return nil, err
		}
		return c.recall(ctx, u.User, req)
	case RouteRead:
		req, err := decode[readRequest](u.Payload)
		if err != nil {
			return nil, err
		}
		return struct{}{}, c.read(ctx, u.User, req)
	case RouteHistory:
		req, err := decode[historyRequest](u.Payload)
		if err != nil {
			return nil, err
		}
		return c.history(ctx, u.User, req)
	case RouteGroups:
		req, err := decode[groupsRequest](u.Payload)
		if err != nil {
			return nil, err
		}
		return c.groups(ctx, u.User, req)
	case RouteTyping:
		req, err := decode[typingRequest](u.Payload)
		if err != nil {
			return nil, err
		}
		return nil, c.typing(ctx, u, req)
	}
	return nil, badRequest("unknown route %q", u.Route)
}

// member returns conversation id if user is one of its members.
func (c *Chat) member(ctx context.Context, id, user string) (Conversation, error) {
	conv, err := c.store.Conversation(ctx, id)
	if err != nil {
		return Conversation{}, err
	}
	if !slices.Contains(conv.Members, user) {
		return Conversation{}, denied("not a member of %s", id)
	}
	return conv, nil
}

// send stores a message and pushes it, QoS1, to every member (the sender's other
// devices included); the msg ids it got wait for the recipients' ack events.
func (c *Chat) send(ctx context.Context, user string, req sendRequest) (messageReply, error) {
	if err := validMessage(req); err != nil {
		return messageReply{}, err
	}
	conv, err := c.member(ctx, req.Conv, user)
	if err != nil {
		return messageReply{}, err
	}
	now := c.opts.Now()
	m, err := c.store.Append(ctx, Message{
		Conv: conv.ID, From: user, Type: req.Type, Text: req.Text, Media: req.Media,
		SentMS: now.UnixMilli(), ClientID: req.ClientID,
	})
	if err != nil {
		return messageReply{}, err
	}
	conv.LastSeq = m.Seq
	res, err := c.push(ctx, conv.Members, Event{Type: EventMessage, Message: &m, Conversation: &conv})
	if err == nil {
		for _, member := range conv.Members {
			id, ok := res.MsgIDs[member]
			if member == user || !ok {
				continue
			}
			p := pending{msgID: id, conv: m.Conv, seq: m.Seq, from: user, at: now}
			if c.dl.add(member, p) {
				c.delivered(ctx, member, []pending{p})
			}
		}
	}
	return messageReply{Message: m}, nil
}

func validMessage(req sendRequest) error {
	if !messageTypes[req.Type] {
		return badRequest("message type %q: want text, image, voice, video or file", req.Type)
	}
	if !utf8.ValidString(req.Text) || len(req.Text) > MaxTextLen {
		return badRequest("text: invalid UTF-8 or longer than %d bytes", MaxTextLen)
	}
	if req.Type == "text" {
		if strings.TrimSpace(req.Text) == "" || req.Media != nil {
			return badRequest("a text message needs text and no media")
		}
		return nil
	}
	md := req.Media
	if md == nil {
		return badRequest("a %s message needs media", req.Type)
	}
	if !mediaURL(md.URL) || (md.ThumbURL != "" && !mediaURL(md.ThumbURL)) {
		return badRequest("media URLs %q, %q: want http(s):// or a path", md.URL, md.ThumbURL)
	}
	if md.Mime == "" || md.Size < 0 || md.Width < 0 || md.Height < 0 || md.DurationMS < 0 {
		return badRequest("media metadata: a mime type and no negative sizes")
	}
	return nil
}

// mediaURL accepts absolute http(s) URLs and paths on the page's own origin; nothing
// that a browser would run (javascript:, data:).
func mediaURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	if u.Scheme == "" {
		return u.Host == "" && strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(s, "//")
	}
	return (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// push sends ev QoS1 to users. Nobody online and nobody within the resume window is
// not an error: they get it from history.
func (c *Chat) push(ctx context.Context, users []string, ev Event) (service.PushResult, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return service.PushResult{}, err
	}
	res, err := c.svc.PushUsers(ctx, users, b, service.PushOptions{QoS1: true})
	if err != nil && !service.IsNotFound(err) {
		c.log.Warn("push failed; the users will get it from history", "type", ev.Type, "err", err)
	}
	return res, err
}

// recall lets the sender recall its message within the recall window: the store keeps
// a tombstone (history shows it recalled) and every member is pushed a "recall", QoS1,
// so a client offline now removes the message when it resumes.
func (c *Chat) recall(ctx context.Context, user string, req recallRequest) (messageReply, error) {
	if _, err := c.member(ctx, req.Conv, user); err != nil {
		return messageReply{}, err
	}
	m, err := c.store.Message(ctx, req.Conv, req.Seq)
	if err != nil {
		return messageReply{}, err
	}
	switch {
	case m.From != user:
		return messageReply{}, denied("only the sender may recall a message")
	case m.Recalled:
		return messageReply{Message: m}, nil
	case c.opts.Now().Sub(time.UnixMilli(m.SentMS)) > c.opts.RecallWindow:
		return messageReply{}, denied("the recall window (%v) has passed", c.opts.RecallWindow)
	}
	m, err = c.store.Recall(ctx, req.Conv, req.Seq)
	if err != nil {
		return messageReply{}, err
	}
	conv, err := c.store.Conversation(ctx, req.Conv)
	if err != nil {
		return messageReply{}, err
	}
	c.push(ctx, conv.Members, Event{Type: EventRecall, Conv: m.Conv, Seq: m.Seq, User: user})
	return messageReply{Message: m}, nil
}

// read records that user has read conv up to seq (so also received it) and tells the
// senders of the newly read messages.
func (c *Chat) read(ctx context.Context, user string, req readRequest) error {
	conv, err := c.member(ctx, req.Conv, user)
	if err != nil {
		return err
	}
	seq := min(req.Seq, conv.LastSeq)
	if _, err := c.store.MarkReceipt(ctx, conv.ID, user, Delivered, seq); err != nil {
		return err
	}
	return c.receipt(ctx, conv.ID, user, Read, seq)
}

// delivered turns acknowledged pushes into delivery receipts, one per conversation.
func (c *Chat) delivered(ctx context.Context, user string, done []pending) {
	top := map[string]int64{}
	for _, p := range done {
		top[p.conv] = max(top[p.conv], p.seq)
	}
	for conv, seq := range top {
		if err := c.receipt(ctx, conv, user, Delivered, seq); err != nil && !errors.Is(err, ErrNotFound) {
			c.log.Warn("cannot record a delivery receipt", "conv", conv, "user", user, "err", err)
		}
	}
}

// receipt raises user's watermark of kind in conv to seq and, if it rose, pushes a
// receipt to the other senders of the messages it now covers.
func (c *Chat) receipt(ctx context.Context, conv, user string, kind ReceiptKind, seq int64) error {
	old, err := c.store.MarkReceipt(ctx, conv, user, kind, seq)
	if err != nil || seq <= old {
		return err
	}
	msgs, err := c.store.Range(ctx, conv, max(old, seq-MaxHistoryLimit), seq, MaxHistoryLimit)
	if err != nil {
		return err
	}
	var senders []string
	for _, m := range msgs {
		if m.From != user && !slices.Contains(senders, m.From) {
			senders = append(senders, m.From)
		}
	}
	if len(senders) > 0 {
		c.push(ctx, senders, Event{Type: EventReceipt, Conv: conv, Seq: seq, User: user, Kind: kind})
	}
	return nil
}

// history answers a first load (every conversation's newest page) or a page of one
// conversation.
func (c *Chat) history(ctx context.Context, user string, req historyRequest) (historyReply, error) {
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	limit = min(limit, MaxHistoryLimit)
	page := func(conv Conversation, before int64) (historyPage, error) {
		msgs, more, err := c.store.History(ctx, conv.ID, before, limit)
		if err != nil {
			return historyPage{}, err
		}
		rc, err := c.store.Receipts(ctx, conv.ID)
		if msgs == nil {
			msgs = []Message{}
		}
		return historyPage{Conv: conv, Messages: msgs, More: more, Receipts: rc}, err
	}
	if req.Conv != "" {
		conv, err := c.member(ctx, req.Conv, user)
		if err != nil {
			return historyReply{}, err
		}
		p, err := page(conv, req.Before)
		return historyReply{Page: &p}, err
	}
	convs, err := c.store.Conversations(ctx, user)
	if err != nil {
		return historyReply{}, err
	}
	out := historyReply{Conversations: []historyPage{}}
	for _, conv := range convs[:min(len(convs), MaxSyncConversations)] {
		p, err := page(conv, 0)
		if err != nil {
			return historyReply{}, err
		}
		out.Conversations = append(out.Conversations, p)
	}
	return out, nil
}

// dmID is the id of the one-to-one conversation of a and b, the same both ways.
func dmID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "dm:" + a + "|" + b
}

// groups creates, joins and leaves groups and opens one-to-one conversations. A group
// is a tether room of the same id: the service joins its members' connections now
// (JOIN by user) and on every later login (the "online" event).
func (c *Chat) groups(ctx context.Context, user string, req groupsRequest) (conversationReply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch req.Op {
	case "dm":
		if req.User == "" || req.User == user || strings.Contains(req.User+user, "|") {
			return conversationReply{}, badRequest("dm: a user other than yourself, without '|'")
		}
		conv, err := c.store.Conversation(ctx, dmID(user, req.User))
		if errors.Is(err, ErrNotFound) {
			conv = Conversation{ID: dmID(user, req.User), Kind: KindDM, Members: []string{user, req.User}}
			err = c.store.PutConversation(ctx, conv)
		}
		return conversationReply{Conv: conv}, err
	case "create":
		members := []string{user}
		for _, m := range req.Members {
			if m != "" && !slices.Contains(members, m) {
				members = append(members, m)
			}
		}
		if len(members) > MaxGroupMembers || strings.TrimSpace(req.Name) == "" || len(req.Name) > 100 {
			return conversationReply{}, badRequest("create: a name of 1 to 100 bytes and at most %d members", MaxGroupMembers)
		}
		var id [8]byte
		rand.Read(id[:])
		conv := Conversation{ID: "g:" + hex.EncodeToString(id[:]), Kind: KindGroup, Name: req.Name, Members: members}
		if err := c.store.PutConversation(ctx, conv); err != nil {
			return conversationReply{}, err
		}
		c.joinRoom(ctx, conv.ID, members...)
		c.push(ctx, members, Event{Type: EventConversation, Conversation: &conv})
		return conversationReply{Conv: conv}, nil
	case "join", "leave":
		conv, err := c.store.Conversation(ctx, req.Conv)
		if err != nil {
			return conversationReply{}, err
		}
		if conv.Kind != KindGroup {
			return conversationReply{}, denied("%s is not a group", conv.ID)
		}
		told := slices.Clone(conv.Members)
		if req.Op == "join" {
			if slices.Contains(conv.Members, user) {
				return conversationReply{Conv: conv}, nil
			}
			if len(conv.Members) >= MaxGroupMembers {
				return conversationReply{}, denied("the group is full")
			}
			conv.Members = append(conv.Members, user)
			told = conv.Members
		} else {
			if !slices.Contains(conv.Members, user) {
				return conversationReply{Conv: conv}, nil
			}
			conv.Members = slices.DeleteFunc(conv.Members, func(m string) bool { return m == user })
		}
		if err := c.store.PutConversation(ctx, conv); err != nil {
			return conversationReply{}, err
		}
		if req.Op == "join" {
			c.joinRoom(ctx, conv.ID, user)
		} else if _, err := c.svc.LeaveUsers(ctx, conv.ID, user); err != nil && !service.IsNotFound(err) {
			c.log.Warn("cannot take a user out of a group's room", "conv", conv.ID, "user", user, "err", err)
		}
		c.push(ctx, told, Event{Type: EventConversation, Conversation: &conv})
		return conversationReply{Conv: conv}, nil
	}
	return conversationReply{}, badRequest("op %q: want create, join, leave or dm", req.Op)
}

func (c *Chat) joinRoom(ctx context.Context, room string, users ...string) {
	if _, err := c.svc.JoinUsers(ctx, room, users...); err != nil && !service.IsNotFound(err) {
		c.log.Warn("cannot put users in a group's room", "conv", room, "err", err)
	}
}

// typing relays "user is typing" to the group's room (QoS0: worthless a moment later)
// or to the other member of a one-to-one conversation.
func (c *Chat) typing(ctx context.Context, u *service.Uplink, req typingRequest) error {
	conv, err := c.member(ctx, req.Conv, u.User)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(Event{Type: EventTyping, Conv: conv.ID, User: u.User})
	if conv.Kind == KindGroup {
		_, err = c.svc.PushRoom(ctx, conv.ID, b, u.Conn)
	} else {
		others := slices.DeleteFunc(slices.Clone(conv.Members), func(m string) bool { return m == u.User })
		_, err = c.svc.PushUsers(ctx, others, b, service.PushOptions{})
	}
	if service.IsNotFound(err) {
		return nil
	}
	return err
}

// onEvent queues connection and ack events for the worker: it runs on the service's
// reading goroutine, which must not wait for a request's answer.
func (c *Chat) onEvent(ev service.Event) {
	c.qmu.Lock()
	c.queue = append(c.queue, ev)
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Chat) work() {
	defer c.worker.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		c.qmu.Lock()
		evs := c.queue
		c.queue = nil
		c.qmu.Unlock()
		for _, ev := range evs {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c.event(ctx, ev)
			cancel()
		}
	}
}

// event handles one queued event: a login joins the connection to the user's groups'
// rooms; an ack turns the messages it covers into delivery receipts.
func (c *Chat) event(ctx context.Context, ev service.Event) {
	switch ev.Type {
	case "online":
		convs, err := c.store.Conversations(ctx, ev.User)
		if err != nil {
			c.log.Warn("cannot list a user's conversations", "user", ev.User, "err", err)
			return
		}
		for _, conv := range convs {
			if conv.Kind != KindGroup {
				continue
			}
			if _, err := c.svc.JoinConns(ctx, conv.ID, ev.Conn); err != nil && !service.IsNotFound(err) {
				c.log.Warn("cannot put a connection in its group's room", "conv", conv.ID, "conn", ev.Conn, "err", err)
			}
		}
	case "ack":
		if done := c.dl.acked(ev.User, ev.MsgID, c.opts.Now()); len(done) > 0 {
			c.delivered(ctx, ev.User, done)
		}
	}
}
