package kit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tether-gw/tether/protocol"
)

// frames compiles WebSocket frames (masked when mask is set) into one byte string.
func frames(t *testing.T, mask bool, fs ...ws.Frame) []byte {
	t.Helper()
	var b []byte
	for _, f := range fs {
		if mask {
			f = ws.MaskFrameWith(f, [4]byte{1, 2, 3, 4})
		}
		bts, err := ws.CompileFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, bts...)
	}
	return b
}

// recorder is a net.Conn whose reads come from r and whose writes are kept.
type recorder struct {
	net.Conn // nil: only Read and Write are used
	r        io.Reader
	out      bytes.Buffer
}

func (c *recorder) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *recorder) Write(p []byte) (int, error) { return c.out.Write(p) }

// readAll reads the stream to its end with reads of at most chunk bytes.
func readAll(w *WSConn, chunk int) ([]byte, error) {
	var got []byte
	buf := make([]byte, chunk)
	for {
		n, err := w.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
}

// TestWSConnStream: the payloads of binary messages read as one byte stream, however
// the messages split tether's frames and whatever the read size.
func TestWSConnStream(t *testing.T) {
	hello, err := (&protocol.Hello{Token: "u1", DeviceID: "d"}).AppendFrame(nil, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	ping := protocol.AppendEmpty(nil, protocol.OpPing, 2)
	stream := append(append([]byte{}, hello...), ping...)
	f := func(name string, mask bool, msgs [][]byte) {
		t.Helper()
		var fs []ws.Frame
		for _, m := range msgs {
			fs = append(fs, ws.NewBinaryFrame(m))
		}
		wire := frames(t, mask, fs...)
		for _, chunk := range []int{1, 3, 7, 4096} {
			w := NewWSConn(&recorder{r: bytes.NewReader(wire)}, nil, false)
			got, err := readAll(w, chunk)
			if err != io.EOF {
				t.Errorf("%s, reads of %d: err %v, want io.EOF", name, chunk, err)
			}
			if !bytes.Equal(got, stream) {
				t.Errorf("%s, reads of %d: got %x, want %x", name, chunk, got, stream)
			}
			// The tether decoder sees the same frames.
			var dec protocol.Decoder
			var ops []protocol.Opcode
			if err := dec.Decode(got, func(fr protocol.Frame) error { ops = append(ops, fr.Op); return nil }); err != nil || len(ops) != 2 {
				t.Errorf("%s: decoded %v, %v", name, ops, err)
			}
		}
	}
	// One message per tether frame.
	f("one frame per message", false, [][]byte{hello, ping})
	// Both frames in one message, masked as a client sends it.
	f("two frames in one masked message", true, [][]byte{stream})
	// A frame spanning three messages, with an empty message between.
	f("a frame spanning messages", true, [][]byte{hello[:3], hello[3:5], {}, append(hello[5:], ping[:1]...), ping[1:]})
	// Every split point of the whole stream.
	for i := 1; i < len(stream); i++ {
		f("split", i%2 == 0, [][]byte{stream[:i], stream[i:]})
	}
}

// TestWSConnControl: a ping is answered with a pong carrying its payload, a pong is
// skipped, a fragmented message reads as its fragments' concatenation, a close ends
// the stream with io.EOF after echoing it, and a text message is an error.
func TestWSConnControl(t *testing.T) {
	wire := frames(t, true,
		ws.NewFrame(ws.OpBinary, false, []byte("ab")),
		ws.NewPingFrame([]byte("hi")),
		ws.NewFrame(ws.OpContinuation, true, []byte("cd")),
		ws.NewPongFrame(nil),
		ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")),
		ws.NewBinaryFrame([]byte("never read")),
	)
	rec := &recorder{r: bytes.NewReader(wire)}
	w := NewWSConn(rec, nil, false)
	got, err := readAll(w, 16)
	if string(got) != "abcd" || !errors.Is(err, io.EOF) || !errors.Is(err, ErrWSClosed) {
		t.Fatalf("read %q, %v; want \"abcd\", ErrWSClosed", got, err)
	}
	// What went back: a pong "hi" then the close echoed, unmasked (server side).
	r := bytes.NewReader(rec.out.Bytes())
	for _, want := range []ws.Frame{ws.NewPongFrame([]byte("hi")), ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))} {
		fr, err := ws.ReadFrame(r)
		if err != nil || fr.Header.OpCode != want.Header.OpCode || fr.Header.Masked || !bytes.Equal(fr.Payload, want.Payload) {
			t.Errorf("sent %+v %q, %v; want %v %q", fr.Header, fr.Payload, err, want.Header.OpCode, want.Payload)
		}
	}

	w = NewWSConn(&recorder{r: bytes.NewReader(frames(t, false, ws.NewTextFrame([]byte("x"))))}, nil, true)
	if _, err := w.Read(make([]byte, 8)); !errors.Is(err, ErrWSText) {
		t.Errorf("text message: %v, want ErrWSText", err)
	}
	// A header announcing more than the bound is refused before anything is read.
	big := frames(t, false, ws.NewBinaryFrame(nil))
	big[1] = 127
	big = append(big, 0, 0, 0, 0, 0x10, 0, 0, 0) // 256 MiB
	w = NewWSConn(&recorder{r: bytes.NewReader(big)}, nil, true)
	if _, err := w.Read(make([]byte, 8)); !errors.Is(err, ErrWSTooLarge) {
		t.Errorf("huge frame: %v, want ErrWSTooLarge", err)
	}
}

