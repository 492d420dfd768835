package kit

import (
	"bufio"
	"fmt"
	"io"
	"sync"
)

// Logger prints an orchestrator's log lines, its children's output among them, on W;
// on a terminal (TTY) it also keeps one live progress line at the bottom, cleared
// before each log line. A nil Logger or one without W prints nothing. Its methods
// may be called from any goroutine: a line is never interleaved with another.
type Logger struct {
	W   io.Writer
	TTY bool

	mu       sync.Mutex
	progress bool // a progress line is on screen
}

// Printf prints one log line.
func (l *Logger) Printf(format string, args ...any) {
	if l == nil || l.W == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.progress {
		fmt.Fprint(l.W, "\r\033[K")
		l.progress = false
	}
	fmt.Fprintf(l.W, format+"\n", args...)
}

// Line prints s as one log line; it is the logf a StartChild wants.
func (l *Logger) Line(s string) { l.Printf("%s", s) }

// Status shows s as the live progress line on a terminal; elsewhere it is dropped,
// so logs stay readable.
func (l *Logger) Status(s string) {
	if l == nil || l.W == nil || !l.TTY {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprint(l.W, "\r\033[K"+s)
	l.progress = true
}

// EndStatus ends the live progress line.
func (l *Logger) EndStatus() {
	if l == nil || l.W == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.progress {
		fmt.Fprint(l.W, "\n")
		l.progress = false
	}
}

// Prefixed returns a writer that logs each line written to it with the prefix
// "[name] ".
func (l *Logger) Prefixed(name string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l.Printf("[%s] %s", name, sc.Text())
		}
	}()
	return pw
}
