// Command floorprobe measures the kernel's floor for a connection server's work on
// this machine: a write(2) of one small message per socket, a read(2)+write(2) per
// heartbeat, and a bare accept loop. See package tools/floor.
//
//	go run ./tools/floorprobe -n 5000 -json bench/results/floor.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/tether-gw/tether/tools/floor"
)

func main() {
	var cfg floor.Config
	flag.IntVar(&cfg.N, "n", 5000, "The number of loopback socket pairs written to and read from.")
	flag.IntVar(&cfg.Rounds, "rounds", 10, "How many times every socket is written to or read from.")
	flag.IntVar(&cfg.Size, "size", 60, "The size in bytes of the message of the write floor.")
	flag.IntVar(&cfg.Accepts, "accepts", 10000, "The connections the bare accept loop accepts.")
	jsonOut := flag.String("json", "", "Also write the result as JSON to this file.")
	flag.Parse()
	res, err := floor.Probe(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floorprobe:", err)
		os.Exit(1)
	}
	fmt.Print(res.Text())
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "floorprobe:", err)
			os.Exit(1)
		}
	}
}
