// Package backoff is the reconnect schedule of tether's Go SDKs (package client
// for the client port, package client/service for the control port):
// exponential backoff with full jitter, the rule that says which attempts count
// as failed, and how a GOAWAY's retry-after combines with it. It is the one
// implementation of PROTOCOL.md §13 in this module; both SDKs call it, so they
// cannot drift apart.
//
// The schedule only computes durations: it neither sleeps nor reads the clock.
// The caller measures how long a session lived and sleeps the returned wait, so
// tests drive it with made-up durations and a made-up random source.
//
// # Rule
//
// A counter n holds the number of consecutive failed attempts. An attempt
// fails when it does not reach a session (dial error, handshake timeout,
// AUTH_FAIL or CLOSE before authentication with a reconnect code), and also
// when its session ends, whatever the code, less than StableAfter after it was
// authenticated: a server (or a second login on the same device) that accepts
// and at once closes must not be redialled at full speed. Only a session that
// lived at least StableAfter resets n to 0.
//
// The wait before the next attempt is uniform in [0, min(Max, Min·2ⁿ)] ("full
// jitter", so that clients dropped together do not come back together). After
// a GOAWAY the wait is its retry-after, which the server has already jittered;
// when the attempt that GOAWAY ended counts as failed, the wait is the longer
// of the retry-after and the backoff.
//
// A Schedule is not safe for concurrent use: each SDK keeps one on the
// goroutine that reconnects.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff with full jitter. The zero value waits 0.
// A Policy is a value; it is safe for concurrent use if Rand is.
type Policy struct {
	// Min is the ceiling of the first wait, doubled with every failed
	// attempt.
	Min time.Duration
	// Max caps the ceiling.
	Max time.Duration
	// Rand, when set, replaces the jitter source; it must return a uniform
	// value in [0, n) for n > 0. Default math/rand/v2.Int64N. Tests set it to
	// make delays deterministic.
	Rand func(n int64) int64
}

// Ceiling returns the largest wait before attempt n (n ≥ 0 failed attempts
// so far): min(Max, Min·2ⁿ), without overflow for any n.
func (p Policy) Ceiling(n int) time.Duration {
	ceil := p.Min
	for i := 0; i < n && ceil > 0 && ceil < p.Max; i++ {
		if ceil > p.Max/2 { // doubling would pass Max, or overflow
			return p.Max
		}
		ceil *= 2
	}
	return max(0, min(ceil, p.Max))
}

// Delay returns a random wait in [0, Ceiling(n)], both ends included.
func (p Policy) Delay(n int) time.Duration {
	ceil := p.Ceiling(n)
	if ceil <= 0 {
		return 0
	}
	randN := p.Rand
	if randN == nil {
		randN = rand.Int64N
	}
	return time.Duration(randN(int64(ceil) + 1))
}

// Ending says how a connection attempt ended, for Schedule.Next.
type Ending struct {
	// Authenticated is set when the attempt reached a session (AUTH_OK, or
	// the control port's AUTH result).
	Authenticated bool
	// Lived is how long the session stayed authenticated; ignored unless
	// Authenticated.
	Lived time.Duration
	// GoAway is set when a GOAWAY ended the attempt; RetryAfter is what it
	// asked for (what remains of it, if the connection drained meanwhile).
	GoAway     bool
	RetryAfter time.Duration
}

// Schedule is one SDK connection's reconnect schedule: the Policy plus the
// counter of consecutive failed attempts. The zero counter means none; the
// attempt that first connected (Dial) is attempt 0.
type Schedule struct {
	Policy
	// StableAfter is how long a session must stay authenticated to count as
	// a success and reset the counter. Zero makes every session stable.
	StableAfter time.Duration

	n int
}

// Failures returns the number of consecutive failed attempts counted so far,
// i.e. the n the last wait was drawn for.
func (s *Schedule) Failures() int { return s.n }

// Next records how the last attempt ended and returns how long to wait before
// the next one (see the package doc for the rule).
func (s *Schedule) Next(e Ending) time.Duration {
	stable := e.Authenticated && e.Lived >= s.StableAfter
	if stable {
		s.n = 0
	} else if s.n < maxFailures {
		s.n++
	}
	switch {
	case e.GoAway && stable:
		return max(0, e.RetryAfter)
	case e.GoAway:
		return max(e.RetryAfter, s.Delay(s.n))
	}
	return s.Delay(s.n)
}

// maxFailures bounds the counter, so that it cannot wrap: Min·2⁶⁴ is past any
// Max for Min ≥ 1ns.
const maxFailures = 64
