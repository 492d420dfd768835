package bench

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/tether-gw/tether/bench/kit"
)

// productPackages are what an embedder or an operator builds: none of them may link
// anything that only the bench needs.
var productPackages = []string{
	"github.com/tether-gw/tether/client/...",
	"github.com/tether-gw/tether/server/...",
	"github.com/tether-gw/tether/protocol/...",
	"github.com/tether-gw/tether/timingwheel/...",
	"github.com/tether-gw/tether/cmd/tetherd",
	"github.com/tether-gw/tether/cmd/tetherctl",
}

// benchOnly are the import paths only the bench may link, each with everything
// below it: its own packages, and the plotting and histogram modules with the
// modules they pull in.
var benchOnly = []string{
	"github.com/tether-gw/tether/bench",
	"github.com/tether-gw/tether/cmd/tether-bench",
	"github.com/tether-gw/tether/cmd/tether-memtest",
	"gonum.org/v1/plot",
	"github.com/HdrHistogram/hdrhistogram-go",
	"codeberg.org/go-fonts/liberation",
	"codeberg.org/go-latex/latex",
	"codeberg.org/go-pdf/fpdf",
	"git.sr.ht/~sbinet/gg",
	"github.com/ajstarks/svgo",
	"github.com/golang/freetype",
	"golang.org/x/image",
}

// isBenchOnly reports whether the package path dep is, or is below, a benchOnly path.
func isBenchOnly(dep string) bool {
	for _, p := range benchOnly {
		if dep == p || strings.HasPrefix(dep, p+"/") {
			return true
		}
	}
	return false
}

// TestProductLinksNoBench lists the product packages' dependencies (not their tests')
// with go list -deps and fails on any bench-only one.
func TestProductLinksNoBench(t *testing.T) {
	args := append([]string{"list", "-deps"}, productPackages...)
	out, err := exec.Command(kit.GoTool(), args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/tether-gw/tether/server") {
		t.Fatalf("go list -deps did not list the server: %q", deps)
	}
	for _, dep := range deps {
		if isBenchOnly(dep) {
			t.Errorf("a product package links %s, which only the bench may use (see go list -deps %s)", dep, strings.Join(productPackages, " "))
		}
	}
}

// TestIsBenchOnly checks the matching rule both ways, so the test above can fail.
func TestIsBenchOnly(t *testing.T) {
	f := func(dep string, want bool) {
		t.Helper()
		if got := isBenchOnly(dep); got != want {
			t.Errorf("isBenchOnly(%q) = %v, want %v", dep, got, want)
		}
	}
	f("gonum.org/v1/plot/vg", true)                    // plotting, a subpackage
	f("github.com/HdrHistogram/hdrhistogram-go", true) // histograms
	f("github.com/tether-gw/tether/bench/kit", true)   // the bench's own packages
	f("github.com/tether-gw/tether/bench", true)       // this package
	f("github.com/tether-gw/tether/benchmarks", false) // a longer name is not below bench
	f("github.com/tether-gw/tether/server", false)     // the product
	f("golang.org/x/sys/unix", false)                  // shared by both
}
