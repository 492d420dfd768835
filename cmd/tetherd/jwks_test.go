package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/jwtauth"
)

// TestJWKSFlags: -jwks-url with -jwt-issuer and -jwt-audience builds a JWKS-mode
// authenticator that verifies the local IdP's ES256 token and takes the user id from
// -jwt-user-claim; an unreachable IdP is a startup error (exit 2) unless
// -jwks-allow-unreachable; -jwks-url with a pinned key is refused.
func TestJWKSFlags(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "k1", ALG: "ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(body) }))
	defer idp.Close()

	o, err := options(t, []string{"-jwks-url", idp.URL + "/.well-known/jwks.json", "-jwt-issuer", "https://idp/",
		"-jwt-audience", "tether", "-jwt-user-claim", "email", "-jwt-algs", "ES256, EdDSA"}, nil)
	if err != nil {
		t.Fatalf("serverOptions: %v", err)
	}
	a, ok := o.Authenticator.(*jwtauth.Authenticator)
	if !ok {
		t.Fatalf("Authenticator is %T", o.Authenticator)
	}
	defer a.Close()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": "https://idp/", "aud": "tether", "sub": "id-1", "email": "dora@example.com", "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Authenticate(context.Background(), server.AuthRequest{Token: s})
	if err != nil || id.UserID != "dora@example.com" {
		t.Fatalf("Authenticate = %+v, %v", id, err)
	}

	// Nothing listens at the URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/jwks.json"
	ln.Close()
	var stderr bytes.Buffer
	if code := run([]string{"-jwks-url", dead}, &bytes.Buffer{}, &stderr, func(string) string { return "" }); code != 2 ||
		!strings.Contains(stderr.String(), "cannot fetch the JWK Set") {
		t.Errorf("unreachable IdP: exit %d, %q", code, stderr.String())
	}
	o, err = options(t, []string{"-jwks-url", dead, "-jwks-allow-unreachable"}, nil)
	if err != nil {
		t.Errorf("-jwks-allow-unreachable: %v", err)
	} else {
		o.Authenticator.(*jwtauth.Authenticator).Close()
	}
	if _, err := options(t, []string{"-jwks-url", idp.URL, "-jwt-public-key", "k.pem"}, nil); err == nil || !strings.Contains(err.Error(), "cannot be combined") {
		t.Errorf("-jwks-url with -jwt-public-key: %v", err)
	}
}
