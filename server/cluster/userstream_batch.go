package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-gw/tether/server"
)

// appendParallel bounds the users AppendMany serves through Append at once.
const appendParallel = 8

// AppendMany appends one message to each user of batch (a QoS1 push to many users),
// filling in each entry's position or error as Append would. The users whose head is
// cached are published all at once, each with its compare-and-set, before any answer
// is awaited, so they cost about one round trip together instead of one each; the
// others (head unknown, cache stale, a user twice in the batch) go through Append,
// appendParallel users at a time, each user's entries in batch order.
func (u *UserStreams) AppendMany(ctx context.Context, batch []server.StoreAppend) {
	type flight struct {
		i    int
		subj string
		at   head
		fut  jetstream.PubAckFuture
	}
	var fls []flight
	var slow []int
	taken := map[string]bool{}
	for i := range batch {
		b := &batch[i]
		if b.User == "" {
			slow = append(slow, i)
			continue
		}
		subj := u.userSubject(b.User)
		h, ok := u.cachedHead(subj, false)
		if !ok || taken[subj] || h.seq == 0 || h.id >= u.maxID {
			slow = append(slow, i)
			taken[subj] = true
			continue
		}
		taken[subj] = true
		at := head{seq: h.seq, epoch: h.epoch, id: h.id + 1}
		m := storedMessage(subj, at, h.seq, b.Payload, b.Target, false)
		u.countStored(m)
		fut, err := u.js.PublishMsgAsync(m, jetstream.WithExpectLastSequencePerSubject(h.seq))
		if err != nil {
			slow = append(slow, i)
			continue
		}
		fls = append(fls, flight{i: i, subj: subj, at: at, fut: fut})
	}
	for _, f := range fls {
		select {
		case ack := <-f.fut.Ok():
			u.cacheHead(f.subj, head{seq: ack.Sequence, epoch: f.at.epoch, id: f.at.id, at: time.Now()})
			batch[f.i].Epoch, batch[f.i].ID = f.at.epoch, f.at.id
		case <-f.fut.Err():
			u.cacheHead(f.subj, head{}) // stale, or a failure Append will report
			slow = append(slow, f.i)
		case <-ctx.Done():
			batch[f.i].Err = fmt.Errorf("cluster: cannot append for user %q: %w", batch[f.i].User, classify(ctx.Err()))
		}
	}
	if len(slow) == 0 {
		return
	}
	// Each user's entries in order; users in parallel.
	byUser := map[string][]int{}
	var order []string
	slices.Sort(slow)
	for _, i := range slow {
		uid := batch[i].User
		if _, ok := byUser[uid]; !ok {
			order = append(order, uid)
		}
		byUser[uid] = append(byUser[uid], i)
	}
	sem := make(chan struct{}, appendParallel)
	var wg sync.WaitGroup
	for _, uid := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func(is []int) {
			defer func() { <-sem; wg.Done() }()
			for _, i := range is {
				b := &batch[i]
				b.Epoch, b.ID, b.Err = u.Append(ctx, b.User, b.Payload, b.Target)
			}
		}(byUser[uid])
	}
	wg.Wait()
}
