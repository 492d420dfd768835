package load

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/tether-gw/tether/bench/kit"
)

// CPUShare is the share of a CPU profile's samples spent on one kind of work.
type CPUShare struct {
	What  string
	Share float64 // of all samples, 0..1
}

// profileShares groups the samples of a CPU profile by what they were doing (see
// classify), largest first.
func profileShares(profile string) ([]CPUShare, error) {
	out, err := exec.Command(kit.GoTool(), "tool", "pprof", "-traces", profile).Output()
	if err != nil {
		return nil, fmt.Errorf("cannot run go tool pprof -traces %s: %w", profile, err)
	}
	return sharesOfTraces(strings.NewReader(string(out)))
}

// sharesOfTraces reads the output of `go tool pprof -traces`: stacks separated by
// "-----------+---..." lines, the first line of each carrying the stack's samples
// and its leaf function, the following ones its callers.
func sharesOfTraces(r io.Reader) ([]CPUShare, error) {
	by := map[string]time.Duration{}
	var total time.Duration
	var stack []string
	var value time.Duration
	flush := func() {
		if len(stack) > 0 {
			by[classify(stack)] += value
			total += value
		}
		stack, value = stack[:0], 0
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			flush()
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(line, " ") {
			continue // the header
		}
		if len(stack) == 0 && len(fields) >= 2 {
			d, err := time.ParseDuration(fields[0])
			if err != nil {
				continue
			}
			value = d
			stack = append(stack, fields[1])
			continue
		}
		if len(stack) > 0 {
			stack = append(stack, fields[0])
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if total == 0 {
		return nil, fmt.Errorf("the profile has no samples")
	}
	var out []CPUShare
	for k, v := range by {
		out = append(out, CPUShare{k, float64(v) / float64(total)})
	}
	slices.SortFunc(out, func(a, b CPUShare) int {
		if a.Share != b.Share {
			if a.Share > b.Share {
				return -1
			}
			return 1
		}
		return strings.Compare(a.What, b.What)
	})
	return out, nil
}

// syscallEntries are the functions through which Go code enters the kernel.
var syscallEntries = []string{
	"internal/runtime/syscall/linux.Syscall6", "syscall.Syscall", "syscall.Syscall6", "syscall.RawSyscall",
	"syscall.RawSyscall6", "syscall.RawSyscallNoError", "syscall.rawSyscallNoError", "syscall.rawVforkSyscall",
	"golang.org/x/sys/unix.Syscall", "golang.org/x/sys/unix.Syscall6", "golang.org/x/sys/unix.RawSyscall",
	"golang.org/x/sys/unix.RawSyscallNoError", "runtime/internal/syscall.Syscall6",
}

// syscallNames map words in the caller of a system call entry to the call.
var syscallNames = []struct{ word, name string }{
	{"epollctl", "epoll_ctl(2)"}, {"epoll_ctl", "epoll_ctl(2)"},
	{"epollwait", "epoll_wait(2)"}, {"epoll_wait", "epoll_wait(2)"}, {"epoll", "epoll_wait(2)"},
	{"accept", "accept4(2)"},
	{"writev", "write(2)/writev(2)"}, {"sendmsg", "write(2)/writev(2)"}, {"write", "write(2)/writev(2)"},
	{"readv", "read(2)"}, {"recvmsg", "read(2)"}, {"read", "read(2)"},
	{"close", "close(2)"}, {"shutdown", "close(2)"},
	{"sockopt", "setsockopt(2)"}, {"fcntl", "fcntl(2)"}, {"getsockname", "getsockname(2)"},
}

// classify says what a stack (leaf first) was doing: a system call by name, the Go
// runtime's thread sleeps and wakeups (futex), garbage collection, allocation, the
// scheduler, or code by package.
func classify(stack []string) string {
	for i, f := range stack {
		if !slices.Contains(syscallEntries, f) {
			continue
		}
		for _, caller := range stack[i+1 : min(len(stack), i+8)] {
			if slices.Contains(syscallEntries, caller) {
				continue
			}
			base := strings.ToLower(caller[strings.LastIndexByte(caller, '/')+1:])
			for _, n := range syscallNames {
				if strings.Contains(base, n.word) {
					return n.name
				}
			}
		}
		return "other system calls"
	}
	leaf := stack[0]
	has := func(names ...string) bool {
		return slices.ContainsFunc(stack, func(f string) bool { return slices.Contains(names, f) })
	}
	switch {
	case leaf == "runtime.futex":
		return "futex(2): Go threads sleeping and waking"
	case has("runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.gcDrain", "runtime.bgsweep", "runtime.bgscavenge",
		"runtime.markroot", "runtime.scanobject", "runtime.sweepone", "runtime.gcStart", "runtime.gcMarkTermination"):
		return "garbage collection"
	case has("runtime.mallocgc", "runtime.newobject", "runtime.makeslice", "runtime.growslice"):
		return "allocation"
	case strings.HasPrefix(leaf, "runtime.") && has("runtime.schedule", "runtime.findRunnable", "runtime.mcall", "runtime.park_m",
		"runtime.goexit0", "runtime.newproc", "runtime.wakep", "runtime.ready", "runtime.goready", "runtime.netpoll", "runtime.sysmon",
		"runtime.exitsyscall", "runtime.entersyscall", "runtime.reentersyscall", "runtime.morestack", "runtime.newstack"):
		return "Go scheduler"
	case strings.HasPrefix(leaf, "github.com/tether-gw/tether/"):
		return "tether code"
	case strings.HasPrefix(leaf, "github.com/cloudwego/"):
		return "netpoll code"
	case strings.HasPrefix(leaf, "runtime.") || strings.HasPrefix(leaf, "internal/runtime/"):
		return "Go runtime, other"
	}
	return "other code (standard library, dependencies)"
}

// sharesText renders the shares of at least 2% as "write(2)/writev(2) 94%, ...".
func sharesText(shares []CPUShare) string {
	var parts []string
	for _, s := range shares {
		if s.Share >= 0.02 {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", s.What, 100*s.Share))
		}
	}
	return strings.Join(parts, ", ")
}

// share returns the share of what in shares, 0 if absent.
func share(shares []CPUShare, what string) float64 {
	for _, s := range shares {
		if s.What == what {
			return s.Share
		}
	}
	return 0
}
