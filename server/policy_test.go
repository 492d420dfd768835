package server

import (
	"errors"
	"testing"

	"github.com/tether-gw/tether/protocol"
)

// TestDevicePolicyOnePerUser: a second login from another device closes the first with
// the terminal CloseReplaced.
func TestDevicePolicyOnePerUser(t *testing.T) {
	s := startServer(t, func(o *Options) { o.DevicePolicy = DevicesOnePerUser })
	a := dialRaw(t, s)
	a.hello("frank", "phone", "ios")
	b := dialRaw(t, s)
	b.hello("frank", "tablet", "ios")
	a.expectClosed(protocol.OpClose, protocol.CloseReplaced)
	waitFor(t, "one connection left", func() bool { return len(s.UserConns("frank")) == 1 })
	if got := s.UserConns("frank")[0].DeviceID(); got != "tablet" {
		t.Fatalf("remaining device %q, want tablet", got)
	}
}

// TestDevicePolicyOnePerPlatform: devices on different platforms coexist; a newer login
// on the same platform replaces the older.
func TestDevicePolicyOnePerPlatform(t *testing.T) {
	s := startServer(t, func(o *Options) { o.DevicePolicy = DevicesOnePerPlatform })
	ios := dialRaw(t, s)
	ios.hello("gina", "phone", "ios")
	android := dialRaw(t, s)
	android.hello("gina", "pixel", "android")
	waitFor(t, "two devices", func() bool { return len(s.UserConns("gina")) == 2 })
	ios2 := dialRaw(t, s)
	ios2.hello("gina", "ipad", "ios")
	ios.expectClosed(protocol.OpClose, protocol.CloseReplaced)
	android.write(protocol.AppendEmpty(nil, protocol.OpPing, 1))
	android.expect(protocol.OpPong)
	waitFor(t, "two devices again", func() bool { return len(s.UserConns("gina")) == 2 })
}

// TestDevicePolicyMany: by default every device stays.
func TestDevicePolicyMany(t *testing.T) {
	s := startServer(t, nil)
	for _, d := range []string{"a", "b", "c"} {
		c := dialRaw(t, s)
		c.hello("hank", d, "ios")
	}
	waitFor(t, "three devices", func() bool { return len(s.UserConns("hank")) == 3 })
	n, err := s.PushUser("hank", []byte("x"))
	if err != nil || n != 3 {
		t.Fatalf("PushUser = %d, %v; want 3", n, err)
	}
}

// TestSameDeviceReplaced: a second login from the same device replaces the first
// connection with CLOSE REPLACED (not a bare EOF, which a client reads as "reconnect"),
// under every device policy, and the new one keeps working. The new login's AUTH_OK and
// AUTH_FAIL echo the HELLO's seq.
func TestSameDeviceReplaced(t *testing.T) {
	for _, policy := range []DevicePolicy{DevicesMany, DevicesOnePerPlatform, DevicesOnePerUser} {
		t.Run(policy.String(), func(t *testing.T) {
			s, fresh := replaceSameDevice(t, policy, "ivan")
			fresh.write(protocol.AppendEmpty(nil, protocol.OpPing, 2))
			fresh.expect(protocol.OpPong)
			waitFor(t, "one connection", func() bool { return len(s.UserConns("ivan")) == 1 && s.Stats().Authenticated == 1 })
		})
	}
}

// replaceSameDevice starts a server under policy and logs user in twice from the same
// device; the older connection must get CLOSE REPLACED. It returns the server and the
// newer connection.
func replaceSameDevice(t *testing.T, policy DevicePolicy, user string) (*Server, *rawConn) {
	t.Helper()
	s := startServer(t, func(o *Options) { o.DevicePolicy = policy })
	old := dialRaw(t, s)
	old.hello(user, "phone", "ios")
	fresh := dialRaw(t, s)
	fresh.hello(user, "phone", "ios")
	old.expectClosed(protocol.OpClose, protocol.CloseReplaced)
	return s, fresh
}

// TestKick: KickUser closes every device with the given terminal code.
func TestKick(t *testing.T) {
	s := startServer(t, nil)
	a := dialRaw(t, s)
	a.hello("judy", "a", "ios")
	b := dialRaw(t, s)
	b.hello("judy", "b", "web")
	waitFor(t, "two devices", func() bool { return len(s.UserConns("judy")) == 2 })
	if n := s.KickUser("judy", protocol.CloseKicked, "banned"); n != 2 {
		t.Fatalf("KickUser closed %d, want 2", n)
	}
	a.expectClosed(protocol.OpClose, protocol.CloseKicked)
	b.expectClosed(protocol.OpClose, protocol.CloseKicked)
	if err := s.KickConn(12345, protocol.CloseKicked, ""); !errors.Is(err, ErrConnNotFound) {
		t.Fatalf("KickConn(unknown) = %v", err)
	}
}

// TestSameTokenReplaced: under one-per-user, a login presenting the very same token
// without a device id replaces the old connection with CLOSE REPLACED too.
func TestSameTokenReplaced(t *testing.T) {
	s := startServer(t, func(o *Options) { o.DevicePolicy = DevicesOnePerUser })
	old := dialRaw(t, s)
	old.send(&protocol.Hello{Token: "kate#tok"}, 1, 0)
	old.expect(protocol.OpAuthOK)
	fresh := dialRaw(t, s)
	fresh.send(&protocol.Hello{Token: "kate#tok"}, 1, 0)
	fresh.expect(protocol.OpAuthOK)
	old.expectClosed(protocol.OpClose, protocol.CloseReplaced)
	waitFor(t, "one connection", func() bool { return len(s.UserConns("kate")) == 1 })
}

// TestSharedTokenTwoDevices: two distinct devices presenting the same token under
// one-per-user: the older gets the terminal CloseReplaced (not a quiet close it would
// answer by reconnecting, which would replace the other in a loop).
func TestSharedTokenTwoDevices(t *testing.T) {
	s := startServer(t, func(o *Options) { o.DevicePolicy = DevicesOnePerUser })
	phone := dialRaw(t, s)
	phone.send(&protocol.Hello{Token: "lena#shared", DeviceID: "phone"}, 1, 0)
	phone.expect(protocol.OpAuthOK)
	laptop := dialRaw(t, s)
	laptop.send(&protocol.Hello{Token: "lena#shared", DeviceID: "laptop"}, 1, 0)
	laptop.expect(protocol.OpAuthOK)
	phone.expectClosed(protocol.OpClose, protocol.CloseReplaced)
}
