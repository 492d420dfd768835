package cluster

// UserStreams: users' QoS1 sequences (PROTOCOL.md §11) kept in JetStream, so that every
// node of a cluster appends to and resumes from the same per-user sequence.
//
// # Storage
//
// One stream, "<Prefix>_qos" (dots in the prefix become underscores), file storage,
// holding the subjects "<Prefix>.q.<user>" with the user id base64url-encoded (no
// padding), so that any UTF-8 user id is one valid subject token. Its limits are the
// resume buffer's bounds: MaxMsgsPerSubject = Buffer, MaxAge = Window, Discard old (a
// marker, below, takes one of the Buffer slots like a message). JetStream evicts only
// from the front of a subject, so what a user has stored is always a contiguous run of
// ids F..L (markers repeat an id); F−1 is PROTOCOL.md's E (the highest id the bounds evicted). Messages do not
// leave early when acknowledged (the "only the count and age bounds apply" case of §11).
//
// Every stored message carries headers: Tether-Epoch and Tether-Id (its position),
// Tether-Prev (the stream sequence of the user's previous message, 0 for the first of
// an epoch), for a push to one device or connection Tether-Target, and for a marker
// Tether-Mark: 1. Tether-Prev makes the user's messages and markers a backward chain,
// so Since can read exactly the messages it returns (and the markers between them),
// one request each, newest first, without a consumer ("walk"); for more than
// walkMax (8) messages it instead reads the user's subject through a short-lived
// ephemeral consumer, deleted before it returns ("scan": about three requests whatever
// the count). Only JetStream 2.9 features are used (no per-message TTL, batch get or
// batch publish), and the stream's AllowDirect is off so every read is answered by the
// stream's leader (never a lagging replica).
//
// The stream republishes (RePublish, JetStream 2.9) every stored message to the core
// subject "<Prefix>.live.<user>", in store order: nodes learn of new messages from there
// (LiveSubject, DecodeLive, Observe), never from the publish itself, which a
// compare-and-set may have refused.
//
// # Markers
//
// A marker is a stored message with no payload that only holds the sequence's position
// (Epoch, Id): header Tether-Mark: 1 (or, as older versions wrote, Tether-Id 0). Begin
// writes one with id 0 when the user has nothing stored, so a connection can be told an
// epoch before the user's first message; Touch writes one with the head's id (a
// keep-alive, see Epochs), chained to the head by Tether-Prev like a message, so the
// next message gets the id after it in the same epoch. Since and Resume never return a
// marker (DecodeLive and Observe do, with Mark set: the live subscriber skips it). A
// marker takes a MaxMsgsPerSubject slot like a message. For what the buffer still
// holds, a message with id k stands for k and a marker with id k for k+1: a marker says
// where the sequence is, not that message k is still there (it may have aged out).
//
// # Ids: one more per message, across nodes
//
// Append reads the user's last message or marker (GetLastMsgForSubject) and publishes the next one
// with Nats-Expected-Last-Subject-Sequence set to that message's stream sequence (0 when
// the user has none) and Tether-Id one above its id. JetStream stores it only if no
// other message for the user was stored in between, so two nodes appending at once
// cannot both take an id: the loser gets "wrong last sequence" and retries (at most
// appendAttempts times, after a small random pause that grows with the attempt). Ids
// are therefore contiguous per user, with no duplicate and no gap, whichever node
// appends.
//
// Each node caches the head (stream sequence, epoch, id, when stored) its last append,
// touch or read of a user left, or the newest live message Observe saw of them, at most
// headCacheSize users, and first tries to publish against it: a user whose pushes go
// through one node costs one request per message instead of two.
// The cache needs no invalidation: a stale head only makes JetStream refuse the publish
// (another node appended, or everything aged out), and the retry reads the real one.
//
// # Epochs
//
// A user's sequence starts an epoch when the user has nothing stored: its first message
// (or the marker Begin writes) gets a random epoch in [1, 2^53). The same happens after
// all of a user's messages aged out (Window after the last one) and after id 2^53−1; a
// cursor naming the old epoch is then "not recovered". Epochs are random rather than
// counted because nothing else survives the sequence's expiry; the only harm a repeat
// can do is to make a stale cursor of the same user look current, and the chance that a
// renewal repeats a given earlier epoch is 2^−53 (about 1e−16). Two nodes starting a
// user's epoch at once each draw one, but the compare-and-set stores only one: a
// sequence has one epoch, whichever node began it. Begin's epoch marker is stored with
// the same expected-sequence check.
//
// JetStream ages messages, not users: left alone, the sequence would live Window after
// the user's last message, not after their last connection. So while a user has a
// connection, the gateway touches the sequence every so often (its sweeper calls Touch
// with olderThan = Window/2): when the newest stored message or marker is older than
// that, Touch stores a keep-alive marker at the head's position, with the
// compare-and-set against the head (a refusal means another writer just stored
// something, which keeps the sequence alive as well). The sequence therefore never
// ages out while its user is connected, as on one node, where the epoch lives as long
// as the user has a connection; the messages themselves still age out Window after
// they were stored. Touch costs nothing when the cached head (see Ids; Observe keeps
// it for every user whose live messages the node receives) is recent, else one or two
// requests. The age compared is JetStream's store time (or this node's clock, for its
// own publishes) against this node's clock: a skew between them well under
// Window − olderThan does no harm. Once the user has no connection nothing touches
// the sequence, and it ages out Window after its last message or marker (so about
// Window to 1.5 Window after the last connection ended); the next message then starts
// a new epoch. Append returns the epoch, so the caller sees the change and treats it as
// §11's renewal.
//
// # Device acknowledgements
//
// A KV bucket "<Prefix>_acks" (TTL = AckTTL, default Window; file storage) holds, per
// user (key: the base64url user id), the acknowledgements of at most MaxDevices
// devices, each tagged with the epoch it belongs to. Ack updates the user's value with
// compare-and-set (KV Create when absent, Update with the revision read), retrying on a
// conflict, so two nodes acknowledging at once never move a device backwards. One
// value per user (not one key per device) is what lets the 64-device bound be kept
// exactly: a new device beyond it replaces a record of another epoch, else the one
// furthest behind. An acknowledgement for another epoch than the device's record
// replaces it: at worst a late acknowledgement from an old epoch makes the device be
// sent messages again (at-least-once holds).
//
// # Failure and concurrency
//
// Every call makes JetStream requests bounded by ctx (and, when ctx has no deadline, by
// the jetstream package's default of 5 s); with the broker's nats.go options
// (ReconnectBufSize −1) a call made while NATS is unreachable fails at once. Such errors
// (NATS unreachable, no answer in time) wrap server.ErrClusterUnavailable; an error
// JetStream answered with (storage full, say) does not. Either way nothing was stored
// (except when the answer to a publish that JetStream did store was lost: the message
// is then in the sequence although Append failed). All methods are safe for concurrent
// use from any goroutine and any number of nodes; a UserStreams' only lock guards its
// head cache and is a leaf (nothing is taken or called under it).

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-gw/tether/server"
)

