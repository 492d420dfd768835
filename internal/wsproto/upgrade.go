package wsproto

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// Defaults applied by UpgradeConfig's zero fields.
const (
	DefaultPath           = "/ws"
	DefaultSubprotocol    = "tether.v1"
	DefaultMaxHeaderBytes = 8 << 10
)

// UpgradeConfig says what upgrades are accepted. The zero value keeps every
// default. It is read, never written, by Upgrade, so one value may be shared
// by all connections.
type UpgradeConfig struct {
	// Path is the request path that upgrades; any other path gets 404. The
	// query string is not part of it. Default "/ws".
	Path string
	// Subprotocol is selected when the client offers it. A client that
	// offers subprotocols but not this one is refused 400; a client that
	// offers none is accepted without one. Default "tether.v1".
	Subprotocol string
	// AllowedOrigins is the Origin allow-list: exact origins such as
	// "https://app.example.com" (compared case-insensitively), or "*" for
	// any. Empty (the default): a request carrying an Origin header must be
	// same-origin (the Origin's host[:port] equals the Host header); a
	// request without Origin (not a browser) is accepted. Refusals get 403.
	AllowedOrigins []string
	// MaxHeaderBytes limits the whole request head, request line to the
	// blank line; a larger head, or MaxHeaderBytes buffered without the end
	// of the head, is refused 431. Default 8 KiB.
	MaxHeaderBytes int
	// Compression accepts permessage-deflate (RFC 7692) when the client
	// offers it, always with server_no_context_takeover and
	// client_no_context_takeover so no compressor state outlives a message
	// (offers that ask for server_max_window_bits are declined: Go's flate
	// always uses a 32 KB window). Default false: a compressed message is
	// held whole while it is inflated, and the pooled flate state (44 KB
	// per reader, 1.2 MB per writer in use) and CPU are spent per message.
	Compression bool
}

