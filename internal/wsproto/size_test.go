package wsproto

import (
	"testing"
	"unsafe"
)

// TestDecoderSize guards the per-connection cost: a Decoder sits in every
// WebSocket connection, idle or not, so its partial-frame buffers stay
// behind pointers (see the Decoder doc).
func TestDecoderSize(t *testing.T) {
	if got := unsafe.Sizeof(Decoder{}); got > 96 {
		t.Fatalf("Decoder is %d bytes, want at most 96", got)
	}
	t.Logf("Decoder: %d bytes", unsafe.Sizeof(Decoder{}))
}
