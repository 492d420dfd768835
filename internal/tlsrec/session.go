package tlsrec

import (
	"crypto/cipher"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"net"
	"slices"
	"sync/atomic"
)

// Record layer constants (RFC 8446 §5, RFC 5246 §6.2).
const (
	recordHeaderLen = 5
	maxPlaintext    = 1 << 14
	maxCiphertext13 = maxPlaintext + 256
	maxCiphertext12 = maxPlaintext + 2048

	typeChangeCipherSpec = 20
	typeAlert            = 21
	typeHandshake        = 22
	typeApplicationData  = 23

	msgKeyUpdate = 24

	tagLen      = 16
	explicitLen = 8 // TLS 1.2 AES-GCM explicit nonce

	// rekeyAfter is the number of records a TLS 1.3 write key seals before Seal replaces
	// it with a KeyUpdate: RFC 8446 §5.5 bounds AES-GCM at 2^24.5 records per key.
	rekeyAfter = 1 << 24
)

// Session flags (one word, see Session.flags).
const (
	flagKeyUpdateRequested uint32 = 1 << iota // Open saw update_requested; Seal answers
	flagReadClosed                            // Open failed or saw close_notify; it returns net.ErrClosed
)

// Info is what the handshake established that the application may look at, e.g. an
// Authenticator taking the device identity from a client certificate.
type Info struct {
	// Version is tls.VersionTLS12 or tls.VersionTLS13.
	Version uint16
	// CipherSuite is the negotiated suite (a tls.TLS_* constant).
	CipherSuite uint16
	// ServerName is the SNI the client sent, or "".
	ServerName string
	// NegotiatedProtocol is the ALPN protocol agreed on, or "".
	NegotiatedProtocol string
	// PeerCertificates is the client's certificate chain, leaf first, as crypto/tls
	// verified it under the config's ClientAuth; nil when the client sent none.
	PeerCertificates []*x509.Certificate
}

// direction is the protection state of one direction of the stream.
type direction struct {
	// aead is the direction's cipher, built from key when first needed and dropped by
	// Session.Idle while the direction is unused (an AES-GCM state is 768 bytes).
	aead cipher.AEAD
	key  [32]byte
	// keyLen is len(key) in use; used says the direction ran since the last Idle.
	keyLen uint8
	used   bool
	seq    uint64
	iv     [12]byte // TLS 1.3 and ChaCha20: the whole IV; TLS 1.2 GCM: the first 4 bytes
	nonce  [12]byte // scratch for the record's nonce (a local would escape into the AEAD)
	// secret is the TLS 1.3 traffic secret (hashLen bytes) KeyUpdate derives the next
	// key from. TLS 1.2 has no key updates and uses the first 13 bytes as scratch for
	// the additional data.
	secret [48]byte
}

// Session is the record layer of one established TLS connection: it decrypts what the
// peer sends (Open) and encrypts what the application sends (Seal, Alert) without a
// goroutine or a buffer of its own while idle. See the package doc for which goroutine
// may call what. Its size is measured by TestSessionRetainedBytes.
type Session struct {
	rd, wr direction
	// version is 12 or 13 (the TLS minor version) and suite the negotiated suite's id.
	version uint8
	kind    aeadKind // suites[suite].kind, kept to spare a map lookup per record
	suite   uint16
	flags   atomic.Uint32
	// serverName and alpn are Info's; peerCerts is nil without client certificates.
	serverName, alpn string
	peerCerts        *[]*x509.Certificate
	// partial holds a record cut short at the end of Open's input; nil otherwise. It and
	// peerCerts are pointers so that an idle Session fits the 256-byte size class
	// (TestSessionRetainedBytes).
	partial *[]byte
}

// Info returns what the handshake established. Safe to call from any goroutine.
func (s *Session) Info() Info {
	info := Info{
		Version:            tls.VersionTLS12,
		CipherSuite:        s.suite,
		ServerName:         s.serverName,
		NegotiatedProtocol: s.alpn,
	}
	if s.version == 13 {
		info.Version = tls.VersionTLS13
	}
	if s.peerCerts != nil {
		info.PeerCertificates = *s.peerCerts
	}
	return info
}

