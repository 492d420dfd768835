package webhook

import "errors"

// Errors returned by New and Verify.
var (
	// ErrNoURL is returned by New for Options without a URL (or with one that is not
	// http or https).
	ErrNoURL = errors.New("webhook: Options.URL must be an http or https URL")
	// ErrWeakSecret is returned by New for a secret shorter than MinSecretLen.
	ErrWeakSecret = errors.New("webhook: Options.Secret is shorter than 16 bytes")
	// ErrNoSignature is returned by Verify when the Tether-Timestamp or
	// Tether-Signature header is missing or malformed.
	ErrNoSignature = errors.New("webhook: missing or malformed signature headers")
	// ErrBadSignature is returned by Verify when no v1 signature matches the body.
	ErrBadSignature = errors.New("webhook: signature does not match")
	// ErrStaleTimestamp is returned by Verify when the timestamp is further than the
	// tolerance from now, in either direction (a replayed or held-back request).
	ErrStaleTimestamp = errors.New("webhook: timestamp outside the tolerance")
)
