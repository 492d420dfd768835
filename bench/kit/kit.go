// Package kit is the plumbing that the measurement tools share: tether-bench
// (bench/load), tether-memtest (bench/memtest), their children (bench/serve,
// bench/loadgen) and the kernel floor probe (bench/floor). Each tool runs an
// orchestrator that starts child processes of its own binary, talks to them in lines
// on stdin and stdout, reads their CPU time and memory from /proc, and opens
// thousands of loopback connections from source addresses of its choosing. Those
// pieces live here, once: what the lines say is bench/msg's.
//
// It is not an API: it serves these tools, is Linux-only where it reads /proc, and
// changes with them.
package kit