// Message headers of the stored QoS1 messages (see the section above).
const (
	hdrEpoch  = "Tether-Epoch"
	hdrID     = "Tether-Id"
	hdrPrev   = "Tether-Prev"
	hdrTarget = "Tether-Target"
	hdrMark   = "Tether-Mark"
)

const (
	// MaxDevices is how many devices' acknowledgements are remembered per user
	// (PROTOCOL.md §11).
	MaxDevices = 64
	// maxMsgID is the highest message id (2^53−1, exact as a JSON number).
	maxMsgID = 1<<53 - 1
	// appendAttempts and ackAttempts bound the compare-and-set retries.
	appendAttempts = 100
	ackAttempts    = 100
	// walkMax is the most messages Since reads one by one (walk) rather than through a
	// consumer (scan). Measured (BenchmarkUserStreamSince, loaded 2-core machine): walk
	// costs 0.07-0.27 ms a message, scan 2-3.5 ms whatever the count.
	walkMax = 8
	// headCacheSize bounds the head cache (about 100 bytes an entry).
	headCacheSize = 1 << 16
)

var (
	// ErrContention is returned by Append and Ack when every compare-and-set attempt
	// lost to another writer of the same user.
	ErrContention = errors.New("cluster: too many concurrent writers for one user")
	// ErrEmptyUser is returned for an empty user id, which has no subject.
	ErrEmptyUser = errors.New("cluster: empty user id")
	// ErrMalformed is returned for a stored message or record this package did not
	// write (or a later version wrote differently).
	ErrMalformed = errors.New("cluster: malformed stored record")
)

// classify wraps in server.ErrClusterUnavailable an error that says JetStream could not
// be reached or did not answer in time (not one it answered with, nor one of this
// package's), so the caller tells an outage from a refusal.
func classify(err error) error {
	var ae *jetstream.APIError
	if errors.As(err, &ae) || errors.Is(err, ErrContention) || errors.Is(err, ErrEmptyUser) || errors.Is(err, ErrMalformed) {
		return err
	}
	return fmt.Errorf("%w: %w", server.ErrClusterUnavailable, err)
}

