package cluster

import (
	"context"
	"fmt"

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// Resumed is what Resume decided for a connection (PROTOCOL.md §11, the resume table):
// server.StoredResume.
type Resumed = server.StoredResume

// Resume decides where a connection of user (device "" for none) that sent the HELLO
// cursor (epoch, lastID) is served from, per PROTOCOL.md §11's table, and records the
// device as known in the current epoch with its acknowledgement moved up to the
// decided position (a cursor declares the messages up to it received). A user with no
// sequence gets one (Begin). Here E and D of the table are the same (messages never
// leave the buffer early, see the file's doc): the highest id the bounds evicted.
//
// It makes about four JetStream requests plus Since's; the caller holds no lock
// meanwhile, so messages appended during it are delivered live, with ids above those
// returned.
func (u *UserStreams) Resume(ctx context.Context, user, device string, epoch, lastID uint64) (Resumed, error) {
	r, err := u.resume(ctx, user, device, epoch, lastID)
	if err != nil {
		return Resumed{}, fmt.Errorf("cluster: cannot resume user %q: %w", user, err)
	}
	return r, nil
}

func (u *UserStreams) resume(ctx context.Context, user, device string, epoch, lastID uint64) (Resumed, error) {
	cur, last, err := u.Begin(ctx, user)
	if err != nil {
		return Resumed{}, err
	}
	var acked uint64
	known := false
	if device != "" {
		if acked, known, err = u.Acked(ctx, user, device, cur); err != nil {
			return Resumed{}, err
		}
	}
	r := Resumed{Result: protocol.ResumeNone, Epoch: cur, LastID: last}
	// from is where delivery would start; recovered reports whether the buffer still
	// holds everything after it.
	since := func(from uint64) (bool, error) {
		msgs, ok, e, l, err := u.Since(ctx, user, cur, from)
		if err != nil {
			return false, err
		}
		if e != 0 { // else all aged out since Begin: its position stands
			r.Epoch, r.LastID = e, l // not recovered: the latest position
		}
		if ok {
			r.Msgs, r.LastID = msgs, from
		}
		return ok, nil
	}
	cursor := epoch != 0 || lastID != 0
	switch {
	case cursor && (epoch != cur || lastID > last):
		r.Result = protocol.ResumeNotRecovered
	case cursor:
		from := lastID
		if known {
			from = max(from, acked)
		}
		ok, err := since(from)
		if err != nil {
			return Resumed{}, err
		}
		r.Result = protocol.ResumeRecovered
		if !ok {
			r.Result = protocol.ResumeNotRecovered
		}
	case known:
		ok, err := since(acked)
		if err != nil {
			return Resumed{}, err
		}
		if !ok {
			r.Result = protocol.ResumeNotRecovered
		}
	}
	if device != "" {
		if err := u.Ack(ctx, user, device, r.Epoch, r.LastID); err != nil {
			return Resumed{}, err
		}
	}
	return r, nil
}