// setInfo records what Info returns.
func (s *Session) setInfo(info Info) {
	s.serverName, s.alpn = info.ServerName, info.NegotiatedProtocol
	if info.PeerCertificates != nil {
		s.peerCerts = &info.PeerCertificates
	}
}

// suiteInfo returns the negotiated suite's parameters (rare paths: KeyUpdate).
func (s *Session) suiteInfo() suite { return suites[s.suite] }

// maxCiphertext is the longest record body this version allows.
func (s *Session) maxCiphertext() int {
	if s.version == 13 {
		return maxCiphertext13
	}
	return maxCiphertext12
}

// Open decrypts the records in p (bytes from the socket, valid only during the call; p
// may be decrypted in place) and calls deliver with each record's application-data
// plaintext (valid only during that call; empty records are not delivered). A record cut
// short at the end of p is copied and completed by the next call (the copy exists only
// while a record is partial). It returns ErrCloseNotify when the peer sent close_notify,
// *AlertError for any other alert from the peer, ErrBadRecord or ErrUnexpectedMessage
// (see their docs), or deliver's error. The bytes of p after the record that caused an
// error are not processed, so the caller should close the connection; after any error
// but deliver's, later calls return net.ErrClosed. A TLS 1.3 KeyUpdate switches the read key; one with
// update_requested makes the next Seal answer it. Open is called by one goroutine at a
// time, possibly concurrently with Seal.
func (s *Session) Open(p []byte, deliver func(plain []byte) error) error {
	if s.flags.Load()&flagReadClosed != 0 {
		return net.ErrClosed
	}
	if s.partial != nil {
		var err error
		if p, err = s.completePartial(p, deliver); err != nil || s.partial != nil {
			return s.readErr(err)
		}
	}
	for len(p) > 0 {
		if len(p) < recordHeaderLen {
			s.keepPartial(p, recordHeaderLen)
			return nil
		}
		n, err := s.checkHeader(p)
		if err != nil {
			return s.readErr(err)
		}
		if len(p) < n {
			s.keepPartial(p, n)
			return nil
		}
		if err := s.openRecord(p[:n], deliver); err != nil {
			return s.readErr(err)
		}
		p = p[n:]
	}
	return nil
}

// keepPartial copies p, the start of a record of n bytes (or of its header), into
// s.partial.
func (s *Session) keepPartial(p []byte, n int) {
	buf := append(make([]byte, 0, n), p...)
	s.partial = &buf
}

// completePartial moves bytes from p into s.partial until its record is complete, opens
// it, and returns the rest of p; s.partial stays non-nil if p ran out first.
func (s *Session) completePartial(p []byte, deliver func([]byte) error) ([]byte, error) {
	buf := *s.partial
	if len(buf) < recordHeaderLen {
		k := min(recordHeaderLen-len(buf), len(p))
		buf = append(buf, p[:k]...)
		p = p[k:]
		if len(buf) < recordHeaderLen {
			*s.partial = buf
			return p, nil
		}
		n, err := s.checkHeader(buf)
		if err != nil {
			return p, err
		}
		buf = append(make([]byte, 0, n), buf...)
	}
	n := recordHeaderLen + int(binary.BigEndian.Uint16(buf[3:]))
	k := min(n-len(buf), len(p))
	buf = append(buf, p[:k]...)
	p = p[k:]
	if len(buf) < n {
		*s.partial = buf
		return p, nil
	}
	s.partial = nil
	return p, s.openRecord(buf, deliver)
}

// readErr marks the read side closed for a record-level error and returns err.
func (s *Session) readErr(err error) error {
	if err != nil && !isDeliverErr(err) {
		s.flags.Or(flagReadClosed)
		s.partial = nil
	}
	return unwrapDeliver(err)
}

// deliverErr marks an error that came from the caller's deliver function, so Open can
// tell it from a record-level failure.
type deliverErr struct{ err error }

func (e deliverErr) Error() string { return e.err.Error() }

