package memtest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procMem is a process's resident memory from /proc/PID/status, in bytes.
type procMem struct {
	RSS     int64 // VmRSS: everything resident
	RSSAnon int64 // RssAnon: heap, stacks and other anonymous mappings
	RSSFile int64 // RssFile: mapped files, mostly the binary's text
}

// readProcMem reads the resident memory of process pid.
func readProcMem(pid int) (procMem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, fmt.Errorf("cannot read memory of process %d: %w", pid, err)
	}
	defer f.Close()
	var m procMem
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
			dst = &m.RSSAnon
		case "RssFile":
			dst = &m.RSSFile
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return procMem{}, fmt.Errorf("cannot parse %s of process %d: %q", key, pid, val)
		}
		*dst = kb << 10
	}
	if err := sc.Err(); err != nil {
		return procMem{}, fmt.Errorf("cannot read memory of process %d: %w", pid, err)
	}
	if !found {
		return procMem{}, fmt.Errorf("no VmRSS for process %d (exited?)", pid)
	}
	return m, nil
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
