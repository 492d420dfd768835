package load

import (
	"strings"
	"testing"
)

func TestSharesOfTraces(t *testing.T) {
	const traces = `File: tetherd
Type: cpu
Duration: 3s, Total samples = 2s (66.67%)
-----------+-------------------------------------------------------
     1.50s   internal/runtime/syscall/linux.Syscall6
             syscall.RawSyscall6
             syscall.Syscall
             syscall.write
             syscall.Write (inline)
             github.com/tether-gw/tether/server.sockWrite
-----------+-------------------------------------------------------
     200ms   internal/runtime/syscall/linux.Syscall6
             internal/runtime/syscall/linux.EpollWait
             runtime.netpoll
             runtime.findRunnable
-----------+-------------------------------------------------------
     100ms   runtime.futex
             runtime.futexwakeup
-----------+-------------------------------------------------------
     100ms   runtime.scanobject
             runtime.gcDrain
             runtime.gcBgMarkWorker
-----------+-------------------------------------------------------
     100ms   github.com/tether-gw/tether/server.(*Conn).writeFramesLocked
             github.com/tether-gw/tether/server.(*Server).fanOut
-----------+-------------------------------------------------------
`
	shares, err := sharesOfTraces(strings.NewReader(traces))
	if err != nil {
		t.Fatal(err)
	}
	f := func(what string, want float64) {
		t.Helper()
		if got := share(shares, what); got < want-1e-9 || got > want+1e-9 {
			t.Errorf("share of %q = %v, want %v (all: %v)", what, got, want, shares)
		}
	}
	// A write through syscall.Write is a write, whatever called it.
	f("write(2)/writev(2)", 0.75)
	// The runtime's netpoller waits in epoll_wait too.
	f("epoll_wait(2)", 0.10)
	f("futex(2): Go threads sleeping and waking", 0.05)
	f("garbage collection", 0.05)
	f("tether code", 0.05)
	if shares[0].What != "write(2)/writev(2)" {
		t.Errorf("largest first: %v", shares)
	}
	if got := sharesText(shares); !strings.HasPrefix(got, "write(2)/writev(2) 75%, epoll_wait(2) 10%") {
		t.Errorf("sharesText = %q", got)
	}
}
