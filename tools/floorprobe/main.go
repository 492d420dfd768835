// Command floorprobe measures the kernel's floor for a connection server's work on
// this machine: a write(2) of one small message per socket, a read(2)+write(2) per
// heartbeat, and a bare accept loop, in process and with the client ends read by a
// peer process (which is this binary run as "floorprobe peer"). See package
// tools/floor.
//
//	go run ./tools/floorprobe -n 5000 -json bench/results/floor.json
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/tools/floor"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "peer" {
		if err := floor.PeerMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "floorprobe peer:", err)
			os.Exit(1)
		}
		return
	}
	var cfg floor.Config
	cfg.Flags(flag.CommandLine)
	jsonOut := flag.String("json", "", "Also write the result as JSON to this file.")
	inProcess := flag.Bool("in-process", false, "Measure only the in-process floor, without the peer process.")
	flag.Parse()
	if !*inProcess {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "floorprobe:", err)
			os.Exit(1)
		}
		cfg.Peer = []string{exe, "peer"}
		cfg.Log = func(s string) { fmt.Fprintln(os.Stderr, s) }
	}
	res, err := floor.Probe(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floorprobe:", err)
		os.Exit(1)
	}
	fmt.Print(res.Text())
	if *jsonOut != "" {
		if err := kit.WriteJSON(*jsonOut, res, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "floorprobe:", err)
			os.Exit(1)
		}
	}
}
