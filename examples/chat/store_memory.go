package main

import (
	"context"
	"slices"
	"sort"
	"sync"
)

// memoryStore is the Store kept in maps under one mutex: for development and tests;
// everything is lost when the process exits.
type memoryStore struct {
	mu       sync.Mutex
	convs    map[string]*memConv
	activity int64 // bumped by every Append: orders Conversations
}

type memConv struct {
	c        Conversation
	msgs     []Message // msgs[i].Seq == i+1
	receipts map[string]Receipt
	active   int64
}

var _ Store = (*memoryStore)(nil)

// newMemoryStore returns an empty in-memory Store.
func newMemoryStore() *memoryStore { return &memoryStore{convs: make(map[string]*memConv)} }

func (s *memoryStore) PutConversation(_ context.Context, c Conversation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Members = slices.Clone(c.Members)
	if mc, ok := s.convs[c.ID]; ok {
		c.LastSeq = mc.c.LastSeq
		mc.c = c
		return nil
	}
	c.LastSeq = 0
	s.activity++
	s.convs[c.ID] = &memConv{c: c, receipts: make(map[string]Receipt), active: s.activity}
	return nil
}

func (s *memoryStore) Conversation(_ context.Context, id string) (Conversation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mc, ok := s.convs[id]
	if !ok {
		return Conversation{}, ErrNotFound
	}
	c := mc.c
	c.Members = slices.Clone(c.Members)
	return c, nil
}

func (s *memoryStore) Conversations(_ context.Context, user string) ([]Conversation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var mine []*memConv
	for _, mc := range s.convs {
		if slices.Contains(mc.c.Members, user) {
			mine = append(mine, mc)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].active > mine[j].active })
	out := make([]Conversation, len(mine))
	for i, mc := range mine {
		out[i] = mc.c
		out[i].Members = slices.Clone(mc.c.Members)
	}
	return out, nil
}

func (s *memoryStore) Append(_ context.Context, m Message) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mc, ok := s.convs[m.Conv]
	if !ok {
		return Message{}, ErrNotFound
	}
	m.Seq = int64(len(mc.msgs)) + 1
	if m.Media != nil {
		md := *m.Media
		m.Media = &md
	}
	mc.msgs = append(mc.msgs, m)
	mc.c.LastSeq = m.Seq
	s.activity++
	mc.active = s.activity
	return m, nil
}

// at returns a pointer to message seq; the caller holds s.mu.
func (s *memoryStore) at(conv string, seq int64) (*Message, bool) {
	mc, ok := s.convs[conv]
	if !ok || seq < 1 || seq > int64(len(mc.msgs)) {
		return nil, false
	}
	return &mc.msgs[seq-1], true
}

func (s *memoryStore) Message(_ context.Context, conv string, seq int64) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.at(conv, seq)
	if !ok {
		return Message{}, ErrNotFound
	}
	return *m, nil
}

func (s *memoryStore) Recall(_ context.Context, conv string, seq int64) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.at(conv, seq)
	if !ok {
		return Message{}, ErrNotFound
	}
	m.Recalled, m.Text, m.Media = true, "", nil
	return *m, nil
}

func (s *memoryStore) History(_ context.Context, conv string, before int64, limit int) ([]Message, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mc, ok := s.convs[conv]
	if !ok {
		return nil, false, ErrNotFound
	}
	end := int64(len(mc.msgs))
	if before > 0 && before-1 < end {
		end = before - 1
	}
	start := max(end-int64(limit), 0)
	return slices.Clone(mc.msgs[start:end]), start > 0, nil
}

func (s *memoryStore) Range(_ context.Context, conv string, after, upto int64, limit int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mc, ok := s.convs[conv]
	if !ok {
		return nil, ErrNotFound
	}
	end := min(upto, int64(len(mc.msgs)))
	start := max(after, 0)
	if start >= end {
		return nil, nil
	}
	end = min(end, start+int64(limit))
	return slices.Clone(mc.msgs[start:end]), nil
}

func (s *memoryStore) MarkReceipt(_ context.Context, conv, user string, kind ReceiptKind, seq int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mc, ok := s.convs[conv]
	if !ok {
		return 0, ErrNotFound
	}
	r := mc.receipts[user]
	w := &r.Delivered
	if kind == Read {
		w = &r.Read
	}
	old := *w
	*w = max(old, seq)
	mc.receipts[user] = r
	return old, nil
}

func (s *memoryStore) Receipts(_ context.Context, conv string) (map[string]Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mc, ok := s.convs[conv]
	if !ok {
		return nil, ErrNotFound
	}
	out := make(map[string]Receipt, len(mc.receipts))
	for u, r := range mc.receipts {
		out[u] = r
	}
	return out, nil
}

func (s *memoryStore) Close() error { return nil }
