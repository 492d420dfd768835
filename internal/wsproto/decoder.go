package wsproto

import "sync"

// Stream is the reader-side message state of one connection: it enforces
// RFC 6455's fragmentation rules across data frames. The zero value is ready
// (no message started). Decoder embeds one; use Stream directly only when
// driving ParseHeader by hand.
type Stream struct {
	inMessage  bool // a data message has started and its FIN frame has not ended
	compressed bool // the message in progress has RSV1 set (permessage-deflate)
}

// Begin checks a data frame header against the message in progress: a
// continuation needs a started message, a binary frame needs none, a text
// frame is refused with 1003 (tether frames travel only as binary messages).
// Control frames may come between fragments and must not be passed here.
// Call End after the payload of a frame with Fin set.
func (s *Stream) Begin(h Header) error {
	switch h.Op {
	case OpContinuation:
		if !s.inMessage {
			return errContinuation
		}
		return nil
	case OpBinary:
		if s.inMessage {
			return errUnfinished
		}
		s.inMessage = true
		s.compressed = h.Rsv&rsv1 != 0
		return nil
	case OpText:
		if s.inMessage {
			return errUnfinished
		}
		return errText
	}
	panic("BUG: wsproto: Stream.Begin with a control frame")
}

// End marks the current message finished (after its FIN frame's payload).
func (s *Stream) End() { s.inMessage, s.compressed = false, false }

// Compressed reports whether the message in progress is permessage-deflate
// compressed (its first frame had RSV1 set).
func (s *Stream) Compressed() bool { return s.compressed }

// Decoder turns an arbitrarily chunked stream of client-to-server bytes into
// unmasked binary payload pieces and whole control frames. The zero value
// is ready, without compression and without a message size limit.
//
// Between calls it holds only a partially received header (in a fixed
// 14-byte array) and, while a control frame's payload is split across
// reads, a pooled 125-byte buffer that is released as soon as the frame is
// complete. Plain data frames are never buffered (compressed messages are
// the exception, see Compressed). A Decoder is used by one goroutine at a
// time (see the package doc).
type Decoder struct {
	// MaxMessage is the largest data message, summed over its fragments,
	// before the decoder fails with 1009. Default 0: no limit for plain
	// messages (the tether frame decoder above bounds its own frames). A
	// compressed message is bounded, compressed and inflated, by
	// MaxMessage or DefaultMaxInflated, whichever is smaller.
	MaxMessage int64

	h      Header    // frame in progress when inFrame
	off    int64     // payload bytes of h already consumed
	msgLen int64     // payload bytes of the data message so far
	ctrl   *ctrlBuf  // partial control payload; nil unless one straddles reads
	z      *inflater // compressed message state; nil until the first one
	err    error     // sticky: the first error Feed returned

	// Compressed allows RSV1 on the first frame of a data message; set it
	// when Info.Deflate is true. Default false. A compressed message is
	// the one exception to streaming: its frames are collected (pooled
	// buffer, released after) and inflated when its FIN frame ends, then
	// delivered through onData like any other payload.
	Compressed bool

	// The small fields sit together so the struct packs into 96 bytes.
	stream  Stream
	inFrame bool
	closed  bool  // a close frame was delivered; the rest of the input is ignored
	hlen    uint8 // bytes of a partial header held in hbuf
	hbuf    [maxClientHeaderLen]byte
}

// ctrlBuf holds a control frame payload that arrived in pieces.
type ctrlBuf struct {
	n int
	b [MaxControlPayload]byte
}

var ctrlPool = sync.Pool{New: func() any { return new(ctrlBuf) }}

// Feed decodes p, which it unmasks in place (p must be writable and the
// caller must not need its masked bytes again).
//
// onData receives each piece of binary message payload, unmasked, in stream
// order; pieces carry no message boundaries (a message may arrive in many
// pieces, and zero-length frames produce none). onControl receives each
// complete control frame: OpPing with its payload (answer with AppendPong),
// OpPong, and OpClose with a payload already validated by ParseClose (call it
// for the code and reason). Control frames between the fragments of a
// message are delivered in order. Both slices alias p (or the decoder's
// buffer) and are valid only until the callback returns; copy to keep.
//
// After a close frame is delivered the remaining input, and every later
// Feed, is ignored (RFC 6455: nothing follows a close). A callback's error
// stops decoding and is returned as is; a protocol violation is a
// *CloseError. Either way the error is sticky: later calls return it again,
// and the connection must be closed. Both callbacks must be non-nil. Feed
// allocates nothing, except pooled buffers while a control frame straddles
// two calls or a compressed message is in progress.
func (d *Decoder) Feed(p []byte, onData func([]byte) error, onControl func(op OpCode, payload []byte) error) error {
	if d.err != nil {
		return d.err
	}
	for len(p) > 0 && !d.closed {
		if !d.inFrame {
			n, err := d.header(p)
			if err != nil {
				return d.fail(err)
			}
			if n == 0 { // header still incomplete; all of p is in hbuf
				return nil
			}
			p = p[n:]
			if d.h.Op.IsControl() {
				if d.h.Length == 0 {
					if err := d.control(nil, onControl); err != nil {
						return d.fail(err)
					}
					continue
				}
			} else if d.h.Length == 0 {
				if err := d.frameDone(onData); err != nil {
					return d.fail(err)
				}
				continue
			}
			if len(p) == 0 {
				return nil
			}
		}
		var err error
		if d.h.Op.IsControl() {
			p, err = d.controlPayload(p, onControl)
		} else {
			p, err = d.dataPayload(p, onData)
		}
		if err != nil {
			return d.fail(err)
		}
	}
	return nil
}