func isDeliverErr(err error) bool { _, ok := err.(deliverErr); return ok }

func unwrapDeliver(err error) error {
	if d, ok := err.(deliverErr); ok {
		return d.err
	}
	return err
}

// checkHeader validates the record header at the start of p and returns the record's
// full length (header included).
func (s *Session) checkHeader(p []byte) (int, error) {
	if p[1] != 3 || p[2] != 3 {
		return 0, ErrBadRecord
	}
	n := int(binary.BigEndian.Uint16(p[3:]))
	if n > s.maxCiphertext() {
		return 0, ErrBadRecord
	}
	return recordHeaderLen + n, nil
}

// openRecord decrypts one whole record and acts on its content.
func (s *Session) openRecord(rec []byte, deliver func([]byte) error) error {
	typ, content, err := s.decrypt(rec)
	if err != nil {
		return err
	}
	switch typ {
	case typeApplicationData:
		if len(content) == 0 {
			return nil
		}
		if err := deliver(content); err != nil {
			return deliverErr{err}
		}
		return nil
	case typeAlert:
		if len(content) != 2 {
			return ErrBadRecord
		}
		if content[1] == AlertCloseNotify {
			return ErrCloseNotify
		}
		return &AlertError{Code: content[1]}
	case typeHandshake:
		if s.version == 13 {
			return s.keyUpdate(content)
		}
	}
	return ErrUnexpectedMessage
}

// decrypt authenticates and decrypts rec in place, returning the content type and the
// content.
func (s *Session) decrypt(rec []byte) (uint8, []byte, error) {
	d := &s.rd
	typ, body := rec[0], rec[recordHeaderLen:]
	if s.version == 13 {
		if typ != typeApplicationData || len(body) < tagLen+1 {
			if typ == typeChangeCipherSpec || typ == typeHandshake || typ == typeAlert {
				return 0, nil, ErrUnexpectedMessage
			}
			return 0, nil, ErrBadRecord
		}
		plain, err := s.cipher(d).Open(body[:0], d.nonce13(), body, rec[:recordHeaderLen])
		if err != nil {
			return 0, nil, ErrBadRecord
		}
		d.seq++
		i := len(plain) - 1
		for i >= 0 && plain[i] == 0 {
			i--
		}
		if i < 0 || i > maxPlaintext {
			return 0, nil, ErrBadRecord
		}
		return plain[i], plain[:i], nil
	}
	if typ != typeApplicationData && typ != typeAlert {
		return 0, nil, ErrUnexpectedMessage
	}
	var nonce []byte
	if s.kind == chacha {
		nonce = d.nonce13()
	} else {
		if len(body) < explicitLen {
			return 0, nil, ErrBadRecord
		}
		copy(d.nonce[:4], d.iv[:4])
		copy(d.nonce[4:], body[:explicitLen])
		nonce = d.nonce[:]
		body = body[explicitLen:]
	}
	if len(body) < tagLen || len(body)-tagLen > maxPlaintext {
		return 0, nil, ErrBadRecord
	}
	plain, err := s.cipher(d).Open(body[:0], nonce, body, d.ad12(typ, len(body)-tagLen))
	if err != nil {
		return 0, nil, ErrBadRecord
	}
	d.seq++
	return typ, plain, nil
}

// keyUpdate handles a TLS 1.3 post-handshake message: only KeyUpdate is accepted, and it
// must be the whole record (RFC 8446 §5.1: a message preceding a key change ends its record).
func (s *Session) keyUpdate(msg []byte) error {
	if len(msg) < 4 || msg[0] != msgKeyUpdate {
		return ErrUnexpectedMessage
	}
	if len(msg) != 5 || msg[1] != 0 || msg[2] != 0 || msg[3] != 1 || msg[4] > 1 {
		return ErrBadRecord
	}
	if err := s.rd.next13(s.suiteInfo()); err != nil {
		return err
	}
	if msg[4] == 1 {
		s.flags.Or(flagKeyUpdateRequested)
	}
	return nil
}

