package protocol

import (
	"encoding/binary"
	"fmt"

	"github.com/cloudwego/netpoll"
)

// NextFrame reads one frame from a netpoll Reader, such as a
// netpoll.Connection's Reader() inside an OnRequest handler, without
// copying it. maxFrame limits the length field as in Parse.
//
// NextFrame never blocks: if fewer than 4 bytes are buffered, or the whole
// frame is not buffered yet, it returns ok == false and a nil error without
// consuming anything, and the caller waits for more input (netpoll calls
// OnRequest again). The length is validated from the first 4 bytes and the
// version from the first 12 with Peek, before waiting for the body, so an
// oversized or foreign frame fails as early as Parse would. Otherwise the
// frame is consumed with r.Next and ok is true.
//
// The returned Body aliases the Reader's buffer and is valid until
// r.Release; clone it (Frame.Clone) to keep it longer. netpoll's Next copies
// internally when a frame spans two of its buffer nodes; the lifetime rule
// is the same either way. Errors other than framing errors come from the
// Reader and are wrapped.
func NextFrame(r netpoll.Reader, maxFrame int) (f Frame, ok bool, err error) {
	buffered := r.Len()
	if buffered < LengthSize {
		return Frame{}, false, nil
	}
	peek := min(buffered, Overhead)
	head, err := r.Peek(peek)
	if err != nil {
		return Frame{}, false, fmt.Errorf("protocol: cannot peek frame header: %w", err)
	}
	limit := limitOf(maxFrame)
	length := binary.BigEndian.Uint32(head)
	if err := checkLength(length, limit); err != nil {
		return Frame{}, false, err
	}
	if peek < Overhead {
		return Frame{}, false, nil
	}
	if _, err := parseHeader(head[LengthSize:Overhead]); err != nil {
		return Frame{}, false, err
	}
	n := LengthSize + int(length)
	if buffered < n {
		return Frame{}, false, nil
	}
	b, err := r.Next(n)
	if err != nil {
		return Frame{}, false, fmt.Errorf("protocol: cannot read %d-byte frame: %w", n, err)
	}
	f, m, err := Parse(b, limit)
	if err != nil || m != n {
		// BUG: the bytes were validated above and Next returned n of them.
		panic(fmt.Sprintf("protocol: BUG: NextFrame: reparse of %d bytes gave n=%d err=%v", n, m, err))
	}
	return f, true, nil
}
