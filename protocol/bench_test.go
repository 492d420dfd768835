package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
)

var benchSizes = []int{16, 256, 4096}

func benchPayload(n int) []byte {
	return bytes.Repeat([]byte{'p'}, n)
}

// BenchmarkEncode measures building a whole PUSH or SEND frame into a reused
// buffer; the bytes counted are the frame's wire size.
func BenchmarkEncode(b *testing.B) {
	for _, size := range benchSizes {
		push := &Push{MsgID: 123456, Channel: "room-42", Payload: benchPayload(size)}
		send := &Send{Route: "chat.send", Payload: benchPayload(size)}
		for _, m := range []Message{push, send} {
			b.Run(fmt.Sprintf("%s/%d", m.Opcode(), size), func(b *testing.B) {
				buf := make([]byte, 0, Overhead+64+size)
				frame, _ := m.AppendFrame(buf, 0, 0)
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				for b.Loop() {
					buf, _ = m.AppendFrame(buf[:0], 1, FlagAckRequested)
				}
			})
		}
	}
}

// BenchmarkDecode measures Parse plus the message's Decode of one frame.
func BenchmarkDecode(b *testing.B) {
	for _, size := range benchSizes {
		push := &Push{MsgID: 123456, Channel: "room-42", Payload: benchPayload(size)}
		send := &Send{Route: "chat.send", Payload: benchPayload(size)}
		for _, m := range []Message{push, send} {
			b.Run(fmt.Sprintf("%s/%d", m.Opcode(), size), func(b *testing.B) {
				frame := encode(b, m, 1, 0)
				dst := NewMessage(m.Opcode())
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				for b.Loop() {
					f, _, err := Parse(frame, 0)
					if err != nil {
						b.Fatal(err)
					}
					if err := dst.Decode(f.Body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchStream is 64 PUSH frames of the given body size, back to back.
func benchStream(b *testing.B, size int) []byte {
	var stream []byte
	push := &Push{MsgID: 1, Payload: benchPayload(size)}
	for range 64 {
		stream, _ = push.AppendFrame(stream, 0, 0)
	}
	return stream
}

// BenchmarkDecoderStream feeds a stream of PUSH frames to a Decoder in 4 KiB
// reads, as a net.Conn read loop would, so frames straddle reads.
func BenchmarkDecoderStream(b *testing.B) {
	const readSize = 4096
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			stream := benchStream(b, size)
			d := Decoder{Retain: true}
			n := 0
			count := func(Frame) error { n++; return nil }
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				for p := stream; len(p) > 0; {
					k := min(readSize, len(p))
					if err := d.Decode(p[:k], count); err != nil {
						b.Fatal(err)
					}
					p = p[k:]
				}
			}
			if n%64 != 0 {
				b.Fatalf("decoded %d frames, not a multiple of 64", n)
			}
		})
	}
}

// BenchmarkNaiveStream is the baseline BenchmarkDecoderStream beats: the
// usual bufio.Reader + io.ReadFull loop that allocates each frame.
func BenchmarkNaiveStream(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			stream := benchStream(b, size)
			r := bytes.NewReader(stream)
			br := bufio.NewReaderSize(r, 4096)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(stream)
				br.Reset(r)
				for {
					var prefix [LengthSize]byte
					if _, err := io.ReadFull(br, prefix[:]); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
					frame := make([]byte, binary.BigEndian.Uint32(prefix[:]))
					if _, err := io.ReadFull(br, frame); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