// nonce13 returns the per-record nonce iv XOR seq (TLS 1.3, and TLS 1.2 ChaCha20).
func (d *direction) nonce13() []byte {
	d.nonce = d.iv
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], d.seq)
	for i, b := range seq {
		d.nonce[4+i] ^= b
	}
	return d.nonce[:]
}

// ad12 returns the TLS 1.2 additional data seq||type||version||length.
func (d *direction) ad12(typ uint8, n int) []byte {
	ad := d.secret[:13]
	binary.BigEndian.PutUint64(ad, d.seq)
	ad[8], ad[9], ad[10] = typ, 3, 3
	binary.BigEndian.PutUint16(ad[11:], uint16(n))
	return ad
}

// set13 installs a TLS 1.3 traffic secret: key and IV derived from it, seq 0.
func (d *direction) set13(su suite, secret []byte) error {
	if err := d.setKey(su, su.expandLabel(secret, "key", su.keyLen)); err != nil {
		return err
	}
	copy(d.iv[:], su.expandLabel(secret, "iv", 12))
	d.secret = [48]byte{}
	copy(d.secret[:], secret)
	d.seq = 0
	return nil
}

// setKey installs key and builds its cipher (which checks it).
func (d *direction) setKey(su suite, key []byte) error {
	aead, err := su.newAEAD(key)
	if err != nil {
		return err
	}
	d.aead, d.used = aead, true
	d.keyLen = uint8(copy(d.key[:], key))
	return nil
}

// cipher returns d's AEAD, building it again from the key if Idle dropped it, and marks
// d used.
func (s *Session) cipher(d *direction) cipher.AEAD {
	d.used = true
	if d.aead == nil {
		aead, err := s.suiteInfo().newAEAD(d.key[:d.keyLen])
		if err != nil {
			// setKey built one from the same key: this cannot fail.
			panic("tlsrec: a key that made a cipher no longer does: " + err.Error())
		}
		d.aead = aead
	}
	return d.aead
}

// Idle drops the cipher of each direction that has not been used since the previous
// Idle call (or since its key was set) (they are built again from their keys when next needed), and reports how
// many it dropped: an idle connection then holds its keys, not 1.5 KB of cipher state.
// The caller must hold off Open and Seal during the call (it takes both their locks).
func (s *Session) Idle() int {
	n := 0
	for _, d := range []*direction{&s.rd, &s.wr} {
		if !d.used && d.aead != nil {
			d.aead = nil
			n++
		}
		d.used = false
	}
	return n
}

// next13 replaces the traffic secret with the next generation (RFC 8446 §7.2).
func (d *direction) next13(su suite) error {
	return d.set13(su, su.expandLabel(d.secret[:su.hashLen()], "traffic upd", su.hashLen()))
}

// recordOverhead is the bytes a record adds to its plaintext.
func (s *Session) recordOverhead() int {
	switch {
	case s.version == 13:
		return recordHeaderLen + 1 + tagLen
	case s.kind == chacha:
		return recordHeaderLen + tagLen
	}
	return recordHeaderLen + explicitLen + tagLen
}

// SealedLen returns exactly how many bytes Seal appends for n bytes of plaintext when no
// KeyUpdate is pending (add SealedLen(5) for one): n split into 16 KiB records, each with
// its header, tag and nonce or content-type byte. SealedLen(0) is 0.
func (s *Session) SealedLen(n int) int {
	records := (n + maxPlaintext - 1) / maxPlaintext
	return n + records*s.recordOverhead()
}