// StreamOptions configures UserStreams. The zero value of each field keeps its default.
type StreamOptions struct {
	// Prefix starts the subjects and names the stream and bucket. Default "tether".
	Prefix string
	// Buffer is how many messages are kept per user (server.Options.ResumeBuffer).
	// Default 256.
	Buffer int
	// Window is how long a message is kept (server.Options.ResumeWindow). Default 5m.
	Window time.Duration
	// AckTTL is how long a user's device acknowledgements are kept after the last
	// acknowledgement of any of the user's devices. Default Window. PROTOCOL.md §11
	// keeps them as long as the sequence, which lives Window after its last message:
	// with AckTTL = Window, a device that acknowledged nothing for Window while the
	// user's sequence went on is forgotten (Acked says 0) and, reconnecting without a
	// cursor, is treated as unknown. A longer AckTTL narrows that; records of an
	// expired epoch are never used, so the only cost is the bucket's size.
	AckTTL time.Duration
	// MaxBytes caps the stream's size; the oldest messages (of any user) go first, and
	// the resume of a user who needed them is "not recovered". Default -1, none: the
	// stream then holds at most users × Buffer messages of up to Window's age.
	MaxBytes int64
	// Replicas is the stream's and bucket's replica count. Default 1.
	Replicas int
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Prefix == "" {
		o.Prefix = "tether"
	}
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.Window <= 0 {
		o.Window = 5 * time.Minute
	}
	if o.AckTTL <= 0 {
		o.AckTTL = o.Window
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = -1
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	return o
}

// UserStreams keeps users' QoS1 sequences in a JetStream stream, so every node of a
// cluster appends to and reads the same per-user sequence. It is safe for concurrent
// use.
type UserStreams struct {
	opts       StreamOptions
	js         jetstream.JetStream
	stream     jetstream.Stream
	acks       jetstream.KeyValue
	streamName string
	maxID      uint64 // maxMsgID; lower in tests of the renewal
	walkMax    int    // walkMax; changed by tests to take either way

	mu    sync.Mutex      // a leaf; guards heads
	heads map[string]head // by subject: see "Ids" in the file's doc
	// retries counts compare-and-set conflicts (Retries).
	retries atomic.Uint64
	// stored and storedBytes count the messages (and markers) published to the stream,
	// requests the other JetStream requests (reads, acknowledgements): Traffic.
	stored, storedBytes, requests atomic.Uint64
}

// Traffic returns what this UserStreams sent to JetStream: the messages and markers it
// published (and their bytes: subject, headers and payload), and its other requests
// (reads of heads and messages, consumers, acknowledgement records).
func (u *UserStreams) Traffic() (stored, storedBytes, requests uint64) {
	return u.stored.Load(), u.storedBytes.Load(), u.requests.Load()
}

// countStored counts m as published.
func (u *UserStreams) countStored(m *nats.Msg) {
	n := len(m.Subject) + len(m.Data) + 12
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	u.stored.Add(1)
	u.storedBytes.Add(uint64(n))
}

// Retries returns how many appends and acknowledgements had to be tried again because
// another writer of the same user (on this node or another) got there first: a measure
// of contention, for metrics.
func (u *UserStreams) Retries() uint64 { return u.retries.Load() }

// StoredMsg is one message of a user's sequence (server.StoredMsg).
type StoredMsg = server.StoredMsg

// NewUserStreams creates the stream and the acknowledgement bucket, or updates them to
// o's settings, on the JetStream reached through nc (nc stays the caller's: the broker's
// connection, with its options). It is idempotent and several nodes may call it at
// once; all nodes must use the same options, or each start reconfigures the stream to
// its own.
func NewUserStreams(ctx context.Context, nc *nats.Conn, o StreamOptions) (*UserStreams, error) {
	o = o.withDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: JetStream: %w", err)
	}
	name := strings.ReplaceAll(o.Prefix, ".", "_")
	cfg := jetstream.StreamConfig{
		Name:              name + "_qos",
		Description:       "tether: users' QoS1 sequences (resume buffer)",
		Subjects:          []string{o.Prefix + ".q.*"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: int64(o.Buffer),
		MaxAge:            o.Window,
		MaxMsgs:           -1,
		MaxBytes:          o.MaxBytes,
		Replicas:          o.Replicas,
		RePublish: &jetstream.RePublish{
			Source:      o.Prefix + ".q.*",
			Destination: o.Prefix + ".live.{{wildcard(1)}}",
		},
	}
	u := &UserStreams{opts: o, js: js, streamName: cfg.Name, maxID: maxMsgID, walkMax: walkMax, heads: map[string]head{}}
	// Two nodes creating at once: one may see "name in use" from the other's create
	// (or "wrong last sequence" when updating): the next attempt updates.
	for attempt := 0; ; attempt++ {
		u.stream, err = js.CreateOrUpdateStream(ctx, cfg)
		if err == nil || attempt == 3 || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot create stream %s: %w", cfg.Name, classify(err))
	}
	kcfg := jetstream.KeyValueConfig{
		Bucket:      name + "_acks",
		Description: "tether: QoS1 acknowledgements per user and device",
		TTL:         o.AckTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	}
	for attempt := 0; ; attempt++ {
		u.acks, err = js.CreateOrUpdateKeyValue(ctx, kcfg)
		if err == nil || attempt == 3 || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot create bucket %s: %w", kcfg.Bucket, classify(err))
	}
	return u, nil
}

// userSubject is the subject of uid's messages.
func (u *UserStreams) userSubject(uid string) string {
	return u.opts.Prefix + ".q." + base64.RawURLEncoding.EncodeToString([]byte(uid))
}

// LiveSubject is the core NATS subject on which JetStream republishes each of user's
// messages once stored, in the sequence's order (never one a compare-and-set refused;
// nats-server 2.9 may swap two messages of concurrent publishers, so a subscriber
// orders by id):
// what a node with connections of user subscribes to, decoding each message with
// DecodeLive (or Observe), to deliver new messages as they come, skipping markers
// (Mark: a marker's id is that of the message before it, or 0). A subscriber that sees
// an id more than one above the last it saw (it was disconnected, or subscribed late)
// reads the gap with Since.
func (u *UserStreams) LiveSubject(user string) string {
	return u.opts.Prefix + ".live." + base64.RawURLEncoding.EncodeToString([]byte(user))
}

// LiveSubjects is the wildcard matching every user's LiveSubject, for a node that takes
// all users' messages rather than subscribing per user.
func (u *UserStreams) LiveSubjects() string { return u.opts.Prefix + ".live.*" }

// DecodeLive decodes a message received on a LiveSubject: the user, the message's
// epoch, and the message (its Time is when JetStream stored it if the server says so,
// else now; Mark set for a marker, which is no delivery). The payload aliases msg.Data.
func DecodeLive(msg *nats.Msg) (user string, epoch uint64, m StoredMsg, err error) {
	user, s, _, err := decodeLive(msg)
	return user, s.epoch, s.StoredMsg, err
}

// Observe is DecodeLive that also records the message as the user's cached head when
// it is newer than the cached one (see Ids in the file's doc): a node that receives
// every user's live messages (LiveSubjects) then knows the age of every head without a
// request, so Touch rarely needs one, and Append usually publishes at once.
func (u *UserStreams) Observe(msg *nats.Msg) (user string, epoch uint64, m StoredMsg, err error) {
	user, s, seq, err := decodeLive(msg)
	if err == nil && seq != 0 && user != "" {
		u.cacheNewer(u.userSubject(user), head{seq: seq, epoch: s.epoch, id: s.ID, at: s.Time})
	}
	return user, s.epoch, s.StoredMsg, err
}

// decodeLive decodes a live message and returns its stream sequence (0 if the server
// did not say).
func decodeLive(msg *nats.Msg) (string, stored, uint64, error) {
	i := strings.LastIndexByte(msg.Subject, '.')
	b, err := base64.RawURLEncoding.DecodeString(msg.Subject[i+1:])
	if err != nil {
		return "", stored{}, 0, fmt.Errorf("%w: live subject %q", ErrMalformed, msg.Subject)
	}
	seq, _ := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
	at := time.Now()
	if ts, err := time.Parse(time.RFC3339Nano, msg.Header.Get("Nats-Time-Stamp")); err == nil {
		at = ts // nats-server 2.10 and later
	}
	s, err := parseHeaders(seq, msg.Header, msg.Data, at)
	return string(b), s, seq, err
}

// head is the last stored message (or marker) of a user's sequence.
type head struct {
	seq       uint64 // its stream sequence; 0: the user has nothing stored
	epoch, id uint64
	at        time.Time // when it was stored (by JetStream's clock when read back)
}

// last reads the user's last stored message.
func (u *UserStreams) last(ctx context.Context, subj string) (head, error) {
	u.requests.Add(1)
	m, err := u.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return head{}, nil
	}
	if err != nil {
		return head{}, err
	}
	s, err := parseStored(m)
	if err != nil {
		return head{}, err
	}
	return head{seq: m.Sequence, epoch: s.epoch, id: s.ID, at: m.Time}, nil
}

