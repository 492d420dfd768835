package memtest

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// linePrefix starts every line a child prints for the orchestrator.
const linePrefix = "memtest: "

// line is one parsed child line: a kind and its key=value fields.
type line struct {
	kind   string
	fields map[string]string
}

// int64 returns the integer field key, or 0 if it is absent or malformed.
func (l line) int64(key string) int64 {
	v, _ := strconv.ParseInt(l.fields[key], 10, 64)
	return v
}

// parseLine parses "memtest: KIND k=v k="quoted v" ...". It reports false for a line
// without the prefix (free-form child output) or with a malformed field.
func parseLine(s string) (line, bool) {
	rest, ok := strings.CutPrefix(s, linePrefix)
	if !ok {
		return line{}, false
	}
	kind, rest, _ := strings.Cut(rest, " ")
	l := line{kind: kind, fields: make(map[string]string)}
	for rest = strings.TrimLeft(rest, " "); rest != ""; rest = strings.TrimLeft(rest, " ") {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" {
			return line{}, false
		}
		var val string
		if strings.HasPrefix(after, `"`) {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return line{}, false
			}
			val, _ = strconv.Unquote(q)
			rest = after[len(q):]
		} else {
			val, rest, _ = strings.Cut(after, " ")
		}
		l.fields[key] = val
	}
	return l, l.kind != ""
}

// lineWriter prints protocol lines; it is safe for concurrent use, so a line is never
// interleaved with another.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// emit prints one line of kind with the key/value pairs kv (alternating). Values
// containing spaces, quotes or nothing at all are quoted.
func (lw *lineWriter) emit(kind string, kv ...any) {
	if len(kv)%2 != 0 {
		panic("BUG: memtest: emit needs key/value pairs")
	}
	var b strings.Builder
	b.WriteString(linePrefix)
	b.WriteString(kind)
	for i := 0; i < len(kv); i += 2 {
		v := fmt.Sprint(kv[i+1])
		if v == "" || strings.ContainsAny(v, " \"=\n\t") {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(&b, " %v=%s", kv[i], v)
	}
	b.WriteByte('\n')
	lw.mu.Lock()
	defer lw.mu.Unlock()
	_, _ = io.WriteString(lw.w, b.String())
}

// raw prints s as a line of its own.
func (lw *lineWriter) raw(s string) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	_, _ = io.WriteString(lw.w, s+"\n")
}
