package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/jwtauth"
)

// localIdP is an OAuth 2.0 / OIDC provider for tests: an ES256 key published as a JWK
// Set over HTTP, and short-lived access tokens signed with it.
type localIdP struct {
	key    *ecdsa.PrivateKey
	srv    *httptest.Server
	issued atomic.Int64
}

func newLocalIdP(t *testing.T) *localIdP {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &localIdP{key: key}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	x, y := make([]byte, 32), make([]byte, 32)
	key.PublicKey.X.FillBytes(x)
	key.PublicKey.Y.FillBytes(y)
	set, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), "kid": "k1", "alg": "ES256", "use": "sig"}}})
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// token issues an access token for user valid for ttl.
func (p *localIdP) token(user string, ttl time.Duration) (string, error) {
	p.issued.Add(1)
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": "https://idp.test/", "aud": "tether", "sub": user,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
	tok.Header["kid"] = "k1"
	return tok.SignedString(p.key)
}

// TestTokenRefreshWithJWKS: a client whose OIDC access tokens live 2 s stays on ONE
// connection for three token lifetimes, refreshing through its token function
// (REFRESH on the live connection, verified against the provider's JWK Set), and still
// gets pushes; a client that does not refresh is closed at its token's expiry with the
// reconnect code SESSION_EXPIRED and comes back on a new connection with a new token.
func TestTokenRefreshWithJWKS(t *testing.T) {
	idp := newLocalIdP(t)
	auth, err := jwtauth.New(jwtauth.Config{JWKSURL: idp.srv.URL, Issuer: "https://idp.test/", Audience: "tether", Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	g := startGateway(t, func(o *server.Options) { o.Authenticator = auth; o.TokenGrace = 200 * time.Millisecond }, nil)
	const ttl = 2 * time.Second
	dial := func(user string, noRefresh bool, ends chan<- error) *client.Client {
		c, err := client.Dial(testkit.Context(t, 10*time.Second), g.srv.Addr().String(), client.Options{
			TokenFunc: func(context.Context) (string, error) { return idp.token(user, ttl) },
			NoRefresh: noRefresh, DeviceID: "d", BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
			OnStateChange: func(_ client.State, err error) {
				if err == nil {
					return
				}
				select {
				case ends <- err:
				default:
				}
			},
		})
		if err != nil {
			t.Fatalf("dial %s: %v", user, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	refEnds := make(chan error, 64)
	refresher := dial("ref", false, refEnds)
	id := refresher.ConnID()
	if refresher.LastAuth().TokenExpiresMs == 0 {
		t.Fatal("AUTH_OK announced no token expiry")
	}
	lapsed := make(chan error, 64)
	lapser := dial("lapse", true, lapsed)
	lapseID := lapser.ConnID()

	// Three token lifetimes, with a push in each: the refreshing client keeps its
	// connection, the other one is replaced.
	svc, err := service.Dial(testkit.Context(t, 5*time.Second), g.port.Addr().String(), service.Options{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	end := time.Now().Add(3 * ttl)
	for i := 0; time.Now().Before(end); i++ {
		res, err := svc.PushUsers(testkit.Context(t, 5*time.Second), []string{"ref"}, []byte{byte(i)}, service.PushOptions{})
		if err != nil || res.Delivered != 1 {
			t.Fatalf("push %d to the refreshing client: %+v, %v", i, res, err)
		}
		if p := testkit.Recv(t, refresher.Pushes(), 5*time.Second); len(p.Payload) != 1 || p.Payload[0] != byte(i) {
			t.Fatalf("push %d: %v", i, p.Payload)
		}
		if refresher.ConnID() != id || refresher.State() != client.StateConnected {
			t.Fatalf("the refreshing client reconnected (conn %d, was %d; state %v)", refresher.ConnID(), id, refresher.State())
		}
		time.Sleep(250 * time.Millisecond) // paces the pushes over the lifetimes: the time passing is the test
	}
	if n := idp.issued.Load(); n < 4 {
		t.Fatalf("only %d tokens issued over three lifetimes", n)
	}
	var ce *client.CloseError
	if err := testkit.Recv(t, lapsed, 5*time.Second); !errors.As(err, &ce) || ce.Code != protocol.CloseSessionExpired {
		t.Fatalf("the client that does not refresh ended with %v, want SESSION_EXPIRED", err)
	}
	testkit.WaitFor(t, "the lapsing client on a new connection", func() bool {
		return lapser.State() == client.StateConnected && lapser.ConnID() != lapseID
	})
	select {
	case err := <-refEnds:
		t.Fatalf("the refreshing client's connection ended: %v", err)
	default:
	}
}