// cachedHead returns the cached head of subj, unless skip.
func (u *UserStreams) cachedHead(subj string, skip bool) (head, bool) {
	if skip {
		return head{}, false
	}
	u.mu.Lock()
	h, ok := u.heads[subj]
	u.mu.Unlock()
	return h, ok
}

// cacheHead records h as subj's head (forgets it when h.seq is 0). A full cache drops
// an arbitrary entry.
func (u *UserStreams) cacheHead(subj string, h head) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if h.seq == 0 {
		delete(u.heads, subj)
		return
	}
	u.storeHeadLocked(subj, h)
}

// storeHeadLocked records h (seq not 0) as subj's head; u.mu is held.
func (u *UserStreams) storeHeadLocked(subj string, h head) {
	if _, ok := u.heads[subj]; !ok && len(u.heads) >= headCacheSize {
		for k := range u.heads {
			delete(u.heads, k)
			break
		}
	}
	u.heads[subj] = h
}

// cacheNewer records h as subj's head unless the cached one is at least as new (a
// higher or equal stream sequence).
func (u *UserStreams) cacheNewer(subj string, h head) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if c, ok := u.heads[subj]; ok && c.seq >= h.seq {
		return
	}
	u.storeHeadLocked(subj, h)
}

// stored is a message as read back, with its chain fields.
type stored struct {
	StoredMsg
	epoch, prev uint64
}

