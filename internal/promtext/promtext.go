// Package promtext tidies the Prometheus text exposition that
// github.com/VictoriaMetrics/metrics writes so that it passes `promtool check metrics`:
// it fills in HELP text, types monotonic "_total" gauges as counters and renames the
// few series whose names break Prometheus naming rules. The gateway's /metrics and the
// control port's WriteMetrics both go through it. It trades a copy of the text (a
// scan line by line) for not forking the metrics library.
package promtext

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// Rewrite copies the Prometheus text in src to w. An empty HELP line gets help(family)
// (a HELP text a writer gave is kept); a "_total" family typed gauge is typed counter;
// families and series named in renames are renamed. renames may be nil.
func Rewrite(w io.Writer, src []byte, help func(family string) string, renames map[string]string) {
	rename := func(name string) string {
		if to, ok := renames[name]; ok {
			return to
		}
		return name
	}
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	bw := bufio.NewWriter(w)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# HELP "):
			fam, text, _ := strings.Cut(line[len("# HELP "):], " ")
			fam = rename(fam)
			if strings.TrimSpace(text) == "" {
				text = help(fam)
			}
			line = "# HELP " + fam + " " + text
		case strings.HasPrefix(line, "# TYPE "):
			fam, typ, _ := strings.Cut(line[len("# TYPE "):], " ")
			fam = rename(fam)
			if typ == "gauge" && strings.HasSuffix(fam, "_total") {
				typ = "counter"
			}
			line = "# TYPE " + fam + " " + typ
		default:
			if end := strings.IndexAny(line, "{ "); end > 0 {
				if to, ok := renames[line[:end]]; ok {
					line = to + line[end:]
				}
			}
		}
		bw.WriteString(line)
		bw.WriteByte('\n')
	}
	bw.Flush()
}
