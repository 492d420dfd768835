// Package e2e holds the end-to-end tests: the real gateway (package server), its control
// port (server/control) and the Go SDKs (client, client/service) run together in one
// process over loopback, and each test checks what one side sees of what another did —
// a backend's QoS1 stream reaching clients through connection cuts, a service SDK
// reconnecting to the control port and serving clients' uplinks again.
//
// A test belongs here when it needs two or more of those packages for real. A test of
// one package against fakes, or one that asserts a package's unexported state, stays in
// that package. Helpers that start the gateway live here (they import server and the
// SDKs); helpers that import none of them live in internal/testkit, which every
// package's tests can use.
//
// The package has no non-test code and nothing imports it.
package e2e