// withDefaults returns c with its zero fields replaced by the defaults.
func (c *UpgradeConfig) withDefaults() UpgradeConfig {
	var out UpgradeConfig
	if c != nil {
		out = *c
	}
	if out.Path == "" {
		out.Path = DefaultPath
	}
	if out.Subprotocol == "" {
		out.Subprotocol = DefaultSubprotocol
	}
	if out.MaxHeaderBytes <= 0 {
		out.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return out
}

// Info is what an accepted upgrade learned from the request. Its strings are
// copies, not aliases of the buffer given to Upgrade.
type Info struct {
	Path          string // request path (equals UpgradeConfig.Path)
	RawQuery      string // query string without '?', e.g. "token=…"; a browser cannot set headers
	Subprotocol   string // negotiated subprotocol, "" when the client offered none
	Deflate       bool   // permessage-deflate negotiated (no context takeover either way)
	Host          string // Host header
	Origin        string // Origin header, "" when absent
	XForwardedFor string // X-Forwarded-For header, "" when absent; trust it only behind your own proxy
	XRealIP       string // X-Real-IP header, "" when absent; same caveat
}

var crlfcrlf = []byte("\r\n\r\n")

// Upgrade looks at the bytes buffered so far at the start of a connection.
//
// It returns n == 0 and err == nil while the request head is not complete
// (call again with more bytes; the caller's handshake deadline handles a
// client that never finishes). Otherwise n is the length of the request head
// consumed (bytes after it are the client's first frames), resp is the
// HTTP response to write, and err is nil on success (resp is the 101) or a
// *UpgradeError on refusal (resp is a 400, 403, 404, 405, 426 or 431 with a
// short plain-text body and "Connection: close"; write it, then close).
//
// The head must end with CRLF CRLF within cfg.MaxHeaderBytes; once that many
// bytes are buffered without it, the request is refused 431 instead of being
// buffered further. The header checks are gobwas/ws' Upgrader (method GET,
// HTTP/1.1, Host, Upgrade: websocket, Connection: Upgrade,
// Sec-WebSocket-Version: 13, a Sec-WebSocket-Key) plus path, Origin,
// subprotocol, and the key being base64 of 16 bytes. Upgrade is safe for
// concurrent use; it allocates the response and Info's strings (about 1 KB
// in 19 allocations for a browser's request).
func Upgrade(buf []byte, cfg *UpgradeConfig) (n int, resp []byte, info Info, err error) {
	c := cfg.withDefaults()
	scan := buf
	if len(scan) > c.MaxHeaderBytes {
		scan = scan[:c.MaxHeaderBytes]
	}
	end := bytes.Index(scan, crlfcrlf)
	if end < 0 {
		if len(buf) < c.MaxHeaderBytes {
			return 0, nil, Info{}, nil
		}
		// The head may still end just past the limit; either way it is too big.
		n = len(scan)
		if i := bytes.Index(buf, crlfcrlf); i >= 0 {
			n = i + len(crlfcrlf)
		}
		return refuse(n, http.StatusRequestHeaderFieldsTooLarge, "request head too large")
	}
	n = end + len(crlfcrlf)

	var (
		offered bool // the client sent Sec-WebSocket-Protocol
		origin  []byte
		hasOrig bool
		ext     *wsflate.Extension
	)
	u := ws.Upgrader{
		ReadBufferSize:  n,
		WriteBufferSize: 512,
		// Protocol is asked about each offered token until one matches; the
		// choice is recorded here because OnBeforeUpgrade runs before
		// Upgrade returns its Handshake.
		Protocol: func(p []byte) bool {
			offered = true
			if string(p) != c.Subprotocol {
				return false
			}
			info.Subprotocol = c.Subprotocol
			return true
		},
		OnRequest: func(uri []byte) error {
			path, query, ok := splitURI(string(uri))
			if !ok {
				return &UpgradeError{http.StatusBadRequest, "bad request target"}
			}
			if path != c.Path {
				return &UpgradeError{http.StatusNotFound, "not found"}
			}
			info.Path, info.RawQuery = path, query
			return nil
		},
		OnHost: func(host []byte) error {
			info.Host = string(host)
			return nil
		},
		OnHeader: func(key, value []byte) error {
			switch string(key) { // keys arrive canonicalised
			case "Origin":
				origin, hasOrig = value, true
				info.Origin = string(value)
			case "X-Forwarded-For":
				info.XForwardedFor = string(value)
			case "X-Real-Ip":
				info.XRealIP = string(value)
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if hasOrig && !originAllowed(c.AllowedOrigins, origin, info.Host) {
				return nil, &UpgradeError{http.StatusForbidden, "origin not allowed"}
			}
			if offered && info.Subprotocol == "" {
				return nil, &UpgradeError{http.StatusBadRequest, "subprotocol " + c.Subprotocol + " required"}
			}
			return nil, nil
		},
	}
	if c.Compression {
		ext = &wsflate.Extension{Parameters: wsflate.Parameters{
			ServerNoContextTakeover: true,
			ClientNoContextTakeover: true,
		}}
		u.Negotiate = ext.Negotiate
	}

	var out bytes.Buffer
	_, err = u.Upgrade(&readWriter{r: bytes.NewReader(buf[:n]), w: &out})
	if err == nil && !keyDecodes(buf[:n]) {
		err = ws.ErrHandshakeBadSecKey
	}
	if err != nil {
		return refuseErr(n, err)
	}
	if ext != nil {
		_, info.Deflate = ext.Accepted()
	}
	return n, out.Bytes(), info, nil
}

// readWriter joins the request bytes and the response buffer for ws.Upgrader.
type readWriter struct {
	r *bytes.Reader
	w *bytes.Buffer
}

func (rw *readWriter) Read(p []byte) (int, error)  { return rw.r.Read(p) }
func (rw *readWriter) Write(p []byte) (int, error) { return rw.w.Write(p) }

// splitURI splits a request target into path and raw query. It accepts the
// origin form ("/ws?x") and the absolute form ("http://host/ws?x").
func splitURI(uri string) (path, query string, ok bool) {
	if !strings.HasPrefix(uri, "/") {
		u, err := url.ParseRequestURI(uri)
		if err != nil || u.Host == "" {
			return "", "", false
		}
		return cmp.Or(u.EscapedPath(), "/"), u.RawQuery, true
	}
	path, query, _ = strings.Cut(uri, "?")
	return path, query, true
}

// originAllowed applies UpgradeConfig.AllowedOrigins to an Origin header.
func originAllowed(allowed []string, origin []byte, host string) bool {
	if len(allowed) == 0 {
		u, err := url.Parse(string(origin))
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(a, string(origin)) {
			return true
		}
	}
	return false
}

// refuseErr maps an Upgrader error onto the refusal response.
func refuseErr(n int, err error) (int, []byte, Info, error) {
	var ue *UpgradeError
	switch {
	case errors.As(err, &ue):
		return refuse(n, ue.Status, ue.Reason)
	case err == ws.ErrHandshakeBadMethod:
		return refuse(n, http.StatusMethodNotAllowed, "method must be GET")
	case err == ws.ErrHandshakeBadUpgrade:
		return refuse(n, http.StatusUpgradeRequired, "Upgrade: websocket required")
	case err == ws.ErrHandshakeUpgradeRequired:
		return refuse(n, http.StatusUpgradeRequired, "Sec-WebSocket-Version 13 required")
	case err == ws.ErrHandshakeBadProtocol:
		return refuse(n, http.StatusBadRequest, "HTTP/1.1 required")
	case err == ws.ErrHandshakeBadHost:
		return refuse(n, http.StatusBadRequest, "Host header required")
	case err == ws.ErrHandshakeBadConnection:
		return refuse(n, http.StatusBadRequest, "Connection: Upgrade required")
	case err == ws.ErrHandshakeBadSecVersion:
		return refuse(n, http.StatusBadRequest, "Sec-WebSocket-Version header required")
	case err == ws.ErrHandshakeBadSecKey:
		return refuse(n, http.StatusBadRequest, "bad Sec-WebSocket-Key header")
	}
	return refuse(n, http.StatusBadRequest, "malformed request")
}

// refuse builds a refusal response with a plain-text body and
// "Connection: close". 405 carries Allow, 426 carries Upgrade and
// Sec-WebSocket-Version as RFC 9110 and RFC 6455 4.2.2 ask.
func refuse(n, status int, reason string) (int, []byte, Info, error) {
	body := reason + "\n"
	b := make([]byte, 0, 160+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nConnection: close\r\n"...)
	switch status {
	case http.StatusMethodNotAllowed:
		b = append(b, "Allow: GET\r\n"...)
	case http.StatusUpgradeRequired:
		b = append(b, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, body...)
	return n, b, Info{}, &UpgradeError{Status: status, Reason: reason}
}

// keyDecodes reports whether the head's Sec-WebSocket-Key is base64 of 16
// bytes, as RFC 6455 4.2.1 requires (ws.Upgrader checks only its length).
func keyDecodes(head []byte) bool {
	var key [18]byte
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(k), []byte("Sec-WebSocket-Key")) {
			continue
		}
		v = bytes.TrimSpace(v)
		if len(v) != 24 {
			return false
		}
		n, err := base64.StdEncoding.Decode(key[:], v)
		return err == nil && n == 16
	}
	return false
}
