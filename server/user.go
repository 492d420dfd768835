package server

import (
	"sync"
)

// user is one user's hub entry: the user's live connections, and the QoS1 message stream
// they share (see stream.go). It outlives the user's last connection by the resume
// window, then the sweeper drops it.
type user struct {
	id string
	// conns are the user's authenticated connections; guarded by the user shard lock,
	// like left.
	conns []*Conn
	// left is when the last connection closed (unix ns), 0 while connected.
	left int64

	// mu guards everything below and the per-connection QoS1 state (Conn.qos) of the
	// user's connections.
	mu   sync.Mutex
	dead bool // swept: look the entry up again
	// noTrim stops acknowledgements from trimming the buffer for the rest of the epoch:
	// set when a connection without a device id authenticated (its next connection
	// cannot be recognised, so nobody knows what it will resume from) or a device record
	// had to be forgotten. (Beside dead, so the struct fits the 144-byte size class.)
	noTrim bool
	// stored is set in a cluster while the entry follows the user's stream in the
	// QoSStore (qosstore.go): epoch and lastID are the store's.
	stored bool
	epoch  uint64 // in [1, 2^53): see nextEpoch
	lastID uint64 // the latest message id, at most maxMsgID
	// lost is the highest id the buffer's bounds (count, age) evicted: a device that had
	// not acknowledged it can no longer be served from the buffer.
	lost uint64
	// dropped is the highest id no longer buffered for any reason (lost, or acknowledged
	// by every device that needed it).
	dropped uint64
	// buf holds the buffered messages in increasing id order.
	buf []queued
	// devices are the devices (non-empty device ids) that connected in this epoch, at
	// most maxDevices.
	devices []*device
}

// device is what the stream remembers about one device of the user, across its
// connections, for the life of the epoch.
type device struct {
	id string
	// acked is the device's cumulative acknowledgement: every message for the device
	// with an id up to it was acknowledged by one of its connections (or is covered by
	// a cursor it resumed from).
	acked uint64
	// sent is the highest id written to a connection of the device: a later send of an
	// id up to it is a redelivery and carries FlagDup.
	sent uint64
}

// maxDevices bounds the device records of one user, so a client inventing device ids
// cannot grow an entry without limit.
const maxDevices = 64

// deviceLocked returns the record of device id, creating it if there is none; known
// says it existed. u.mu is held.
func (u *user) deviceLocked(id string) (d *device, known bool) {
	for _, d := range u.devices {
		if d.id == id {
			return d, true
		}
	}
	if len(u.devices) == maxDevices {
		// Forget the device furthest behind. Its acknowledgements no longer gate
		// trimming, so stop trimming rather than drop what it may still resume.
		oldest := 0
		for i, d := range u.devices {
			if d.acked < u.devices[oldest].acked {
				oldest = i
			}
		}
		u.devices = append(u.devices[:oldest], u.devices[oldest+1:]...)
		u.noTrim = true
	}
	d = &device{id: id}
	u.devices = append(u.devices, d)
	return d, false
}

// lockUser returns the user's live entry, locked. With create unset it returns nil when
// the user has none.
func (s *Server) lockUser(uid string, create bool) *user {
	for {
		u := s.hub.user(uid, create)
		if u == nil {
			return nil
		}
		u.mu.Lock()
		if !u.dead {
			return u
		}
		u.mu.Unlock()
	}
}

// maxJSONInt is 2^53: every integer below it is exact as a JSON (IEEE 754) double.
const maxJSONInt = 1 << 53

// maxMsgID is the largest message id a stream assigns; the push after it starts a new
// epoch (see renewLocked).
var maxMsgID uint64 = maxJSONInt - 1

// nextEpoch returns a new stream epoch in [1, 2^53), unique within the process (until
// 2^53-1 entries were made) and unlikely to repeat across restarts: the base is the
// process start in microseconds, which stays below 2^53 until the year 2255.
func (h *hub) nextEpoch() uint64 {
	return 1 + (h.epochBase+h.epochs.Add(1))%(maxJSONInt-1)
}
