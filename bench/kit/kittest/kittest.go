// Package kittest helps the tests of the measurement tools run their own test
// binary as the tool's child processes.
package kittest

import (
	"io"
	"os"
	"strings"
	"testing"
)

// ChildMain is for TestMain: when the environment variable env is "1", this test
// binary was started as a child of the tool under test, so it runs main with the
// command line and exits; otherwise it runs the tests.
func ChildMain(m *testing.M, env string, main func(args []string, stdin io.Reader, stdout, stderr io.Writer) int) {
	if os.Getenv(env) == "1" {
		os.Exit(main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// ChildEnv returns this process's environment with env=1, for the children.
func ChildEnv(env string) []string { return append(os.Environ(), env+"=1") }

// Log is an io.Writer that passes what the tool and its children print to t.Log.
type Log struct{ T testing.TB }

func (w Log) Write(p []byte) (int, error) {
	w.T.Helper()
	w.T.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
