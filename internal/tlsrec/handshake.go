package tlsrec

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"sync"
	"weak"
)

// Handshake runs a server handshake with crypto/tls over f and returns the record layer
// for the established connection and the bytes already fed that follow the handshake
// (client application data pipelined behind its Finished), to be passed to Session.Open
// before anything fed later (Feed returns ErrHandshakeDone from now on).
//
// cfg is the caller's shared config (not nil) and is not modified. Handshake derives one config
// per distinct cfg (cached until cfg is garbage, so session ticket keys persist across
// handshakes: create cfg once and reload certificates through GetCertificate or
// GetConfigForClient). Its GetConfigForClient (wrapping any the caller set) gives each
// handshake a clone with its own KeyLogWriter (teeing to the caller's, if any) and
// UnwrapSession (wrapping the caller's), through which the traffic secrets are learned.
// It forces MinVersion TLS 1.2 when lower, and when the config's CipherSuites is nil
// restricts TLS 1.2 to ECDHE AEAD suites (AES-GCM, ChaCha20-Poly1305); a negotiated suite
// this record layer cannot run fails with ErrUnsupportedSuite.
//
// Handshake blocks until the handshake ends or f is closed; it is meant to run on a
// short-lived goroutine while the reactor feeds f. The crypto/tls.Conn is dropped
// afterwards (never closed: that would send close_notify).
func Handshake(f *Feeder, cfg *tls.Config) (*Session, []byte, error) {
	conn := tls.Server(f, derivedConfig(cfg))
	err := conn.Handshake()
	rest := f.finish()
	if err != nil {
		f.cap = capture{}
		return nil, nil, fmt.Errorf("tlsrec: handshake: %w", err)
	}
	s, err := f.cap.session(conn.ConnectionState())
	f.cap = capture{}
	if err != nil {
		return nil, nil, err
	}
	return s, rest, nil
}

// derived maps weak.Pointer[tls.Config] (the caller's) to the *tls.Config Handshake uses.
var derived sync.Map

// derivedConfig returns the config Handshake gives crypto/tls for the caller's cfg.
func derivedConfig(cfg *tls.Config) *tls.Config {
	key := weak.Make(cfg)
	if v, ok := derived.Load(key); ok {
		return v.(*tls.Config)
	}
	base := cfg.Clone()
	restrict(base)
	user := cfg.GetConfigForClient
	base.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		var c *tls.Config
		if user != nil {
			var err error
			if c, err = user(chi); err != nil {
				return nil, err
			}
		}
		f, ok := chi.Conn.(*Feeder)
		if !ok {
			return c, nil
		}
		if c == nil {
			c = base
		}
		c = c.Clone()
		c.GetConfigForClient = nil
		restrict(c)
		f.cap.install(c, base)
		return c, nil
	}
	v, loaded := derived.LoadOrStore(key, base)
	if !loaded {
		runtime.AddCleanup(cfg, func(k weak.Pointer[tls.Config]) { derived.Delete(k) }, key)
	}
	return v.(*tls.Config)
}

// restrict applies Handshake's version and suite floor to c.
func restrict(c *tls.Config) {
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	if c.CipherSuites == nil {
		c.CipherSuites = defaultSuites12
	}
}

// capture is what one handshake reveals to this package: the secrets crypto/tls logs,
// the session a TLS 1.2 resumption restores, the ClientHello's and ServerHello's randoms
// and the server's TLS 1.3 records (to count those under the application key). It lives
// only during the handshake, on the handshake goroutine.
type capture struct {
	hello      []byte // first bytes of the client's first record (ClientHello)
	out        []byte // everything the server wrote
	master     []byte // TLS 1.2 master secret (logged or restored)
	clientApp  []byte // TLS 1.3 CLIENT_TRAFFIC_SECRET_0
	serverApp  []byte // TLS 1.3 SERVER_TRAFFIC_SECRET_0
	userKeyLog io.Writer
}

// helloPrefix is how many bytes of the first record hold the random: record header (5),
// handshake header (4), legacy_version (2), random (32).
const helloPrefix = 43

func (c *capture) sawInput(p []byte) {
	if len(c.hello) < helloPrefix {
		c.hello = append(c.hello, p[:min(len(p), helloPrefix-len(c.hello))]...)
	}
}

func (c *capture) sawOutput(p []byte) { c.out = append(c.out, p...) }

// install hooks this handshake's config c (a clone) so the capture learns its secrets;
// base is the derived config whose ticket keys crypto/tls uses by default.
func (c *capture) install(cfg, base *tls.Config) {
	c.userKeyLog = cfg.KeyLogWriter
	cfg.KeyLogWriter = keyLogWriter{c}
	userUnwrap := cfg.UnwrapSession
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		var ss *tls.SessionState
		var err error
		if userUnwrap != nil {
			ss, err = userUnwrap(identity, cs)
		} else if ss, err = base.DecryptTicket(identity, cs); ss == nil && err == nil {
			// The caller's GetConfigForClient may have returned a config with its own keys.
			ss, err = cfg.DecryptTicket(identity, cs)
		}
		if ss != nil && err == nil && cs.Version == tls.VersionTLS12 {
			c.master = sessionSecret(ss)
		}
		return ss, err
	}
}