// Seal appends to dst the application-data records carrying the concatenation of plain
// (split at 16 KiB of plaintext per record; nothing for no bytes) and returns it. Before
// the first record it sends a TLS 1.3 KeyUpdate and switches write keys if the peer
// asked for one (update_requested, seen by Open) or the write key has sealed 2^24
// records. Seal allocates only when dst lacks room, and for a KeyUpdate (the new
// AEAD). It is called under the caller's write lock (one at a time), possibly
// concurrently with Open.
func (s *Session) Seal(dst []byte, plain ...[]byte) []byte {
	if s.version == 13 && (s.flags.Load()&flagKeyUpdateRequested != 0 || s.wr.seq >= rekeyAfter) {
		dst = s.sendKeyUpdate(dst)
	}
	n := 0
	for _, b := range plain {
		n += len(b)
	}
	dst = slices.Grow(dst, s.SealedLen(n))
	bi, off := 0, 0 // cursor into plain
	for n > 0 {
		k := min(n, maxPlaintext)
		var payload []byte
		dst, payload = s.reserve(dst, typeApplicationData, k)
		for w := payload[:k]; len(w) > 0; {
			for off == len(plain[bi]) {
				bi, off = bi+1, 0
			}
			c := copy(w, plain[bi][off:])
			w, off = w[c:], off+c
		}
		s.sealReserved(dst, payload, typeApplicationData, k)
		n -= k
	}
	return dst
}

// sendKeyUpdate seals a KeyUpdate (update_not_requested) under the current write key and
// switches to the next one.
func (s *Session) sendKeyUpdate(dst []byte) []byte {
	s.flags.And(^flagKeyUpdateRequested)
	dst = s.sealSmall(dst, typeHandshake, msgKeyUpdate, 0, 0, 1, 0)
	if err := s.wr.next13(s.suiteInfo()); err != nil {
		panic("tlsrec: BUG: cannot rekey with a key that worked: " + err.Error())
	}
	return dst
}

// Alert appends an encrypted alert record carrying code (AlertCloseNotify and
// AlertUserCanceled at warning level, anything else fatal) and returns dst. Same calling
// rules as Seal.
func (s *Session) Alert(dst []byte, code uint8) []byte {
	level := uint8(2)
	if code == AlertCloseNotify || code == AlertUserCanceled {
		level = 1
	}
	return s.sealSmall(dst, typeAlert, level, code)
}

// sealSmall appends one record of type typ holding content.
func (s *Session) sealSmall(dst []byte, typ uint8, content ...byte) []byte {
	dst, payload := s.reserve(dst, typ, len(content))
	copy(payload, content)
	s.sealReserved(dst, payload, typ, len(content))
	return dst
}

// reserve appends one record of n plaintext bytes to dst with its header written and
// returns dst and the slice the plaintext goes into (its room for the content type and
// tag follows it).
func (s *Session) reserve(dst []byte, typ uint8, n int) ([]byte, []byte) {
	start := len(dst)
	total := s.recordLen(n)
	dst = slices.Grow(dst, total)[:start+total]
	hdr := dst[start : start+recordHeaderLen]
	hdr[0], hdr[1], hdr[2] = typ, 3, 3
	if s.version == 13 {
		hdr[0] = typeApplicationData
	}
	binary.BigEndian.PutUint16(hdr[3:], uint16(total-recordHeaderLen))
	at := start + recordHeaderLen
	if s.version == 12 && s.kind == aesGCM {
		binary.BigEndian.PutUint64(dst[at:], s.wr.seq)
		at += explicitLen
	}
	return dst, dst[at : at+n]
}

// sealReserved encrypts in place the record reserve laid out at the end of dst.
func (s *Session) sealReserved(dst, payload []byte, typ uint8, n int) {
	w := &s.wr
	hdr := dst[len(dst)-s.recordLen(n):][:recordHeaderLen]
	if s.version == 13 {
		payload = payload[:n+1]
		payload[n] = typ
		s.cipher(w).Seal(payload[:0], w.nonce13(), payload, hdr)
	} else if s.kind == chacha {
		s.cipher(w).Seal(payload[:0], w.nonce13(), payload, w.ad12(typ, n))
	} else {
		copy(w.nonce[:4], w.iv[:4])
		binary.BigEndian.PutUint64(w.nonce[4:], w.seq)
		s.cipher(w).Seal(payload[:0], w.nonce[:], payload, w.ad12(typ, n))
	}
	w.seq++
}

// recordLen is the length of one record holding n ≤ 16 KiB plaintext bytes.
func (s *Session) recordLen(n int) int { return n + s.recordOverhead() }
