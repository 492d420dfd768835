package testkit

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// The child-process harness: a test re-runs its own test binary as a child that serves
// on loopback under conditions the parent must not share (a lowered RLIMIT_NOFILE).
// The child half is a test that returns at once unless InChild(env); it starts what it
// serves, then calls ServeAsChild. The parent half calls StartChild.

// InChild reports whether this process is a child that StartChild started with env set.
func InChild(env string) bool { return os.Getenv(env) != "" }

// StartChild runs the test binary again as a child running only the test named test,
// with env=1 in its environment, and waits for the child's "ADDR <addr>" line (logging
// any line before it). It returns that address and the child's stderr as it grows. A
// child that exits without the line fails the test. When the test ends the child's
// stdin is closed, which ends ServeAsChild, and the child is waited for.
func StartChild(t testing.TB, test, env string) (addr string, stderr *LockedBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr = new(LockedBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
		t.Logf("child: %s", sc.Text())
	}
	if addr == "" {
		t.Fatalf("child did not start: %s", stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	return addr, stderr
}

// ServeAsChild tells StartChild the child serves at addr and blocks until the parent
// closes the child's stdin (its test has ended). The child then closes what it serves
// and exits.
func ServeAsChild(addr string) {
	fmt.Println("ADDR", addr)
	io.Copy(io.Discard, os.Stdin)
}

// ExitChild ends a child of StartChild that could not start what it serves: it prints
// what failed and err on stdout, where StartChild logs them, and exits with status 1.
func ExitChild(what string, err error) {
	fmt.Println(what+":", err)
	os.Exit(1)
}

// LowerFileLimit sets this process's RLIMIT_NOFILE, soft and hard, to the number of
// descriptors open now (counted in /proc/self/fd) plus extra. It is for a child of
// StartChild: the limit cannot be raised again.
func LowerFileLimit(extra int) error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("cannot count open descriptors: %w", err)
	}
	n := uint64(len(entries) + extra)
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n})
}
