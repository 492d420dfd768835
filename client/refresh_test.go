package client

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/jwtauth"
)

// refreshSecret signs the short-lived test tokens.
var refreshSecret = []byte("refresh-test-secret-of-32-bytes!")

// startJWTServer is a real gateway verifying HS256 tokens, with a short grace past
// their expiry.
func startJWTServer(t *testing.T) *server.Server {
	t.Helper()
	auth, err := jwtauth.New(jwtauth.Config{Algorithm: "HS256", HMACSecret: refreshSecret})
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, func(o *server.Options) {
		o.Authenticator = auth
		o.TokenGrace = 100 * time.Millisecond
		// Longer than testHeartbeat: these tests are about tokens, and a loaded
		// machine must not end a connection by heartbeat meanwhile.
		o.Heartbeat = 2 * time.Second
	})
}

// mintFunc is a TokenFunc minting ttl tokens for user, counting its calls.
func mintFunc(t *testing.T, user string, ttl time.Duration, calls *atomic.Int64) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		calls.Add(1)
		return jwtauth.MintHS256(refreshSecret, user, ttl, nil)
	}
}

// nextPush returns the client's next push, failing after waitTimeout.
func nextPush(t *testing.T, c *Client) Push {
	t.Helper()
	select {
	case p := <-c.Pushes():
		return p
	case <-time.After(waitTimeout):
		t.Fatal("no push")
	}
	return Push{}
}

// waitLong polls cond for up to 30s: these tests wait for tokens to expire.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRefreshOutlivesTokens: with 2-second tokens the client refreshes through
// TokenFunc on the live connection, which outlives several tokens without a reconnect.
func TestRefreshOutlivesTokens(t *testing.T) {
	s := startJWTServer(t)
	var calls atomic.Int64
	var tr testkit.Transitions[State]
	c := dial(t, s.Addr().String(), Options{TokenFunc: mintFunc(t, userName(t), 2*time.Second, &calls), OnStateChange: tr.Record})
	id := c.ConnID()
	firstExp := c.LastAuth().TokenExpiresMs
	if firstExp == 0 {
		t.Fatal("AUTH_OK carries no token_expires_ms for a token with exp")
	}
	waitLong(t, "three refreshes, past the first token's expiry", func() bool {
		return c.refreshes.Load() >= 3 && time.Now().UnixMilli() > firstExp+500
	})
	if c.ConnID() != id || c.attempts.Load() != 1 || c.State() != StateConnected {
		t.Fatalf("connection changed: conn %d (was %d), %d attempts, state %v; transitions:\n%s", c.ConnID(), id, c.attempts.Load(), c.State(), tr.Dump())
	}
	conns := s.UserConns(userName(t))
	if len(conns) != 1 || !conns[0].TokenExpiry().After(time.UnixMilli(firstExp)) {
		t.Fatalf("server side: %d connections, expiry not moved past the first token's", len(conns))
	}
	if _, err := c.Send(context.Background(), "echo", []byte("x")); err != nil {
		t.Fatalf("Send after refreshes: %v", err)
	}
}

// TestExpiryReconnects: without refresh (NoRefresh, or a token source that keeps
// failing on the live connection) the server ends the connection at the token's
// expiry with SESSION_EXPIRED, and the client reconnects with a fresh token.
func TestExpiryReconnects(t *testing.T) {
	// client is the client under test, for a TokenFunc that fails while it is connected.
	var client atomic.Pointer[Client]
	for _, tc := range []struct {
		name string
		opts func(o *Options, tok func(context.Context) (string, error))
	}{
		{"no refresh", func(o *Options, tok func(context.Context) (string, error)) {
			o.NoRefresh = true
			o.TokenFunc = tok
		}},
		{"refresh failing", func(o *Options, tok func(context.Context) (string, error)) {
			o.TokenFunc = func(ctx context.Context) (string, error) {
				if c := client.Load(); c != nil && c.State() == StateConnected {
					return "", errors.New("token service down") // every refresh on the live connection
				}
				return tok(ctx)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startJWTServer(t)
			var calls atomic.Int64
			var expired atomic.Bool
			o := Options{BackoffMin: time.Millisecond, StableAfter: time.Millisecond,
				OnStateChange: func(_ State, err error) {
					var ce *CloseError
					if errors.As(err, &ce) && ce.Code == protocol.CloseSessionExpired {
						expired.Store(true)
					}
				}}
			tc.opts(&o, mintFunc(t, userName(t), 2*time.Second, &calls))
			o.DeviceID = "dev-" + tc.name
			c := dial(t, s.Addr().String(), o)
			client.Store(c)
			id := c.ConnID()
			// A QoS1 message before the expiry: the reconnect resumes after it.
			if _, err := s.PushUsers([]string{userName(t)}, []byte("m1"), server.PushOptions{QoS1: true}); err != nil {
				t.Fatal(err)
			}
			if p := nextPush(t, c); string(p.Payload) != "m1" || !p.AckRequested {
				t.Fatalf("push %+v, want QoS1 m1", p)
			}
			waitLong(t, "closed with SESSION_EXPIRED and reconnected", func() bool {
				return expired.Load() && c.State() == StateConnected && c.ConnID() != id
			})
			if calls.Load() < 2 {
				t.Fatalf("TokenFunc minted %d tokens, want a fresh one for the reconnect", calls.Load())
			}
			if r := c.LastAuth().Resume; r != protocol.ResumeRecovered {
				t.Fatalf("reconnect after SESSION_EXPIRED: resume %v, want RECOVERED", r)
			}
			if _, err := s.PushUsers([]string{userName(t)}, []byte("m2"), server.PushOptions{QoS1: true}); err != nil {
				t.Fatal(err)
			}
			if p := nextPush(t, c); string(p.Payload) != "m2" {
				t.Fatalf("after the reconnect got %q, want m2 (m1 not again)", p.Payload)
			}
		})
	}
}

// TestRefreshRetries: a refresh that fails (the token source errs once on the live
// connection) is tried again before the expiry, and the connection lives on.
func TestRefreshRetries(t *testing.T) {
	s := startJWTServer(t)
	var calls, failed atomic.Int64
	mint := mintFunc(t, userName(t), 4*time.Second, &calls)
	tok := func(ctx context.Context) (string, error) {
		if calls.Load() == 1 && failed.Add(1) == 1 {
			return "", errors.New("token service hiccup") // the first refresh
		}
		return mint(ctx)
	}
	c := dial(t, s.Addr().String(), Options{TokenFunc: tok})
	id := c.ConnID()
	firstExp := c.LastAuth().TokenExpiresMs
	waitLong(t, "a refresh after the failed one, past the first token's expiry", func() bool {
		return c.refreshes.Load() >= 1 && time.Now().UnixMilli() > firstExp+500
	})
	if failed.Load() < 1 || c.ConnID() != id || c.attempts.Load() != 1 {
		t.Fatalf("failures %d, conn %d (was %d), %d attempts", failed.Load(), c.ConnID(), id, c.attempts.Load())
	}
}
