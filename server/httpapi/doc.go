// Package httpapi is tether's HTTP API for backend services: every operation of the
// control port (push to users, connections, a room or everyone, with QoS1 and exclude;
// kick; room join and leave; presence; stats) as JSON over HTTP, plus batches of pushes
// in one request. It serves HTTP/1.1 and HTTP/2, cleartext (h2c, prior knowledge) or
// over TLS, on its own listener (127.0.0.1:7004 by default). docs/HTTPAPI.md describes
// it for users and docs/openapi.yaml is its contract, held to the server by a test.
//
// # One implementation
//
// The operations are control.Ops, the same code the control port's sessions run, so a
// request gives the same result or the same failure code (PROTOCOL.md §15.4–15.5) by
// either door. A failure is an HTTP status with a JSON body
// {"error": {"code": 4008, "name": "NOT_FOUND", "message": "...", "offline": 1}};
// errors of HTTP itself (authentication, size, route, method) reuse the closest code.
//
// # Wiring
//
//	api, err := httpapi.New(httpapi.Options{Key: key})
//	err = api.Start(srv, ctl) // ctl (the control port, may be nil) feeds STATS its counts
//	srv.RegisterMetricsWriter(api.WriteMetrics)
//	defer api.Close()
//
// # Goroutines
//
// net/http runs each request on its own goroutine (HTTP/2 streams too); services are
// few, so this costs nothing that matters. A handler calls the gateway's Go API, which
// never blocks on a client; PRESENCE and STATS wait at most a second for the other nodes
// of a cluster. The API holds no lock of its own while it runs an operation: its mutex
// guards only Start and Close, and the throttle's is a leaf.
//
// # Security
//
// The API is trusted with every connection of the gateway. It listens on loopback by
// default; every route but /v1/healthz needs "Authorization: Bearer <key>", compared in
// constant time (SHA-256 of both sides, so lengths do not leak either). New refuses a
// non-loopback address without a key (Options.Insecure) or with one shorter than
// MinKeyLen. Wrong keys are counted per source as the control port counts wrong secrets
// (control.Throttle): from Options.MaxAuthFailures on the source is answered 429 before
// its key is checked, for a lock-out doubling per failure. Bodies are bounded
// (Options.MaxBodyBytes, 413 beyond), batches too (Options.MaxBatch), unknown JSON
// fields are refused, and headers, reads and writes have deadlines.
//
// # What it trades away
//
// JSON payloads: a binary payload travels base64 (payload_b64), a third larger than on
// the control port, which also carries no uplinks or events (they need a connection the
// gateway can write to). encoding/json rather than sonic keeps the package simple; an
// HTTP request costs far more than its JSON.
package httpapi
