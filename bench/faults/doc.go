// Package faults measures again the faults and abuse of issue 8 §3 against real
// tetherd processes it starts and stops itself: the heartbeat timeout of half-open
// clients (in a network namespace), the log volume of failed-login and wrong-secret
// floods, refusal while file descriptors are exhausted, and a service's AUTH while
// idle unauthenticated connections crowd the control port. Each is one tether-bench
// subcommand (halfopen, loginflood, secretflood, emfile, lockout), bounded in
// connections and time; BENCHMARKS.md ("Issue 8: faults and abuse, measured again")
// has the figures and the commands.
//
// Each command runs in the calling goroutine; the flood goroutines it starts end
// with its context. halfopen needs root (it creates and deletes a network namespace
// and a veth pair).
package faults
