// Package loadgen is the bench's one load generator: a child process that opens N
// client connections to a server under test, authenticates each (the token is the
// user id), keeps them alive with PINGs and carries out the orchestrator's commands
// (echo at a rate, pipelined echo, subscribe, churn, report) over bench/msg's JSON
// lines. tether-bench (bench/load) runs it for every scenario and tether-memtest
// (bench/memtest) to hold the connections it measures, so both tools load a server
// the same way.
//
// Each connection has a goroutine doing blocking reads (Go's netpoller multiplexes
// them onto a few threads); writes that are not replies come from a few pacing
// goroutines that walk the connections round robin, so idle connections cost the
// loader no timers. The loader's own CPU time is reported with every figure, since
// it shares the machine with the server. Its memory is not measured and not
// optimised.
package loadgen
