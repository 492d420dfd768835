package cluster

import (
	"testing"

	"github.com/tether-gw/tether/server"
)

// TestFullStateAfterNewerBatch: while a full state is asked for, a batch made after it
// may arrive first (it comes on the counts subject, the full state as a reply): the
// full state must not erase it.
func TestFullStateAfterNewerBatch(t *testing.T) {
	b, err := New(Options{URL: "nats://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	const peerID, inst = 7, 42
	prefix := countKey{server.CountPrefix, "chat."}
	room := countKey{server.CountRoom, "lobby"}
	b.mu.Lock()
	b.peerLocked(peerID, inst).syncing = true // a full state is on its way
	b.mu.Unlock()
	// Batch 5 (the prefix's first subscriber), then the full state of seq 4 (the room).
	b.applyCounts(encodeCounts(peerID, inst, 5, false, []countEntry{{prefix.kind, prefix.key, 1}}))
	b.applyCounts(encodeCounts(peerID, inst, 4, true, []countEntry{{room.kind, room.key, 3}}))
	if got := b.Holders(prefix.kind, prefix.key)[peerID]; got != 1 {
		t.Fatalf("prefix count after the older full state = %d, want 1", got)
	}
	if got := b.RemoteCount(room.kind, room.key); got != 3 {
		t.Fatalf("room count = %d, want 3", got)
	}
	// An older batch than the full state changes nothing it already has.
	b.mu.Lock()
	p := b.peers[peerID]
	synced, seq := p.synced, p.seq
	b.mu.Unlock()
	if !synced || seq != 5 {
		t.Fatalf("peer synced %v at %d, want true at 5", synced, seq)
	}
	b.applyCounts(encodeCounts(peerID, inst, 6, false, []countEntry{{prefix.kind, prefix.key, 0}}))
	if got := b.RemoteCount(prefix.kind, prefix.key); got != 0 {
		t.Fatalf("prefix count after batch 6 = %d, want 0", got)
	}
}
