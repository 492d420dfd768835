package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// authorize checks the request's API key. A source locked out for wrong keys is
// answered 429 before its key is looked at; a missing or wrong key 401 with
// WWW-Authenticate. Only wrong keys count towards the lock-out: a missing header is a
// misconfiguration, not a guess.
func (a *API) authorize(w http.ResponseWriter, r *http.Request) error {
	if a.opts.Insecure {
		return nil
	}
	ip, hasIP := remoteIP(r)
	now := time.Now()
	if hasIP {
		if until, locked := a.throttle.LockedOut(ip, now); locked {
			a.m.authFailed("locked_out").Inc()
			secs := int(until.Sub(now)/time.Second) + 1
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			return newError(http.StatusTooManyRequests, protocol.ErrorBusy, "too many wrong keys from this address; retry after "+strconv.Itoa(secs)+"s")
		}
	}
	key, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		a.m.authFailed("missing_key").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="tether"`)
		return newError(http.StatusUnauthorized, protocol.ErrorDenied, `missing API key: send "Authorization: Bearer <key>"`)
	}
	if !a.checkKey(key) {
		a.m.authFailed("bad_key").Inc()
		if hasIP {
			a.throttle.Failed(ip, now)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="tether", error="invalid_token"`)
		return newError(http.StatusUnauthorized, protocol.ErrorDenied, "wrong API key")
	}
	if hasIP {
		a.throttle.Succeeded(ip)
	}
	return nil
}

// checkKey reports whether key is the configured one, in time independent of where
// they differ and of their lengths (both sides are hashed first).
func (a *API) checkKey(key string) bool {
	sum := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(sum[:], a.keySum[:]) == 1
}

// bearer returns the token of an "Authorization: Bearer <token>" header value (the
// scheme is case-insensitive, RFC 6750).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// remoteIP is the request's source address.
func remoteIP(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}
