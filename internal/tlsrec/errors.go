package tlsrec

import (
	"errors"
	"strconv"
)

// Alert codes (RFC 8446 §6, RFC 5246 §7.2) this package sends or reports.
const (
	// AlertCloseNotify tells the peer no more data follows; Alert sends it at warning level.
	AlertCloseNotify uint8 = 0
	// AlertUnexpectedMessage answers a record this package does not accept (ErrUnexpectedMessage).
	AlertUnexpectedMessage uint8 = 10
	// AlertBadRecordMAC answers a record that fails authentication (ErrBadRecord).
	AlertBadRecordMAC uint8 = 20
	// AlertRecordOverflow answers a record longer than the protocol allows.
	AlertRecordOverflow uint8 = 22
	// AlertDecodeError answers a record whose contents cannot be parsed.
	AlertDecodeError uint8 = 50
	// AlertInternalError reports a local failure unrelated to the peer.
	AlertInternalError uint8 = 80
	// AlertUserCanceled is what a peer may send before close_notify to abort.
	AlertUserCanceled uint8 = 90
	// AlertNoRenegotiation refuses a TLS 1.2 renegotiation.
	AlertNoRenegotiation uint8 = 100
)

// Errors returned by this package. Open's errors say which alert, if any, the caller
// should send before closing (see AlertFor).
var (
	// ErrCloseNotify is returned by Open when the peer sent close_notify: the stream
	// ended cleanly and nothing after it in p was processed.
	ErrCloseNotify = errors.New("tlsrec: peer sent close_notify")
	// ErrBadRecord is returned by Open for a record that fails AEAD authentication, is
	// malformed (bad version field, bad length, all-zero TLS 1.3 inner plaintext), or is
	// longer than the protocol allows. The session is unusable afterwards.
	ErrBadRecord = errors.New("tlsrec: bad record")
	// ErrUnexpectedMessage is returned by Open for a record the established session does
	// not accept: a handshake message other than a TLS 1.3 KeyUpdate (including a TLS 1.2
	// renegotiation attempt), a ChangeCipherSpec, or an unknown content type.
	ErrUnexpectedMessage = errors.New("tlsrec: unexpected message")
	// ErrHandshakeTooLarge is returned by Feeder.Feed when more than MaxHandshakeBytes
	// would be buffered waiting for the handshake to read them.
	ErrHandshakeTooLarge = errors.New("tlsrec: handshake too large")
	// ErrHandshakeDone is returned by Feeder.Feed once Handshake has taken the leftover
	// bytes: p was not consumed and belongs to Session.Open, after the leftover.
	ErrHandshakeDone = errors.New("tlsrec: handshake done, feed Session.Open")
	// ErrUnsupportedSuite is returned by Handshake when crypto/tls negotiated a version or
	// cipher suite this record layer cannot run (only AEAD suites of TLS 1.2 and 1.3).
	ErrUnsupportedSuite = errors.New("tlsrec: negotiated cipher suite not supported")
)

// AlertError is returned by Open when the peer sent an alert other than close_notify.
// Every such alert ends the session (warning-level alerts of TLS 1.2 included).
type AlertError struct {
	// Code is the alert description byte (one of the Alert constants or another RFC 8446 code).
	Code uint8
}

// Error returns "tlsrec: peer sent alert N".
func (e *AlertError) Error() string {
	return "tlsrec: peer sent alert " + strconv.Itoa(int(e.Code))
}

// AlertFor returns the alert code the caller should send (with Session.Alert) before
// closing after Open returned err, and false when no alert should be sent (the peer
// closed or alerted, or err is not this package's).
func AlertFor(err error) (uint8, bool) {
	switch {
	case errors.Is(err, ErrBadRecord):
		return AlertBadRecordMAC, true
	case errors.Is(err, ErrUnexpectedMessage):
		return AlertUnexpectedMessage, true
	}
	return 0, false
}
