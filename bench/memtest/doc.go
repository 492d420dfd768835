// Package memtest measures what one idle, authenticated connection costs a server
// process in resident memory, for tether and for the goroutine-per-connection design
// it replaces, under the same protocol and the same load in one run.
//
// # Processes
//
// A run is three kinds of process, all the same binary (cmd/tether-memtest):
//
//	run    the orchestrator: starts the others, reads the server's VmRSS from
//	       /proc/PID/status, prints the report.
//	serve  one server under test (bench/serve), alone in its process so that its
//	       RSS is its own. It answers commands on stdin.
//	load   a load generator (bench/loadgen, the one tether-bench uses) holding -n
//	       connections from one loopback source address.
//
// The servers (-impl) are:
//
//	tether    the gateway, package server, run in the serve child with the
//	          insecure authenticator and the per-IP and rate limits lifted
//	tetherd   the cmd/tetherd binary with the same settings; the serve child only
//	          relays, reading Go memory from its /metrics and forcing GCs and heap
//	          profiles through /debug/pprof/heap?gc=1
//	baseline  package bench/baseline: one goroutine and one 4 KiB bufio.Reader per
//	          connection, the design tether claims to beat
//	netpoll   a bare protocol server on netpoll with tether's buffer settings and no
//	          bookkeeping: the floor that tether's event loop starts from
//
// Separate loader processes are not a choice but a limit: a process may hold at most
// 20,000 descriptors on the reference machine, so 19,000 connections need the server
// in one process and their client ends in others; and each loader binds its own
// source address (127.0.0.2, 127.0.0.3, ..., fresh ones for every implementation) so
// ephemeral ports never run out and no run meets the previous one's TIME_WAIT.
//
// Children talk to the orchestrator in bench/msg's JSON lines, as tether-bench's do;
// anything else they print is passed through. A child exits when its stdin closes or
// its -max-lifetime passes, so no run can leave processes behind.
//
// # What is measured
//
// For each implementation: the server's VmRSS once it listens and a forced GC and
// scavenge settled (before), and again when every connection has authenticated and
// completed -pings PING/PONG exchanges (after, both as found and after another forced
// GC and scavenge; tetherd's through its admin listener: /debug/pprof/heap?gc=1 and
// POST /debug/scavenge). The headline figure is (after - before) / N with both sides
// settled, which is what a long-running server converges to; the as-found figure is
// reported next to it. Go heap and goroutine stack growth per connection come from
// runtime.MemStats in the server process.
//
// What is not measured: kernel socket memory (it is the same for every design and
// not in RSS), and the loaders.
package memtest