// fail records the sticky error and releases any pooled buffer.
func (d *Decoder) fail(err error) error {
	d.err = err
	d.releaseCtrl()
	return err
}

// header parses the next frame header from the held partial header and p.
// It returns how many bytes of p it consumed; 0 with a nil error means p was
// absorbed into hbuf and more bytes are needed.
func (d *Decoder) header(p []byte) (int, error) {
	var h Header
	var n int
	var err error
	held := int(d.hlen)
	if held == 0 { // fast path: the header is whole in p
		h, n, err = ParseHeader(p, d.Compressed)
		if err == nil && n == 0 {
			d.hlen = uint8(copy(d.hbuf[:], p)) // len(p) < 14 here
			return 0, nil
		}
	} else {
		take := copy(d.hbuf[held:], p)
		h, n, err = ParseHeader(d.hbuf[:held+take], d.Compressed)
		if err == nil && n == 0 {
			d.hlen = uint8(held + take)
			return 0, nil
		}
		n -= held
		d.hlen = 0
	}
	if err != nil {
		return 0, err
	}
	if !h.Op.IsControl() {
		if err := d.stream.Begin(h); err != nil {
			return 0, err
		}
		if d.stream.compressed && d.z == nil {
			d.z = new(inflater)
		}
		d.msgLen += h.Length
		if d.MaxMessage > 0 && (d.msgLen > d.MaxMessage || d.msgLen < 0) {
			return 0, errMessageTooBig
		}
	}
	d.h, d.off, d.inFrame = h, 0, true
	return n, nil
}

// dataPayload unmasks and delivers as much of the data frame as p holds.
func (d *Decoder) dataPayload(p []byte, onData func([]byte) error) ([]byte, error) {
	chunk := p
	if rem := d.h.Length - d.off; int64(len(chunk)) > rem {
		chunk = chunk[:rem]
	}
	Unmask(chunk, d.h.Mask, d.off)
	d.off += int64(len(chunk))
	var err error
	if d.stream.compressed {
		err = d.z.collect(chunk, d.inflateLimit())
	} else {
		err = onData(chunk)
	}
	if err != nil {
		return nil, err
	}
	if d.off == d.h.Length {
		if err := d.frameDone(onData); err != nil {
			return nil, err
		}
	}
	return p[len(chunk):], nil
}

// frameDone ends the data frame in progress, and its message when FIN: a
// compressed message is inflated and delivered then.
func (d *Decoder) frameDone(onData func([]byte) error) error {
	d.inFrame = false
	if !d.h.Fin {
		return nil
	}
	compressed := d.stream.compressed
	d.stream.End()
	d.msgLen = 0
	if !compressed {
		return nil
	}
	return d.z.inflate(d.inflateLimit(), onData)
}

// inflateLimit bounds a compressed message, before and after inflating.
func (d *Decoder) inflateLimit() int {
	if d.MaxMessage > 0 && d.MaxMessage < DefaultMaxInflated {
		return int(d.MaxMessage)
	}
	return DefaultMaxInflated
}

// controlPayload gathers a control frame's payload: straight from p when it
// is whole there (fast path), else through the pooled ctrlBuf.
func (d *Decoder) controlPayload(p []byte, onControl func(OpCode, []byte) error) ([]byte, error) {
	need := int(d.h.Length - d.off)
	if d.ctrl == nil && len(p) >= need { // fast path: whole payload in p
		payload := p[:need]
		Unmask(payload, d.h.Mask, 0)
		return p[need:], d.control(payload, onControl)
	}
	if d.ctrl == nil {
		d.ctrl = ctrlPool.Get().(*ctrlBuf)
		d.ctrl.n = 0
	}
	take := min(need, len(p))
	copy(d.ctrl.b[d.ctrl.n:], p[:take])
	d.ctrl.n += take
	d.off += int64(take)
	p = p[take:]
	if d.off < d.h.Length {
		return p, nil
	}
	payload := d.ctrl.b[:d.ctrl.n]
	Unmask(payload, d.h.Mask, 0)
	err := d.control(payload, onControl)
	d.releaseCtrl()
	return p, err
}

// control validates and delivers a complete control frame.
func (d *Decoder) control(payload []byte, onControl func(OpCode, []byte) error) error {
	d.inFrame = false
	if d.h.Op == OpClose {
		if _, _, err := ParseClose(payload); err != nil {
			return err
		}
		d.closed = true
	}
	return onControl(d.h.Op, payload)
}

// releaseCtrl returns the partial control buffer to the pool.
func (d *Decoder) releaseCtrl() {
	if d.ctrl != nil {
		ctrlPool.Put(d.ctrl)
		d.ctrl = nil
	}
	if d.z != nil {
		d.z.release()
	}
}
