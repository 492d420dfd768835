// Command tether-memtest measures how much resident memory one authenticated,
// heartbeating connection costs the tether gateway and a goroutine-per-connection
// server speaking the same protocol, at tens of thousands of connections, in one run.
//
//	tether-memtest run -n 19000 -loaders 2 -heap-dir bench/results
//
// It is one binary playing three roles: the "run" orchestrator starts a "serve" child
// per implementation and "load" children that hold the connections, because a
// process may hold fewer than 20,000 sockets. See package bench/memtest for what is
// measured and how.
package main

import (
	"os"

	"github.com/tether-gw/tether/bench/memtest"
)

func main() {
	os.Exit(memtest.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
