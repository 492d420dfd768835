// Package bench is the root of the tooling around the product: nothing under it is
// imported by the gateway (server, client, protocol, timingwheel, cmd/tetherd,
// cmd/tetherctl), and TestProductLinksNoBench keeps it so. It holds no code of its
// own; its packages are:
//
//	bench/kit       plumbing every bench process shares: child processes, /proc readers,
//	                loopback dialing over tcp, tls, ws and wss (and the baselines'
//	                listeners for them), starting tetherd and nats-server, command-line
//	                helpers
//	bench/loadgen   the load generator: one child process holding N client connections,
//	                driven by JSON commands (both tether-bench and tether-memtest use it)
//	bench/serve     the server child: each implementation under test (the embedded
//	                gateway, tetherd, the baseline, bare netpoll servers) behind one
//	                command protocol (both tools use it)
//	bench/msg       the JSON-lines commands and events between orchestrators and children
//	bench/baseline  the goroutine-per-connection server the gateway is compared with
//	bench/floor     the kernel floor probe (what a write, a heartbeat, an accept cost)
//	bench/load      tether-bench: the load scenarios, the suite behind make bench, reports
//	bench/memtest   tether-memtest: resident memory per connection
//	bench/faults    tether-bench halfopen, loginflood, secretflood, emfile, lockout:
//	                issue 8's faults measured against real tetherd processes
//
// cmd/tether-bench and cmd/tether-memtest are thin mains over bench/load and
// bench/memtest.
package bench