func parseStored(m *jetstream.RawStreamMsg) (stored, error) {
	return parseHeaders(m.Sequence, m.Header, m.Data, m.Time)
}

// parseHeaders reads the message at stream sequence seq.
func parseHeaders(seq uint64, h nats.Header, data []byte, at time.Time) (stored, error) {
	var s stored
	var err error
	num := func(name string) uint64 {
		v, e := strconv.ParseUint(h.Get(name), 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("%w: stream message %d: bad %s header: %w", ErrMalformed, seq, name, e)
		}
		return v
	}
	s.epoch, s.ID, s.prev = num(hdrEpoch), num(hdrID), num(hdrPrev)
	s.Payload, s.Target, s.Time = data, h.Get(hdrTarget), at
	s.Mark = s.ID == 0 || h.Get(hdrMark) == "1"
	return s, err
}

// newEpoch returns a random epoch in [1, 2^53).
func newEpoch() uint64 { return rand.Uint64N(maxMsgID) + 1 }

// Append gives payload the user's next id and stores it; for a push to one device (or
// one connection) target says so (empty: every device). It returns the message's
// position; an epoch other than the one the caller knew means the sequence was renewed
// (aged out, or ids exhausted) and this message is its first. Append does not retain
// payload.
func (u *UserStreams) Append(ctx context.Context, user string, payload []byte, target string) (epoch, id uint64, err error) {
	epoch, id, err = u.append(ctx, user, payload, target, false)
	if err != nil {
		err = fmt.Errorf("cluster: cannot append for user %q: %w", user, classify(err))
	}
	return epoch, id, err
}

// Begin makes sure the user has a sequence, storing an epoch marker (id 0, not a
// message) if they have nothing stored, and returns its position (epoch, last id), so
// a connection can be told its epoch before the user's first message.
func (u *UserStreams) Begin(ctx context.Context, user string) (epoch, lastID uint64, err error) {
	epoch, lastID, err = u.append(ctx, user, nil, "", true)
	if err != nil {
		err = fmt.Errorf("cluster: cannot begin the sequence of user %q: %w", user, classify(err))
	}
	return epoch, lastID, err
}

// append stores the user's next message, or with marker only a marker when the user has
// nothing stored (returning the current head otherwise).
func (u *UserStreams) append(ctx context.Context, user string, payload []byte, target string, marker bool) (uint64, uint64, error) {
	if user == "" {
		return 0, 0, ErrEmptyUser
	}
	subj := u.userSubject(user)
	for attempt := range appendAttempts {
		h, cached := u.cachedHead(subj, marker || attempt > 0)
		if !cached {
			var err error
			if h, err = u.last(ctx, subj); err != nil {
				return 0, 0, err
			}
		}
		epoch, id := h.epoch, h.id+1
		switch {
		case marker && h.seq != 0:
			return h.epoch, h.id, nil
		case marker:
			epoch, id = newEpoch(), 0
		case h.seq == 0 || h.id >= u.maxID:
			epoch, id = newEpoch(), 1
		}
		prev := h.seq
		if id <= 1 {
			prev = 0 // an epoch's chain starts here
		}
		ok, err := u.publish(ctx, subj, head{seq: h.seq, epoch: epoch, id: id}, prev, payload, target, marker)
		if ok {
			return epoch, id, nil
		}
		if err != nil {
			return 0, 0, err
		}
		if cached {
			continue // the cache was stale: read the head, no pause
		}
		if err := u.pause(ctx, attempt); err != nil {
			return 0, 0, err
		}
	}
	return 0, 0, ErrContention
}

