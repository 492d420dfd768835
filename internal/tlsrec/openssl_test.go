package tlsrec

import (
	"bufio"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenSSLInterop runs openssl s_client against Handshake and Session: TLS 1.3 suites
// the Go client cannot be pinned to (ChaCha20-Poly1305, AES-256-GCM), a KeyUpdate with
// update_requested sent by openssl (its "K" command) that the server follows and
// answers, and close_notify when s_client's input ends.
func TestOpenSSLInterop(t *testing.T) {
	const bin = "/usr/bin/openssl"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("openssl not installed at %s: %v", bin, err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: testPKI(t).caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		args      []string
		keyUpdate bool
	}{
		{"1.3 ChaCha20", []string{"-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"}, true},
		{"1.3 AES-256-GCM", []string{"-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"}, true},
		{"1.3 AES-128-GCM", []string{"-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"}, true},
		{"1.2 ChaCha20", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"}, false},
		{"1.2 AES-256-GCM", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			args := append([]string{"s_client", "-connect", ln.Addr().String(), "-servername", "tether.test",
				"-CAfile", caFile, "-verify_return_error", "-no_ign_eof"}, c.args...)
			cmd := exec.Command(bin, args...)
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			cmd.Stderr = cmd.Stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			t.Cleanup(func() {
				stdin.Close()
				select {
				case <-exited:
				case <-time.After(testTimeout):
					cmd.Process.Kill()
				}
			})
			lines := make(chan string, 1000)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
				exited <- cmd.Wait()
			}()
			expect := func(want string) {
				t.Helper()
				timeout := time.After(testTimeout)
				for {
					select {
					case l, ok := <-lines:
						if !ok {
							t.Fatalf("s_client exited before printing %q", want)
						}
						if strings.Contains(l, want) {
							return
						}
					case <-timeout:
						t.Fatalf("s_client did not print %q", want)
					}
				}
			}
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			s := newServer(t, sc, serverConfig(t), 1<<20)
			s.handshake()
			echo := func(line string) {
				t.Helper()
				if _, err := io.WriteString(stdin, line+"\n"); err != nil {
					t.Fatal(err)
				}
				if got := string(s.read(len(line) + 1)); got != line+"\n" {
					t.Fatalf("server read %q", got)
				}
				s.write([]byte("echo:" + line + "\n"))
				expect("echo:" + line)
			}
			echo("hello")
			if c.keyUpdate {
				before := s.sess.rd.secret
				// KeyUpdate with update_requested. s_client takes a whole read of its
				// input as the command, so wait for it before the next line.
				io.WriteString(stdin, "K\n")
				expect("KEYUPDATE")
				echo("after-key-update")
				if s.sess.rd.secret == before {
					t.Fatal("server read key did not change after openssl's KeyUpdate")
				}
				echo("again")
			}
			stdin.Close() // s_client sends close_notify at input EOF (-no_ign_eof)
			if err := s.readErr(); !errors.Is(err, ErrCloseNotify) {
				t.Fatalf("server Open: %v, want ErrCloseNotify", err)
			}
		})
	}
}
