package wsproto

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"
)

// DefaultMaxInflated bounds a compressed message, compressed and inflated,
// when Decoder.MaxMessage does not bound it lower: 1 MiB, so a small
// message cannot inflate into an unbounded one.
const DefaultMaxInflated = 1 << 20

// deflateTail is what RFC 7692 section 7.2.1 has the sender strip from each
// compressed message (the end of a sync flush); the receiver puts it back.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// finalBlock is an empty final stored block, appended after the tail so the
// flate reader ends with io.EOF instead of io.ErrUnexpectedEOF.
var finalBlock = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

var (
	bufPool      = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	flateReaders sync.Pool // of io.ReadCloser that also implement flate.Resetter
	flateWriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.BestSpeed) // BestSpeed: the level cannot be invalid
		return w
	}}
	errInflate  = &CloseError{CloseInvalidPayload, "compressed message does not inflate"}
	errInflated = &CloseError{CloseMessageTooBig, "message too big once inflated"}
)

// inflater collects one compressed message for the Decoder. Both buffers
// are pooled and held only while a compressed message is in progress.
type inflater struct {
	in *bytes.Buffer
}

// collect appends a piece of the compressed message, bounded by limit.
func (z *inflater) collect(p []byte, limit int) error {
	if z.in == nil {
		z.in = bufPool.Get().(*bytes.Buffer)
		z.in.Reset()
	}
	if z.in.Len()+len(p) > limit {
		return errMessageTooBig
	}
	z.in.Write(p)
	return nil
}

// inflate decompresses the collected message and hands it to onData in one
// piece, then releases the buffers.
func (z *inflater) inflate(limit int, onData func([]byte) error) error {
	if z.in == nil { // an empty compressed message
		z.in = bufPool.Get().(*bytes.Buffer)
		z.in.Reset()
	}
	defer z.release()
	out := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(out)
	out.Reset()
	if err := inflateTo(out, z.in.Bytes(), limit); err != nil {
		return err
	}
	if out.Len() == 0 {
		return nil
	}
	return onData(out.Bytes())
}

// release returns the collection buffer to the pool.
func (z *inflater) release() {
	if z.in != nil {
		bufPool.Put(z.in)
		z.in = nil
	}
}

// inflateTo writes the inflated form of one message to out, failing with
// 1009 past limit bytes and 1007 when msg is not valid deflate data.
func inflateTo(out *bytes.Buffer, msg []byte, limit int) error {
	src := io.MultiReader(bytes.NewReader(msg), bytes.NewReader(deflateTail), bytes.NewReader(finalBlock))
	var r io.ReadCloser
	if v := flateReaders.Get(); v != nil {
		r = v.(io.ReadCloser)
		_ = r.(flate.Resetter).Reset(src, nil)
	} else {
		r = flate.NewReader(src)
	}
	defer flateReaders.Put(r)
	n, err := out.ReadFrom(io.LimitReader(r, int64(limit)+1))
	switch {
	case err != nil:
		return errInflate
	case n > int64(limit):
		return errInflated
	}
	return nil
}

// Inflate appends the inflated form of one whole permessage-deflate message
// (the payload of its frames joined, as sent: without the 0x00 0x00 0xff
// 0xff tail) to dst. It fails with *CloseError 1009 past limit inflated
// bytes and 1007 on invalid deflate data. The flate reader is pooled; no
// state survives the call (no context takeover). Safe for concurrent use.
func Inflate(dst, msg []byte, limit int) ([]byte, error) {
	out := bytes.NewBuffer(dst)
	err := inflateTo(out, msg, limit)
	return out.Bytes(), err
}

// Deflate appends the permessage-deflate form of one whole message to dst
// (compressed at flate.BestSpeed, the tail stripped as RFC 7692 asks), ready
// to follow AppendCompressedHeader. With no context takeover the result
// depends only on msg, so a broadcast is compressed once and shared by every
// connection that negotiated deflate. The flate writer (1.2 MB of state)
// is pooled; safe for concurrent use.
func Deflate(dst, msg []byte) []byte {
	out := bytes.NewBuffer(dst)
	w := flateWriters.Get().(*flate.Writer)
	defer flateWriters.Put(w)
	w.Reset(out)
	_, _ = w.Write(msg) // a bytes.Buffer does not fail
	_ = w.Flush()
	b := out.Bytes()
	return b[:len(b)-len(deflateTail)]
}

// AppendCompressedHeader is AppendHeader with RSV1 set, for the first frame
// of a message whose payload came from Deflate (continuation frames of that
// message use AppendHeader). Send it only on a connection with Info.Deflate.
func AppendCompressedHeader(dst []byte, op OpCode, fin bool, length int) []byte {
	return appendHeader(dst, op, fin, rsv1, length)
}