// publish stores at subj a message (or with mark a marker) at position (at.epoch, at.id)
// chained to the stream sequence prev, provided the subject's last message is still at
// stream sequence at.seq, and caches it as the head. It reports false with a nil error
// when JetStream refused because another message was stored meanwhile; either way but
// success the cached head is forgotten.
func (u *UserStreams) publish(ctx context.Context, subj string, at head, prev uint64, payload []byte, target string, mark bool) (bool, error) {
	m := storedMessage(subj, at, prev, payload, target, mark)
	u.countStored(m)
	ack, err := u.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(at.seq))
	if err == nil {
		u.cacheHead(subj, head{seq: ack.Sequence, epoch: at.epoch, id: at.id, at: time.Now()})
		return true, nil
	}
	u.cacheHead(subj, head{}) // whatever happened, the head is unknown now
	if wrongLastSequence(err) {
		return false, nil
	}
	return false, err
}

// storedMessage is the message publish stores at subj for position at, chained to prev.
func storedMessage(subj string, at head, prev uint64, payload []byte, target string, mark bool) *nats.Msg {
	m := nats.NewMsg(subj)
	m.Header = make(nats.Header, 5)
	m.Header.Set(hdrEpoch, strconv.FormatUint(at.epoch, 10))
	m.Header.Set(hdrID, strconv.FormatUint(at.id, 10))
	m.Header.Set(hdrPrev, strconv.FormatUint(prev, 10))
	if target != "" {
		m.Header.Set(hdrTarget, target)
	}
	if mark {
		m.Header.Set(hdrMark, "1")
	}
	m.Data = payload
	return m
}

// Touch keeps the user's sequence from ageing out (see Epochs in the file's doc): when
// the newest thing the user has stored, message or marker, was stored olderThan or
// more ago (0: whatever its age), it stores a keep-alive marker at the same position
// (epoch and last id), and reports whether it did. It does nothing for a user with
// nothing stored (there is no epoch to keep), nor when another writer stored something
// for the user meanwhile. A cached head (the node's last append, touch or read of the
// user, or Observe) younger than olderThan costs no request; an older one one, and
// none cached two.
func (u *UserStreams) Touch(ctx context.Context, user string, olderThan time.Duration) (touched bool, err error) {
	touched, err = u.touch(ctx, user, olderThan)
	if err != nil {
		err = fmt.Errorf("cluster: cannot touch the sequence of user %q: %w", user, classify(err))
	}
	return touched, err
}

func (u *UserStreams) touch(ctx context.Context, user string, olderThan time.Duration) (bool, error) {
	if user == "" {
		return false, ErrEmptyUser
	}
	subj := u.userSubject(user)
	recent := func(h head) bool { return olderThan > 0 && time.Since(h.at) < olderThan }
	h, cached := u.cachedHead(subj, false)
	if cached && recent(h) {
		return false, nil
	}
	for {
		if !cached {
			var err error
			if h, err = u.last(ctx, subj); err != nil {
				return false, err
			}
			if h.seq == 0 {
				return false, nil
			}
			u.cacheNewer(subj, h)
			if recent(h) {
				return false, nil
			}
		}
		ok, err := u.publish(ctx, subj, h, h.seq, nil, "", true)
		if ok || err != nil || !cached {
			return ok, err
		}
		cached = false // the cache was stale: read the head and try once more
	}
}

