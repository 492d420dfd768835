// Command tether-bench load-tests a tether gateway on loopback: connect, idle, echo,
// push, room and churn scenarios against tetherd and the baselines it is measured
// against, in one run. See package bench/load and BENCHMARKS.md.
package main

import (
	"os"

	"github.com/tether-gw/tether/bench/load"
)

func main() {
	os.Exit(load.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