// TestWSConnWrite: a client's Write is one masked binary message whose payload is
// the bytes written; a server's is unmasked.
func TestWSConnWrite(t *testing.T) {
	for _, client := range []bool{true, false} {
		rec := &recorder{r: bytes.NewReader(nil)}
		w := NewWSConn(rec, nil, client)
		for _, p := range []string{"first", "", "third"} {
			if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", p, n, err)
			}
		}
		r := bytes.NewReader(rec.out.Bytes())
		for _, want := range []string{"first", "", "third"} {
			fr, err := ws.ReadFrame(r)
			if err != nil {
				t.Fatal(err)
			}
			if fr.Header.Masked != client || fr.Header.OpCode != ws.OpBinary || !fr.Header.Fin {
				t.Errorf("client=%v: header %+v", client, fr.Header)
			}
			if fr.Header.Masked {
				fr = ws.UnmaskFrameInPlace(fr)
			}
			if string(fr.Payload) != want {
				t.Errorf("client=%v: payload %q, want %q", client, fr.Payload, want)
			}
		}
	}
}

// TestTransportsLoopback dials each transport against the bench's own listener for
// it (Listen), with a self-signed certificate trusted through CAFile, and echoes a
// tether frame both ways.
func TestTransportsLoopback(t *testing.T) {
	cert, err := SelfSignedCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ping := protocol.AppendEmpty(nil, protocol.OpPing, 7)
	for _, tr := range Transports {
		ln, err := Listen(tr, "127.0.0.1:0", cert)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = io.Copy(c, c) // echo whatever the stream carries
		}()
		d, err := ClientTransport{Transport: tr, CAFile: cert.CertFile}.NewDialer(&net.Dialer{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.Dial(ctx, ln.Addr().String())
		if err != nil {
			t.Fatalf("%s: %v", tr, err)
		}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		// Two writes, read back as one stream.
		if _, err := c.Write(ping[:2]); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(ping[2:]); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(ping))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, ping) {
			t.Errorf("%s: echoed %x, %v; want %x", tr, got, err, ping)
		}
		if err := CloseReset(c); err != nil {
			t.Errorf("%s: CloseReset: %v", tr, err)
		}
		ln.Close()
	}
	// Without a CA file or insecure mode a secure dialer is refused.
	if _, err := (ClientTransport{Transport: TransportTLS}).NewDialer(&net.Dialer{}); err == nil {
		t.Error("tls dialer without a CA file or -insecure was accepted")
	}
	if _, err := ParseTransport("quic"); !errors.Is(err, ErrTransport) {
		t.Errorf("ParseTransport(quic) = %v", err)
	}
}
