package main

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

// TestStores runs one suite against every Store: they must behave the same.
func TestStores(t *testing.T) {
	t.Run("memory", func(t *testing.T) { storeSuite(t, func() Store { return newMemoryStore() }) })
	t.Run("sqlite", func(t *testing.T) {
		storeSuite(t, func() Store {
			s, err := openSQLite(filepath.Join(t.TempDir(), "chat.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
}

// TestSQLiteReopen: what the SQLite store wrote is there after a reopen.
func TestSQLiteReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chat.db")
	s, err := openSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutConversation(ctx, Conversation{ID: "g:1", Kind: KindGroup, Name: "team", Members: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, Message{Conv: "g:1", From: "a", Type: "image", SentMS: 5, Media: &Media{URL: "/x.png", Mime: "image/png", Width: 3, Height: 2, ThumbURL: "/t.png"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = openSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := s.Message(ctx, "g:1", 1)
	if err != nil || m.Media == nil || m.Media.ThumbURL != "/t.png" || m.Media.Width != 3 {
		t.Fatalf("after reopen: %+v, %v", m, err)
	}
	c, err := s.Conversation(ctx, "g:1")
	if err != nil || c.LastSeq != 1 || !reflect.DeepEqual(c.Members, []string{"a", "b"}) {
		t.Fatalf("conversation after reopen: %+v, %v", c, err)
	}
}

func storeSuite(t *testing.T, open func() Store) {
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(ms []Message) []int64 {
		out := []int64{}
		for _, m := range ms {
			out = append(out, m.Seq)
		}
		return out
	}

	t.Run("conversations", func(t *testing.T) {
		s := open()
		if _, err := s.Conversation(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing conversation: %v, want ErrNotFound", err)
		}
		must(s.PutConversation(ctx, Conversation{ID: "dm:a|b", Kind: KindDM, Members: []string{"a", "b"}}))
		must(s.PutConversation(ctx, Conversation{ID: "g:1", Kind: KindGroup, Name: "team", Members: []string{"a", "c"}}))
		// Activity orders the list: a message in the DM moves it first.
		_, err := s.Append(ctx, Message{Conv: "dm:a|b", From: "a", Type: "text", Text: "hi", SentMS: 1})
		must(err)
		got, err := s.Conversations(ctx, "a")
		must(err)
		if len(got) != 2 || got[0].ID != "dm:a|b" || got[0].LastSeq != 1 || got[1].ID != "g:1" {
			t.Fatalf("a's conversations: %+v", got)
		}
		got, err = s.Conversations(ctx, "c")
		must(err)
		if len(got) != 1 || got[0].Name != "team" {
			t.Fatalf("c's conversations: %+v", got)
		}
		// Replacing members keeps the messages and the sequence.
		must(s.PutConversation(ctx, Conversation{ID: "dm:a|b", Kind: KindDM, Members: []string{"a", "b", "d"}}))
		c, err := s.Conversation(ctx, "dm:a|b")
		must(err)
		if c.LastSeq != 1 || !reflect.DeepEqual(c.Members, []string{"a", "b", "d"}) {
			t.Fatalf("after replace: %+v", c)
		}
		if got, _ := s.Conversations(ctx, "nobody"); len(got) != 0 {
			t.Fatalf("nobody's conversations: %+v", got)
		}
	})

	t.Run("append, recall, history", func(t *testing.T) {
		s := open()
		if _, err := s.Append(ctx, Message{Conv: "g:x"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("append to a missing conversation: %v", err)
		}
		must(s.PutConversation(ctx, Conversation{ID: "g:1", Kind: KindGroup, Members: []string{"a"}}))
		for i := 1; i <= 7; i++ {
			m, err := s.Append(ctx, Message{Conv: "g:1", From: "a", Type: "text", Text: "m", SentMS: int64(i), ClientID: "c"})
			must(err)
			if m.Seq != int64(i) {
				t.Fatalf("append %d got seq %d", i, m.Seq)
			}
		}
		img, err := s.Append(ctx, Message{Conv: "g:1", From: "a", Type: "image", SentMS: 8, Media: &Media{URL: "/i.png", Mime: "image/png", Size: 10, Width: 4, Height: 3, ThumbURL: "/t.png"}})
		must(err)
		back, err := s.Message(ctx, "g:1", img.Seq)
		must(err)
		if !reflect.DeepEqual(back, img) {
			t.Fatalf("message read back %+v, want %+v", back, img)
		}
		// Paging back from the newest: 8 7 6 | 5 4 3 | 2 1.
		page, more, err := s.History(ctx, "g:1", 0, 3)
		must(err)
		if !reflect.DeepEqual(seqs(page), []int64{6, 7, 8}) || !more {
			t.Fatalf("newest page %v more=%v", seqs(page), more)
		}
		page, more, err = s.History(ctx, "g:1", 6, 3)
		must(err)
		if !reflect.DeepEqual(seqs(page), []int64{3, 4, 5}) || !more {
			t.Fatalf("second page %v more=%v", seqs(page), more)
		}
		page, more, err = s.History(ctx, "g:1", 3, 3)
		must(err)
		if !reflect.DeepEqual(seqs(page), []int64{1, 2}) || more {
			t.Fatalf("last page %v more=%v", seqs(page), more)
		}
		if _, _, err := s.History(ctx, "g:x", 0, 3); !errors.Is(err, ErrNotFound) {
			t.Fatalf("history of a missing conversation: %v", err)
		}
		r, err := s.Range(ctx, "g:1", 2, 5, 10)
		must(err)
		if !reflect.DeepEqual(seqs(r), []int64{3, 4, 5}) {
			t.Fatalf("range (2,5]: %v", seqs(r))
		}
		r, err = s.Range(ctx, "g:1", 2, 50, 2)
		must(err)
		if !reflect.DeepEqual(seqs(r), []int64{3, 4}) {
			t.Fatalf("range (2,50] limit 2: %v", seqs(r))
		}
		// A recall leaves a tombstone in place.
		tomb, err := s.Recall(ctx, "g:1", img.Seq)
		must(err)
		if !tomb.Recalled || tomb.Media != nil || tomb.Text != "" || tomb.From != "a" || tomb.Seq != img.Seq {
			t.Fatalf("tombstone %+v", tomb)
		}
		back, err = s.Message(ctx, "g:1", img.Seq)
		must(err)
		if !reflect.DeepEqual(back, tomb) {
			t.Fatalf("recalled message read back %+v, want %+v", back, tomb)
		}
		if _, err := s.Recall(ctx, "g:1", 99); !errors.Is(err, ErrNotFound) {
			t.Fatalf("recall of a missing message: %v", err)
		}
		if _, err := s.Message(ctx, "g:1", 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("message 0: %v", err)
		}
	})

	t.Run("receipts", func(t *testing.T) {
		s := open()
		if _, err := s.MarkReceipt(ctx, "g:x", "a", Read, 1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("receipt in a missing conversation: %v", err)
		}
		must(s.PutConversation(ctx, Conversation{ID: "g:1", Kind: KindGroup, Members: []string{"a", "b"}}))
		old, err := s.MarkReceipt(ctx, "g:1", "b", Delivered, 4)
		must(err)
		if old != 0 {
			t.Fatalf("first watermark's old value %d", old)
		}
		old, err = s.MarkReceipt(ctx, "g:1", "b", Delivered, 2) // never lowers
		must(err)
		if old != 4 {
			t.Fatalf("old %d, want 4", old)
		}
		_, err = s.MarkReceipt(ctx, "g:1", "b", Read, 3)
		must(err)
		_, err = s.MarkReceipt(ctx, "g:1", "a", Read, 1)
		must(err)
		got, err := s.Receipts(ctx, "g:1")
		must(err)
		want := map[string]Receipt{"b": {Delivered: 4, Read: 3}, "a": {Read: 1}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("receipts %+v, want %+v", got, want)
		}
	})
}