// wrongLastSequence reports whether err is JetStream refusing a publish whose expected
// last sequence did not match (10071; 10164 from replicated streams).
func wrongLastSequence(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// pause counts a conflict and waits a random time that grows with attempt (up to about
// 2 ms), so writers that collided do not collide again in lockstep.
func (u *UserStreams) pause(ctx context.Context, attempt int) error {
	u.retries.Add(1)
	d := time.Duration(rand.Int64N(int64(50*time.Microsecond) * int64(min(attempt+1, 40))))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Since returns the user's messages with id > lastID in the current epoch, oldest
// first, and whether the cursor (epoch, lastID) was recovered, plus the current
// position (curEpoch, curLast). Not recovered (PROTOCOL.md §11) is a cursor of another
// epoch, or above curLast, or older than the buffer reaches; Since then returns
// everything the buffer holds, from its start. A cursor (0, 0) is of another epoch: the
// caller decides what a cursorless connection gets. A user with nothing stored has
// position (0, 0) (see Begin). It makes one JetStream request plus one per message
// returned (and per marker between them: Touch stores at most one per olderThan), or
// about four for more than walkMax; the returned payloads are the caller's. The
// position may be a marker's (see Markers in the file's doc): curLast is then the id of
// a message that may have aged out.
func (u *UserStreams) Since(ctx context.Context, user string, epoch, lastID uint64) (msgs []StoredMsg, recovered bool, curEpoch, curLast uint64, err error) {
	msgs, recovered, curEpoch, curLast, err = u.since(ctx, user, epoch, lastID)
	if err != nil {
		err = fmt.Errorf("cluster: cannot read the sequence of user %q: %w", user, classify(err))
	}
	return msgs, recovered, curEpoch, curLast, err
}

func (u *UserStreams) since(ctx context.Context, user string, epoch, lastID uint64) ([]StoredMsg, bool, uint64, uint64, error) {
	if user == "" {
		return nil, false, 0, 0, ErrEmptyUser
	}
	subj := u.userSubject(user)
	u.requests.Add(1)
	m, err := u.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, false, 0, 0, nil
	}
	if err != nil {
		return nil, false, 0, 0, err
	}
	s, err := parseStored(m)
	if err != nil {
		return nil, false, 0, 0, err
	}
	// Return the messages after the cursor when it is in this epoch and not ahead, else
	// everything buffered of this epoch.
	curEpoch, curLast := s.epoch, s.ID
	from := uint64(0)
	inEpoch := epoch == curEpoch && lastID <= curLast
	if inEpoch {
		from = lastID
	}
	var msgs []StoredMsg
	var first uint64 // the lowest id of this epoch still buffered (see Markers)
	if curLast-from <= uint64(u.walkMax) {
		msgs, first, err = u.walk(ctx, s, from)
	} else {
		msgs, first, err = u.scan(ctx, subj, m.Sequence, curEpoch, from)
	}
	if err != nil {
		return nil, false, 0, 0, err
	}
	return msgs, inEpoch && first <= from+1, curEpoch, curLast, nil
}

// buffered is the lowest id s says the buffer still holds (see Markers in the file's
// doc): its id for a message, the one after for a marker.
func buffered(s stored) uint64 {
	if s.Mark {
		return s.ID + 1
	}
	return s.ID
}

// walk follows the chain back from the head s, through markers, to the message after
// id from (or a marker at or below from), or to the start of what is buffered of the
// epoch, and returns the messages after from, oldest first, and the lowest id still
// buffered that it reached. It makes one request per message or marker: the cheaper
// way for a few.
func (u *UserStreams) walk(ctx context.Context, s stored, from uint64) ([]StoredMsg, uint64, error) {
	var rev []StoredMsg
	first := uint64(math.MaxUint64)
	for {
		first = min(first, buffered(s))
		if !s.Mark && s.ID > from {
			rev = append(rev, s.StoredMsg)
		}
		// Older entries have ids at most this one's, minus one past a message.
		if first <= from+1 || s.prev == 0 {
			break
		}
		u.requests.Add(1)
		m, err := u.stream.GetMsg(ctx, s.prev)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break // the bounds evicted the rest: the buffer starts at s
		}
		if err != nil {
			return nil, 0, err
		}
		if s, err = parseStored(m); err != nil {
			return nil, 0, err
		}
	}
	slices.Reverse(rev)
	return rev, first, nil
}

// scan reads everything stored for subj up to the head's stream sequence through a
// short-lived consumer and returns the messages of epoch after id from, oldest first,
// and the lowest id of epoch it saw. It costs about three requests whatever the count:
// the cheaper way for many (measured: a 256-message replay in 2-3.5 ms, against 20-30
// ms for walk).
func (u *UserStreams) scan(ctx context.Context, subj string, headSeq, epoch, from uint64) ([]StoredMsg, uint64, error) {
	u.requests.Add(1)
	c, err := u.js.CreateConsumer(ctx, u.streamName, jetstream.ConsumerConfig{
		FilterSubject:     subj,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: time.Minute, // the server's clean-up if the delete below is lost
	})
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		u.js.DeleteConsumer(dctx, u.streamName, c.CachedInfo().Name)
		cancel()
	}()
	var msgs []StoredMsg
	first := uint64(math.MaxUint64)
	for done := false; !done; {
		batch, err := c.FetchNoWait(u.opts.Buffer)
		if err != nil {
			return nil, 0, err
		}
		n := 0
		for jm := range batch.Messages() {
			n++
			md, err := jm.Metadata()
			if err != nil {
				return nil, 0, err
			}
			seq := md.Sequence.Stream
			if seq > headSeq {
				done = true // appended after the head was read
				continue
			}
			done = seq == headSeq
			s, err := parseHeaders(seq, jm.Headers(), jm.Data(), md.Timestamp)
			if err != nil {
				return nil, 0, err
			}
			if s.epoch != epoch {
				continue // an earlier epoch's leftovers
			}
			first = min(first, buffered(s))
			if s.ID > from && !s.Mark {
				msgs = append(msgs, s.StoredMsg)
			}
		}
		if err := batch.Error(); err != nil {
			return nil, 0, err
		}
		if n == 0 {
			break // the head itself was evicted meanwhile
		}
	}
	return msgs, first, nil
}

