// Package e2e holds the end-to-end tests: the real gateway (package server), its control
// port (server/control) and the Go SDKs (client, client/service) run together in one
// process over loopback, and each test checks what one side sees of what another did:
// the client SDK's requests, pushes, reconnects and rooms against the real gateway; a
// backend's QoS1 stream reaching clients through connection cuts; services' pushes,
// presence and routed uplinks reaching and answering clients through the control port;
// the service SDK reconnecting and serving uplinks again. A test that gives the gateway
// a Handler of its own (or none) runs it without the control port.
//
// A test belongs here when it needs two or more of those packages for real. A test of
// one package against fakes, or one that asserts a package's unexported state, stays in
// that package. Helpers that start the gateway live here (they import server and the
// SDKs); helpers that import none of them live in internal/testkit, which every
// package's tests can use.
//
// The package has no non-test code and nothing imports it.
package e2e
