package wsproto

import (
	"encoding/binary"
	"unicode/utf8"
)

// AppendClose appends a whole close frame carrying code and reason and
// returns the extended slice. The reason is cut at a UTF-8 boundary so the
// payload fits in 125 bytes. code 0 writes a close frame with an empty
// payload (no status code; the peer sees 1005). The code is sent as given:
// tether close codes (1000, 3000-3999) unchanged, or a CloseError's Code.
func AppendClose(dst []byte, code uint16, reason string) []byte {
	if code == 0 {
		return AppendHeader(dst, OpClose, true, 0)
	}
	reason = truncateUTF8(reason, MaxControlPayload-2)
	dst = AppendHeader(dst, OpClose, true, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}

// truncateUTF8 cuts s to at most max bytes without splitting a rune.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// ParseClose splits a close frame payload into its code and reason. An empty
// payload gives code 0 (no status code; RFC 6455 reports it as 1005). It
// applies RFC 6455 section 7.4: a 1-byte payload, and a code outside
// 1000-1003, 1007-1014 and 3000-4999, are *CloseError 1002; a reason that is
// not UTF-8 is *CloseError 1007. The reason aliases payload.
func ParseClose(payload []byte) (code uint16, reason []byte, err error) {
	switch len(payload) {
	case 0:
		return 0, nil, nil
	case 1:
		return 0, nil, errCloseLength
	}
	code = binary.BigEndian.Uint16(payload)
	if !validCloseCode(code) {
		return 0, nil, errCloseCode
	}
	reason = payload[2:]
	if !utf8.Valid(reason) {
		return 0, nil, errCloseReason
	}
	return code, reason, nil
}

// validCloseCode reports whether a peer may send code in a close frame:
// the codes RFC 6455 defines for the wire (1004-1006 and 1015 are reserved
// and never sent), the IANA-registered 1012-1014, and 3000-4999.
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
