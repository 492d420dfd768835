package kit

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat. It is 100 on
// every Linux architecture Go supports.
const clockTick = 100

// ProcCPU returns the user and system CPU seconds process pid has used, with all its
// threads, living or exited (utime+stime of /proc/PID/stat). Its resolution is 10 ms,
// so whatever it measures is sized to use seconds of CPU.
func ProcCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read CPU time of process %d: %w", pid, err)
	}
	// The command name (field 2) may contain spaces; fields resume after its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cannot parse CPU times in /proc/%d/stat", pid)
	}
	return float64(ut+st) / clockTick, nil
}

// Mem is a process's resident memory from /proc/PID/status, in bytes.
type Mem struct {
	RSS  int64 // VmRSS: everything resident
	Anon int64 // RssAnon: heap, stacks and other anonymous mappings
	File int64 // RssFile: mapped files, mostly the binary's text
}

// ProcMem reads the resident memory of process pid.
func ProcMem(pid int) (Mem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, fmt.Errorf("cannot read memory of process %d: %w", pid, err)
	}
	defer f.Close()
	var m Mem
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst, found = &m.RSS, true
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("cannot parse %s of process %d: %q", key, pid, val)
		}
		*dst = kb << 10
	}
	if err := sc.Err(); err != nil {
		return Mem{}, fmt.Errorf("cannot read memory of process %d: %w", pid, err)
	}
	if !found {
		return Mem{}, fmt.Errorf("no VmRSS for process %d (exited?)", pid)
	}
	return m, nil
}

// ProcRSS returns VmRSS of process pid in bytes.
func ProcRSS(pid int) (int64, error) {
	m, err := ProcMem(pid)
	return m.RSS, err
}

// FileLimit raises this process's soft open-files limit to the hard one, which its
// children inherit, and returns the result.
func FileLimit() (soft, hard uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024, 1024
	}
	if rl.Cur < rl.Max {
		raised := rl
		raised.Cur = rl.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			rl = raised
		}
	}
	return rl.Cur, rl.Max
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// kernelRelease returns the running kernel's release, or "unknown".
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
