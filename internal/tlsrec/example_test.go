package tlsrec

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
)

// ExampleHandshake shows the life of one connection as a reactor drives it: bytes read
// from the socket go to Feed while the handshake runs on its own goroutine, then to
// Session.Open (the handshake's leftover first, then anything Feed refused), and replies
// go out through Seal.
func ExampleHandshake() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	clientGot := make(chan string, 1)
	go func() { // the client: plain crypto/tls
		c, err := tls.Dial("tcp", ln.Addr().String(), clientConfig(nil))
		if err != nil {
			clientGot <- err.Error()
			return
		}
		c.Write([]byte("hello"))
		buf := make([]byte, 5)
		io.ReadFull(c, buf)
		clientGot <- string(buf)
		c.Close() // sends close_notify
	}()
	conn, _ := ln.Accept()
	defer conn.Close()

	chunks := make(chan []byte, 16)
	go func() { // the reactor's reads, handed to the connection in order
		for {
			buf := make([]byte, 4096)
			n, err := conn.Read(buf)
			if err != nil {
				close(chunks)
				return
			}
			chunks <- buf[:n]
		}
	}()

	f := NewFeeder(func(p []byte) error { _, err := conn.Write(p); return err }, conn.LocalAddr(), conn.RemoteAddr())
	type result struct {
		s    *Session
		rest []byte
		err  error
	}
	done := make(chan result, 1)
	go func() { // the short-lived handshake goroutine
		s, rest, err := Handshake(f, serverConfig(nil))
		done <- result{s, rest, err}
	}()

	var sess *Session
	var held []byte // read after the handshake ended, before the Session arrived
	for sess == nil {
		select {
		case p := <-chunks:
			if err := f.Feed(p); errors.Is(err, ErrHandshakeDone) {
				held = append(held, p...)
			}
		case r := <-done:
			if r.err != nil {
				fmt.Println(r.err)
				return
			}
			sess = r.s
			held = append(r.rest, held...)
		}
	}
	deliver := func(plain []byte) error {
		fmt.Printf("server got: %s\n", plain)
		conn.Write(sess.Seal(nil, bytes.ToUpper(plain)))
		return nil
	}
	err := sess.Open(held, deliver)
	for err == nil {
		p, ok := <-chunks
		if !ok {
			err = io.ErrUnexpectedEOF
			break
		}
		err = sess.Open(p, deliver)
	}
	fmt.Println("client got:", <-clientGot)
	fmt.Println("server Open:", err)
	// Output:
	// server got: hello
	// client got: HELLO
	// server Open: tlsrec: peer sent close_notify
}
