package floor

import (
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tether-gw/tether/bench/kit/kittest"
)

// childEnv makes the test binary act as the fair variants' peer process.
const childEnv = "TETHER_FLOOR_PEER"

func TestMain(m *testing.M) {
	kittest.ChildMain(m, childEnv, func(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		if err := PeerMain(args, stdin, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "peer:", err)
			return 1
		}
		return 0
	})
}

// TestProbeSmoke runs the probe at a tiny size, in process and fair: it checks that
// every figure is measured, not what it is.
func TestProbeSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a peer process")
	}
	// The in-process CPU figures come from getrusage(RUSAGE_THREAD), which on a
	// tick-accounting kernel moves in steps of one tick (4 ms at HZ=250); the epoll
	// figure is summed over windows shorter than a tick. At this size any one of
	// them can read 0 (3 rounds over 500 sockets did one run in three), so each is
	// checked for being measured at all, and their sum for being positive.
	res, err := Probe(Config{N: 500, Rounds: 24, Accepts: 2000,
		Peer: []string{os.Args[0]}, PeerEnv: kittest.ChildEnv(childEnv), Conns: 300, Heartbeat: 100 * time.Millisecond,
		Window: time.Second, Log: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	cpu := []float64{res.Write, res.ReadWrite, res.EpollReadWrite, res.Accept}
	if slices.Min(cpu) < 0 || res.Write+res.ReadWrite+res.EpollReadWrite+res.Accept <= 0 || res.AcceptRate <= 0 {
		t.Errorf("a figure is missing: %+v", res)
	}
	if res.WriteWall <= 0 || res.ReadWriteWall <= 0 {
		t.Errorf("a wall time is missing: %+v", res)
	}
	// 300 connections PINGed every 100ms for a second: about 3000 heartbeats. The
	// CPU figures can be 0 at /proc's 10 ms resolution, so they are not checked.
	if res.Conns != 300 || res.FairWriteWall <= 0 || res.FairHeartbeats < 1000 || res.FairHeartbeatRate <= 0 || res.FairEventsPerWait < 1 {
		t.Errorf("a fair figure is missing: %+v", res)
	}
	if res.Text() == "" {
		t.Error("no text")
	}
	t.Log("\n" + res.Text())
}
