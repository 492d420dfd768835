package promtext

import (
	"strings"
	"testing"
)

func TestRewrite(t *testing.T) {
	src := "# HELP a_total\n# TYPE a_total gauge\na_total 1\n" +
		"# HELP b kept text\n# TYPE b gauge\nb 2\n" +
		"# HELP old_count\n# TYPE old_count counter\nold_count{x=\"1\"} 3\n"
	var out strings.Builder
	Rewrite(&out, []byte(src), func(f string) string { return "help of " + f + "." },
		map[string]string{"old_count": "new_total"})
	want := "# HELP a_total help of a_total.\n# TYPE a_total counter\na_total 1\n" + // filled in; a _total gauge is a counter
		"# HELP b kept text\n# TYPE b gauge\nb 2\n" + // a writer's text is kept
		"# HELP new_total help of new_total.\n# TYPE new_total counter\nnew_total{x=\"1\"} 3\n" // renamed everywhere
	if out.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