// ackRecord is one device's acknowledgement as stored in the bucket.
type ackRecord struct {
	Device string `json:"d"`
	Epoch  uint64 `json:"e"`
	ID     uint64 `json:"a"`
}

func (u *UserStreams) ackKey(user string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(user))
}

// readAcks returns the user's records and the value's revision (0: none stored).
func (u *UserStreams) readAcks(ctx context.Context, user string) ([]ackRecord, uint64, error) {
	u.requests.Add(1)
	e, err := u.acks.Get(ctx, u.ackKey(user))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var recs []ackRecord
	if err := json.Unmarshal(e.Value(), &recs); err != nil {
		return nil, 0, fmt.Errorf("%w: acknowledgements: %w", ErrMalformed, err)
	}
	return recs, e.Revision(), nil
}

// Ack records that device acknowledged everything for it up to id in epoch (monotonic:
// a lower id of the same epoch is ignored). At most MaxDevices devices per user are
// remembered; a new one beyond them replaces a device of another epoch, else the one
// furthest behind.
func (u *UserStreams) Ack(ctx context.Context, user, device string, epoch, id uint64) error {
	if err := u.ack(ctx, user, device, epoch, id); err != nil {
		return fmt.Errorf("cluster: cannot record the acknowledgement of user %q device %q: %w", user, device, classify(err))
	}
	return nil
}

func (u *UserStreams) ack(ctx context.Context, user, device string, epoch, id uint64) error {
	if user == "" {
		return ErrEmptyUser
	}
	key := u.ackKey(user)
	for attempt := range ackAttempts {
		recs, rev, err := u.readAcks(ctx, user)
		if err != nil {
			return err
		}
		recs, changed := mergeAck(recs, ackRecord{Device: device, Epoch: epoch, ID: id})
		if !changed {
			return nil
		}
		val, err := json.Marshal(recs)
		if err != nil {
			return err
		}
		u.requests.Add(1)
		if rev == 0 {
			_, err = u.acks.Create(ctx, key, val)
		} else {
			_, err = u.acks.Update(ctx, key, val, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !wrongLastSequence(err) {
			return err
		}
		if err := u.pause(ctx, attempt); err != nil {
			return err
		}
	}
	return ErrContention
}

// mergeAck applies r to recs and reports whether anything changed.
func mergeAck(recs []ackRecord, r ackRecord) ([]ackRecord, bool) {
	for i := range recs {
		if recs[i].Device != r.Device {
			continue
		}
		if recs[i].Epoch == r.Epoch && recs[i].ID >= r.ID {
			return recs, false
		}
		recs[i] = r
		return recs, true
	}
	if len(recs) < MaxDevices {
		return append(recs, r), true
	}
	// Forget a device of another epoch, else the one furthest behind.
	victim := 0
	for i := range recs {
		vo, io := recs[victim].Epoch != r.Epoch, recs[i].Epoch != r.Epoch
		if io && !vo || io == vo && recs[i].ID < recs[victim].ID {
			victim = i
		}
	}
	if recs[victim].Epoch == r.Epoch && recs[victim].ID > r.ID {
		return recs, false // the new device is the one furthest behind: not remembered
	}
	recs[victim] = r
	return recs, true
}

// Acked returns what device acknowledged in epoch, and whether it is known: it has a
// record in epoch (Ack was called for it, by Resume when it connected, say). A device
// not known has id 0.
func (u *UserStreams) Acked(ctx context.Context, user, device string, epoch uint64) (id uint64, known bool, err error) {
	if user == "" {
		return 0, false, ErrEmptyUser
	}
	recs, _, err := u.readAcks(ctx, user)
	if err != nil {
		return 0, false, fmt.Errorf("cluster: cannot read the acknowledgements of user %q: %w", user, classify(err))
	}
	for _, r := range recs {
		if r.Device == device && r.Epoch == epoch {
			return r.ID, true, nil
		}
	}
	return 0, false, nil
}
