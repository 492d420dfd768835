package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// tally counts outcomes by name; safe for concurrent use.
type tally struct {
	mu sync.Mutex
	m  map[string]int
}

func (t *tally) add(k string) {
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[string]int)
	}
	t.m[k]++
	t.mu.Unlock()
}

func (t *tally) get(k string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[k]
}

// String renders the counts sorted by name.
func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var keys []string
	total := 0
	for k, v := range t.m {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%d:", total)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, t.m[k])
	}
	return b.String()
}

// outcome names a reply or an error for a tally.
func outcome(r reply, err error) string {
	if err != nil {
		if errors.Is(err, errEOF) {
			return "EOF"
		}
		if strings.Contains(err.Error(), "timeout") {
			return "timeout"
		}
		if strings.Contains(err.Error(), "reset") {
			return "reset"
		}
		if strings.Contains(err.Error(), "refused") {
			return "refused"
		}
		return "error(" + strings.ReplaceAll(err.Error(), " ", "_") + ")"
	}
	return strings.ReplaceAll(r.String(), " ", "_")
}

// flood runs workers goroutines, each calling once in a loop until ctx ends.
func flood(ctx context.Context, workers int, once func()) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				once()
			}
		}()
	}
	return &wg
}

// logSize returns the size in bytes and the number of lines of the file at path,
// not counting lines that contain exclude (when not empty).
func logSize(path, exclude string) (int64, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	var n int64
	lines := 0
	for _, l := range bytes.SplitAfter(b, []byte{'\n'}) {
		if len(l) == 0 || (exclude != "" && bytes.Contains(l, []byte(exclude))) {
			continue
		}
		n += int64(len(l))
		lines++
	}
	return n, lines, nil
}

// mint returns an HS256 token for user signed with the secret in secretFile, from
// tetherd -mint-token.
func mint(bin, secretFile, user string) (string, error) {
	out, err := exec.Command(bin, "-mint-token", user, "-jwt-secret-file", secretFile).Output()
	if err != nil {
		return "", fmt.Errorf("tetherd -mint-token: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// srcAddr returns 127.0.0.<n>.
func srcAddr(n int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, byte(n)}) }

// logTail returns the last n lines of the file at path, for the report.
func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// extraArgs splits a -tetherd-args value into flags.
func extraArgs(s string) []string { return strings.Fields(s) }

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
