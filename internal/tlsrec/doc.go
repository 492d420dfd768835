// Package tlsrec is in-process TLS for a reactor (netpoll) gateway where an idle TLS
// connection must stay cheap.
//
// crypto/tls does the handshake, and only the handshake: Handshake runs it on a
// short-lived goroutine over a Feeder, a net.Conn the reactor feeds with the bytes it
// reads. The traffic secrets are learned through the config's KeyLogWriter (and, for a
// resumed TLS 1.2 session, UnwrapSession); then the tls.Conn is dropped and a Session, this
// package's own record layer, encrypts and decrypts application data on the caller's
// goroutines with the standard library's AEADs. A Session holds no buffer and no
// goroutine while idle: with AES-128-GCM it retains 1792 bytes (two 768-byte GCM states
// and the 256-byte Session; see TestSessionRetainedBytes), against ~7.2 KB of buffers for a
// tls.Conn kept per connection plus ~25 KB for a goroutine blocked in its Read.
//
// What it trades away: only AEAD suites (TLS 1.2 AES-GCM and ChaCha20-Poly1305, all
// three TLS 1.3 suites); no TLS 1.2 renegotiation (refused as ErrUnexpectedMessage), no
// server-initiated post-handshake messages (no NewSessionTicket after the handshake, no
// post-handshake client authentication), no 0-RTT data, and no alert is sent for the
// caller (see AlertFor). It depends on crypto/tls logging NSS key log lines and on the
// layout of tls.SessionState.Bytes (tested by TestResumption).
//
// # Goroutines
//
//	goroutine           calls
//	reactor (input)     Feeder.Feed, Feeder.Close, Session.Open (one at a time)
//	handshake (once)    Handshake, which runs Feeder.Read/Write inside crypto/tls
//	writer              Session.Seal, Session.Alert (one at a time, under the caller's
//	                    write lock); may run concurrently with Session.Open
//	any                 Session.Info, Session.SealedLen
//
// Open and Seal share only the flags word (atomic): Open sets "KeyUpdate requested" and
// Seal clears it when it answers. Everything else is owned by one side: rd by Open, wr by
// Seal. There are no locks besides the Feeder's own mutex, so there is no lock order.
//
// # Sequence numbers
//
// Each direction counts its records from the one after the handshake: TLS 1.2 from 1 both
// ways (each Finished was 0); TLS 1.3 reads from 0 and writes from the number of
// NewSessionTicket records crypto/tls already sent under the server application key
// (counted by opening the server's handshake output, never guessed). A KeyUpdate resets
// its direction to 0. Nonces are never reused: every sealed record increments seq.
package tlsrec
