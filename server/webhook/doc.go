// Package webhook delivers a gateway's connection events, and optionally the uplinks
// of chosen routes, to an HTTP endpoint as signed JSON POSTs: this is how an app learns
// that a user went offline (to send a mobile push notification instead) without
// keeping a control-port connection open. docs/WEBHOOKS.md is the receiver's guide.
//
// # Wiring
//
// A Sender implements control.Observer, so the control port (the gateway's Handler)
// tells it of this node's own connections and uplinks:
//
//	hooks, err := webhook.New(webhook.Options{URL: url, Secret: secret})
//	ctl, err := control.New(control.Options{Secret: ctlSecret, Observer: hooks})
//	srv.RegisterMetricsWriter(hooks.WriteMetrics)
//	defer hooks.Close(ctx) // after the server's Shutdown, so the offline events go out
//
// # Delivery
//
// Each event becomes one delivery with a unique id (Event.ID, header Tether-Webhook-Id)
// and is POSTed with Content-Type application/json, Tether-Timestamp (unix seconds)
// and Tether-Signature "v1=" + hex HMAC-SHA256(secret, timestamp + "." + body). A 2xx
// answer delivers it. A network error, a timeout (Options.Timeout), a 5xx or a 429 is
// retried, up to Options.MaxAttempts attempts in all, after a wait drawn with full
// jitter from [0, min(BackoffMax, BackoffMin·2ⁿ)] (internal/backoff), or after the
// Retry-After a 429 or 503 gives (at most BackoffMax). A retry keeps the delivery's id
// and body and gets a fresh timestamp and signature, so a receiver dedupes by id. Any
// other status (4xx, 3xx: redirects are not followed) fails the delivery at once. So
// delivery is at least once while the receiver answers within MaxAttempts, and
// deliveries may arrive out of order (Options.Workers post concurrently).
//
// # Queue and drops
//
// Offer never blocks: it encodes the body and queues it in a bounded queue
// (Options.QueueSize). When the queue is full, the OLDEST queued delivery is dropped to
// make room (counted as tether_webhook_deliveries_total{result="dropped"}). A receiver
// that was down or slow thus catches up with the present: the newest online/offline
// events describe who is online now, while the oldest are the most likely to have been
// superseded by a later event of the same connection (and their receiver-side purpose,
// such as a push notification for a message long past, the most likely to have lapsed).
//
// # Goroutines
//
//	goroutine                    runs
//	caller of Offer, On*         encodes the body, queues it (never blocks, no lock held)
//	Options.Workers workers      take deliveries from the queue, POST, wait out backoffs
//	Close                        stops Offer, waits for the workers to drain the queue
//
// The Sender holds no mutex of its own: the queue is a buffered channel and the
// counters are atomic; its log limiter's mutex is a leaf (nothing is locked under it).
//
// # What it trades away
//
// The queue is in memory: deliveries queued or being retried when the process dies
// are lost, and so are the drops a full queue makes. A worker holds a delivery while
// it waits out its backoff, so a receiver that is down slows the drain to Workers
// deliveries per backoff; the queue absorbs the rest, then drops. In exchange the
// gateway never waits for a receiver and nothing is written to disk.
package webhook
