// Package load is tether-bench: load scenarios (connect, idle, echo, push, room,
// churn), each over any transport (-transport tcp|tls|ws|wss), the transports
// comparison and the cluster comparison (tetherd nodes on a nats-server against
// one tetherd, cluster.go), against a server it starts itself and the baselines it is measured against,
// and the standard suite behind make bench, which also runs the kernel floor probe
// (bench/floor) and tether-memtest and writes the generated section of
// BENCHMARKS.md.
//
// A scenario is an orchestrator and child processes of its own binary: one server
// (tetherd started directly, or a bench/serve child for the embedded gateway, the
// baseline and the bare echo) and bench/loadgen children holding the client
// connections, each from its own loopback source address so that no process holds
// more descriptors than it may. They talk in bench/msg's JSON lines. CPU and memory
// figures are read from /proc for the server's process alone; the loaders' own CPU
// time is reported next to them, since they share the machine. A cluster's server
// figures are the sum over its node processes (session.nodes).
//
// It is tooling, not an API: nothing in the product imports it.
package load
