package protocol

import (
	"errors"
	"fmt"
)

// Sentinel errors returned, wrapped with detail, by the decoders and
// encoders. Test for them with errors.Is.
var (
	// ErrFrameTooShort reports a length prefix below HeaderSize: the frame
	// cannot even hold its fixed header.
	ErrFrameTooShort = errors.New("protocol: frame too short")

	// ErrFrameTooLarge reports a length prefix above the reader's limit. It is
	// detected from the 4 prefix bytes alone, before the body is buffered.
	// Message encoders also return it for a frame above MaxFrameLimit.
	ErrFrameTooLarge = errors.New("protocol: frame too large")

	// ErrUnsupportedVersion reports a header whose version byte is not
	// Version. It is detected once the 12 bytes of prefix and header are
	// available, before the body is buffered.
	ErrUnsupportedVersion = errors.New("protocol: unsupported version")

	// ErrMalformedBody reports a body too short for the fields of its opcode,
	// or a text field that is not valid UTF-8 (then the error also wraps
	// ErrInvalidUTF8). The wrapping error names the opcode and the field, e.g.
	// "protocol: malformed body: HELLO: device_id: need 2 bytes, have 1".
	ErrMalformedBody = errors.New("protocol: malformed body")

	// ErrInvalidUTF8 reports a decoded text field whose bytes are not valid
	// UTF-8. It is always wrapped together with ErrMalformedBody, so a
	// receiver reacts to it as to any malformed body (PROTOCOL.md section 6).
	ErrInvalidUTF8 = errors.New("protocol: invalid UTF-8")

	// ErrFieldTooLong reports a text field longer than MaxStringLen bytes
	// given to a message encoder.
	ErrFieldTooLong = errors.New("protocol: field too long")
)

// CloseCodeFor returns the code a peer should put in the CLOSE frame it
// sends before dropping a connection whose read side failed with err:
// CloseFrameTooLarge for ErrFrameTooLarge, CloseUnsupportedVersion for
// ErrUnsupportedVersion, CloseNormal for nil, and CloseProtocolError for
// anything else (short frames, malformed bodies, errors returned by a
// Decoder callback).
func CloseCodeFor(err error) CloseCode {
	switch {
	case err == nil:
		return CloseNormal
	case errors.Is(err, ErrFrameTooLarge):
		return CloseFrameTooLarge
	case errors.Is(err, ErrUnsupportedVersion):
		return CloseUnsupportedVersion
	default:
		return CloseProtocolError
	}
}

// The constructors below build the wrapped errors in one place so that every
// reader reports a given defect with the same text; FuzzDecodeStream compares
// Decoder and Parse errors by text.

func errTooShort(length uint32) error {
	return fmt.Errorf("%w: length %d is below the %d-byte header", ErrFrameTooShort, length, HeaderSize)
}

func errTooLarge(length uint32, limit int) error {
	return fmt.Errorf("%w: length %d exceeds limit %d", ErrFrameTooLarge, length, limit)
}

func errVersion(v uint8) error {
	return fmt.Errorf("%w: version %d, want %d", ErrUnsupportedVersion, v, Version)
}

func errMalformed(op Opcode, field string, need, have int) error {
	return fmt.Errorf("%w: %s: %s: need %d bytes, have %d", ErrMalformedBody, op, field, need, have)
}

func errUTF8(op Opcode, field string) error {
	return fmt.Errorf("%w: %s: %s: %w", ErrMalformedBody, op, field, ErrInvalidUTF8)
}

func errFieldTooLong(op Opcode, field string, n int) error {
	return fmt.Errorf("%w: %s: %s is %d bytes, max %d", ErrFieldTooLong, op, field, n, MaxStringLen)
}

func errEncodeTooLarge(op Opcode, length int) error {
	return fmt.Errorf("%w: %s: length %d exceeds MaxFrameLimit %d", ErrFrameTooLarge, op, length, MaxFrameLimit)
}
