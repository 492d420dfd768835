package server

import (
	"encoding/binary"
	"fmt"

	"github.com/cloudwego/netpoll"

	"github.com/tether-gw/tether/protocol"
)

// NextFrame reads one tether frame from a netpoll Reader, such as a
// netpoll.Connection's Reader() inside an OnRequest handler, without copying it.
// maxFrame limits the length field as in protocol.Parse (0 or less means
// protocol.DefaultMaxFrame; values above protocol.MaxFrameLimit are clamped).
// It is for programs that run their own netpoll event loop over tether frames
// (the bench's bare-netpoll floor does); the Server's own read path takes each
// read whole and parses it with protocol.Parse and protocol.Decoder. It lives
// here, not in protocol, so that protocol and the client SDK link no netpoll.
//
// NextFrame never blocks: if fewer than 4 bytes are buffered, or the whole frame
// is not buffered yet, it returns ok == false and a nil error without consuming
// anything, and the caller waits for more input (netpoll calls OnRequest again).
// The length is validated from the first 4 bytes and the version from the first
// 12 with Peek, before waiting for the body, so an oversized or foreign frame
// fails as early as protocol.Parse would, with the same errors. Otherwise the
// frame is consumed with r.Next and ok is true.
//
// The returned Body aliases the Reader's buffer and is valid until r.Release;
// clone it (protocol.Frame.Clone) to keep it longer. netpoll's Next copies
// internally when a frame spans two of its buffer nodes; the lifetime rule is
// the same either way. Errors other than framing errors come from the Reader and
// are wrapped. NextFrame is safe to call only from the goroutine that owns r.
func NextFrame(r netpoll.Reader, maxFrame int) (f protocol.Frame, ok bool, err error) {
	buffered := r.Len()
	if buffered < protocol.LengthSize {
		return protocol.Frame{}, false, nil
	}
	head, err := r.Peek(min(buffered, protocol.Overhead))
	if err != nil {
		return protocol.Frame{}, false, fmt.Errorf("server: cannot peek frame header: %w", err)
	}
	// Parse checks the length from 4 bytes and the version from 12, and reports
	// "incomplete" (n == 0) for a frame with a body still to come.
	if _, _, err := protocol.Parse(head, maxFrame); err != nil {
		return protocol.Frame{}, false, err
	}
	if len(head) < protocol.Overhead {
		return protocol.Frame{}, false, nil
	}
	n := protocol.LengthSize + int(binary.BigEndian.Uint32(head))
	if buffered < n {
		return protocol.Frame{}, false, nil
	}
	b, err := r.Next(n)
	if err != nil {
		return protocol.Frame{}, false, fmt.Errorf("server: cannot read %d-byte frame: %w", n, err)
	}
	f, m, err := protocol.Parse(b, maxFrame)
	if err != nil || m != n {
		// BUG: the bytes were validated above and Next returned n of them.
		panic(fmt.Sprintf("server: BUG: NextFrame: reparse of %d bytes gave n=%d err=%v", n, m, err))
	}
	return f, true, nil
}
