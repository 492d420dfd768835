package protocol

import (
	"encoding/binary"
	"sync"
)

// decoderRetain is the largest straddle buffer a Decoder keeps between
// frames. Bigger buffers are not kept, so that one large frame does not pin
// its memory for the connection's lifetime: with a million idle connections
// every retained byte counts.
const decoderRetain = PreAuthMaxFrame

// straddlePool recycles straddle buffers for frames too big to retain but
// within DefaultMaxFrame. Without it a stream of 4 KiB frames read in 4 KiB
// chunks allocates on every frame and decodes slower than a naive
// io.ReadFull loop (BenchmarkDecoderStream/4096 vs BenchmarkNaiveStream).
var straddlePool = sync.Pool{New: func() any {
	b := make([]byte, 0, DefaultMaxFrame)
	return &b
}}

// Decoder is a resumable streaming frame decoder for bytes read in
// arbitrary chunks, such as successive net.Conn reads. Any chunking of a
// stream yields the same frames and the same error as parsing it whole.
//
// Frames that lie wholly inside one chunk are delivered without copying.
// Only a frame that straddles two chunks is copied into a buffer, obtained
// after its length has been validated: a buffer the Decoder keeps for
// frames up to 4 KiB, a pooled buffer shared by all Decoders for frames up
// to DefaultMaxFrame, or a new allocation for larger ones.
//
// The zero value is ready to use with DefaultMaxFrame. A Decoder must not be
// copied after first use and is not safe for concurrent use.
type Decoder struct {
	// MaxFrame is the largest length field accepted; 0 means
	// DefaultMaxFrame and values above MaxFrameLimit are clamped. It may be
	// changed between calls to Decode (a server raises it after
	// authentication) and applies to every frame whose length prefix has not
	// been read yet.
	MaxFrame int
	// Retain keeps the buffer of a frame that straddled two reads (up to 4 KiB) for
	// the next one, saving an allocation on streams that straddle often. It stays
	// allocated while the stream idles, so a server holding many idle connections
	// leaves it off (the default); a client with one stream turns it on.
	Retain bool

	head  [Overhead]byte // prefix and header of the straddling frame
	nhead int            // bytes of head filled; 0 when no frame is pending
	hdr   Header         // parsed header, once nhead == Overhead
	body  []byte         // body of the straddling frame so far
	need  int            // body length of the straddling frame
	spare []byte         // retained straddle buffer, cap <= decoderRetain
	pool  *[]byte        // straddlePool buffer body lives in, if any
	err   error          // sticky error
}

// Decode decodes every complete frame in p, continuing any frame left
// incomplete by the previous call, and calls fn for each in stream order.
// The bytes of a trailing incomplete frame are kept for the next call. The
// Frame passed to fn, including its Body, is valid only until fn returns;
// fn must copy anything it keeps (Frame.Clone). Decode does not retain p.
//
// Decode returns the first error: a framing error (see Parse) or an error
// returned by fn. Errors are sticky: the stream position is lost, so every
// later call returns the same error until Reset. After an error, frames
// that followed the failing one in p are not delivered.
func (d *Decoder) Decode(p []byte, fn func(Frame) error) error {
	if d.err != nil {
		return d.err
	}
	limit := limitOf(d.MaxFrame)
	if d.nhead > 0 {
		// slow path: finish the frame begun by an earlier call.
		var err error
		if p, err = d.resume(p, limit, fn); err != nil {
			d.err = err
			return err
		}
	}
	// fast path: frames wholly inside p are parsed in place.
	for len(p) > 0 {
		f, n, err := Parse(p, limit)
		if err != nil {
			d.err = err
			return err
		}
		if n == 0 {
			// p is the start of a frame that Parse found valid so far; keep
			// it. resume consumes all of p without completing a frame.
			if _, err := d.resume(p, limit, fn); err != nil {
				d.err = err
				return err
			}
			return nil
		}
		if err := fn(f); err != nil {
			d.err = err
			return err
		}
		p = p[n:]
	}
	return nil
}

// resume appends the start of p to the pending frame, delivers the frame to
// fn if it is now complete, and returns the unconsumed rest of p. It
// validates the length once 4 bytes are pending and the version once 12
// are, exactly as Parse does, and obtains a body buffer only after both
// checks.
func (d *Decoder) resume(p []byte, limit int, fn func(Frame) error) ([]byte, error) {
	if d.nhead < Overhead {
		had := d.nhead
		k := copy(d.head[had:], p)
		d.nhead += k
		p = p[k:]
		if had < LengthSize && d.nhead >= LengthSize {
			if err := checkLength(binary.BigEndian.Uint32(d.head[:]), limit); err != nil {
				return p, err
			}
		}
		if d.nhead < Overhead {
			return p, nil // p is exhausted
		}
		h, err := parseHeader(d.head[LengthSize:])
		if err != nil {
			return p, err
		}
		d.hdr = h
		d.need = int(binary.BigEndian.Uint32(d.head[:])) - HeaderSize
		d.body = d.buffer(d.need)
	}
	k := min(d.need-len(d.body), len(p))
	d.body = append(d.body, p[:k]...)
	p = p[k:]
	if len(d.body) < d.need {
		return p, nil // p is exhausted
	}
	err := fn(Frame{Header: d.hdr, Body: d.body[:d.need:d.need]})
	d.release()
	return p, err
}

// buffer returns an empty buffer with room for n bytes.
func (d *Decoder) buffer(n int) []byte {
	switch {
	case n <= cap(d.spare):
		return d.spare[:0]
	case n <= decoderRetain:
		return make([]byte, 0, n)
	case n <= DefaultMaxFrame:
		d.pool = straddlePool.Get().(*[]byte)
		return (*d.pool)[:0]
	default:
		return make([]byte, 0, n)
	}
}

// release ends the pending frame, keeping or recycling its buffer.
func (d *Decoder) release() {
	switch {
	case d.pool != nil:
		straddlePool.Put(d.pool)
		d.pool = nil
	case d.Retain && cap(d.body) <= decoderRetain && cap(d.body) > cap(d.spare):
		d.spare = d.body[:0]
	}
	d.body = nil
	d.nhead = 0
	d.need = 0
}

// Buffered returns the number of bytes of an incomplete frame held from
// previous calls to Decode.
func (d *Decoder) Buffered() int {
	if d.nhead < Overhead {
		return d.nhead
	}
	return d.nhead + len(d.body)
}

// Reset discards any incomplete frame and any sticky error, so the Decoder
// can be reused for a new connection. MaxFrame is kept.
func (d *Decoder) Reset() {
	d.release()
	d.hdr = Header{}
	d.err = nil
}
