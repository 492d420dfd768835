package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a delivery.
const (
	HeaderID        = "Tether-Webhook-Id"
	HeaderTimestamp = "Tether-Timestamp"
	HeaderSignature = "Tether-Signature"
)

// DefaultTolerance is the tolerance Verify uses when given 0: a request whose
// timestamp is more than five minutes from the receiver's clock is refused.
const DefaultTolerance = 5 * time.Minute

// Sign returns the Tether-Signature value of body sent at unix time ts:
// "v1=" + hex(HMAC-SHA256(secret, ts + "." + body)).
func Sign(secret string, ts int64, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, strconv.FormatInt(ts, 10), body))
}

func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a delivery a receiver got: header's Tether-Timestamp must be within
// tolerance of now (0 means DefaultTolerance) and one of the comma-separated "v1="
// signatures in Tether-Signature must be the HMAC of the timestamp and body under
// secret (compared in constant time). Several signatures let a sender rotate secrets.
// It returns nil, ErrNoSignature, ErrStaleTimestamp or ErrBadSignature. Call it on the
// raw body, before decoding the JSON.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration) error {
	return verifyAt(secret, header, body, tolerance, time.Now())
}

func verifyAt(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	tsText := header.Get(HeaderTimestamp)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	sigs := header.Get(HeaderSignature)
	if err != nil || sigs == "" {
		return ErrNoSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStaleTimestamp
	}
	want := mac(secret, tsText, body)
	for _, s := range strings.Split(sigs, ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(s), "v1=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(v)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrBadSignature
}