// sessionSecret returns the secret in ss (a TLS 1.2 session's master secret), read from
// its serialization: version(2) type(1) suite(2) created_at(8) secret<1..255>. The
// format is crypto/tls's; TestResumption fails if it changes.
func sessionSecret(ss *tls.SessionState) []byte {
	b, err := ss.Bytes()
	if err != nil || len(b) < 14 || len(b) < 14+int(b[13]) {
		return nil
	}
	secret := bytes.Clone(b[14 : 14+int(b[13])])
	clear(b)
	return secret
}

// keyLogWriter receives crypto/tls's NSS key log lines.
type keyLogWriter struct{ c *capture }

func (w keyLogWriter) Write(line []byte) (int, error) {
	if w.c.userKeyLog != nil {
		if _, err := w.c.userKeyLog.Write(line); err != nil {
			return 0, err
		}
	}
	fields := bytes.Fields(line)
	if len(fields) != 3 {
		return len(line), nil
	}
	secret, err := hex.DecodeString(string(fields[2]))
	if err != nil {
		return 0, fmt.Errorf("tlsrec: bad key log line: %w", err)
	}
	switch string(fields[0]) {
	case "CLIENT_RANDOM":
		w.c.master = secret
	case "CLIENT_TRAFFIC_SECRET_0":
		w.c.clientApp = secret
	case "SERVER_TRAFFIC_SECRET_0":
		w.c.serverApp = secret
	}
	return len(line), nil
}

// session builds the Session for the established connection st.
func (c *capture) session(st tls.ConnectionState) (*Session, error) {
	su, ok := suites[st.CipherSuite]
	info := Info{
		Version:            st.Version,
		CipherSuite:        st.CipherSuite,
		ServerName:         st.ServerName,
		NegotiatedProtocol: st.NegotiatedProtocol,
		PeerCertificates:   st.PeerCertificates,
	}
	is13 := st.CipherSuite>>8 == 0x13
	switch {
	case !ok || (st.Version == tls.VersionTLS13) != is13:
		return nil, fmt.Errorf("%w: %s %s", ErrUnsupportedSuite, tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	case is13:
		if c.clientApp == nil || c.serverApp == nil {
			return nil, fmt.Errorf("tlsrec: BUG: crypto/tls logged no traffic secrets")
		}
		s, err := newSession13(st.CipherSuite, c.clientApp, c.serverApp)
		if err != nil {
			return nil, err
		}
		s.wr.seq = countSealed(&s.wr, c.out)
		s.setInfo(info)
		return s, nil
	}
	if c.master == nil || len(c.hello) < helloPrefix || len(c.out) < helloPrefix ||
		c.out[0] != typeHandshake || c.out[5] != 2 {
		return nil, fmt.Errorf("tlsrec: BUG: no master secret or hello randoms")
	}
	ck, sk, civ, siv := keyBlock12(su, c.master, c.hello[11:43], c.out[11:43])
	s, err := newSession12(st.CipherSuite, ck, civ, sk, siv)
	if err != nil {
		return nil, err
	}
	s.setInfo(info)
	return s, nil
}

// countSealed returns how many of the TLS 1.3 records in out (what the server wrote
// during the handshake) open under d's key at seq 0, 1, …: the NewSessionTicket records
// crypto/tls sent under the application key. Handshake-key records fail to open.
func countSealed(d *direction, out []byte) uint64 {
	seq := d.seq
	for len(out) >= recordHeaderLen {
		n := recordHeaderLen + int(binary.BigEndian.Uint16(out[3:]))
		if n > len(out) {
			break
		}
		rec := out[:n]
		out = out[n:]
		if rec[0] != typeApplicationData {
			continue
		}
		d.seq = seq
		if _, err := d.aead.Open(nil, d.nonce13(), rec[recordHeaderLen:], rec[:recordHeaderLen]); err == nil {
			seq++
		}
	}
	d.seq = seq
	return seq
}

// newSession13 returns a TLS 1.3 session reading under rdSecret and writing under
// wrSecret, both at seq 0. (With the secrets swapped it is the client's side: tests.)
func newSession13(id uint16, rdSecret, wrSecret []byte) (*Session, error) {
	su := suites[id]
	s := &Session{version: 13, kind: su.kind, suite: id}
	if err := s.rd.set13(su, rdSecret); err != nil {
		return nil, err
	}
	if err := s.wr.set13(su, wrSecret); err != nil {
		return nil, err
	}
	return s, nil
}

// newSession12 returns a TLS 1.2 session with the given keys and IVs, at seq 1 both ways
// (the Finished messages were seq 0).
func newSession12(id uint16, rdKey, rdIV, wrKey, wrIV []byte) (*Session, error) {
	su := suites[id]
	s := &Session{version: 12, kind: su.kind, suite: id}
	if err := s.rd.setKey(su, rdKey); err != nil {
		return nil, err
	}
	if err := s.wr.setKey(su, wrKey); err != nil {
		return nil, err
	}
	copy(s.rd.iv[:], rdIV)
	copy(s.wr.iv[:], wrIV)
	s.rd.seq, s.wr.seq = 1, 1
	return s, nil
}

// keyBlock12 expands the TLS 1.2 master secret into the client and server write keys and
// IVs (RFC 5246 §6.3; AEAD suites have no MAC keys).
func keyBlock12(su suite, master, clientRandom, serverRandom []byte) (ck, sk, civ, siv []byte) {
	kl, il := su.keyLen, su.ivLen12()
	kb := make([]byte, 2*kl+2*il)
	su.prf12(kb, master, "key expansion", serverRandom, clientRandom)
	return kb[:kl], kb[kl : 2*kl], kb[2*kl : 2*kl+il], kb[2*kl+il:]
}
