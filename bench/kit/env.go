package kit

import (
	"fmt"
	"math"
	"runtime"
	"time"
)

// Env describes the machine and toolchain of a run; every report starts with it.
type Env struct {
	GoVersion  string
	GOOS       string
	GOARCH     string
	NumCPU     int
	GOMAXPROCS int
	CPUModel   string
	Kernel     string
	NoFile     uint64
	Started    time.Time
}

// CurrentEnv returns this machine's Env. It raises the soft open-files limit to the
// hard one (see FileLimit), which NoFile records.
func CurrentEnv() Env {
	_, hard := FileLimit()
	return Env{
		GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), CPUModel: cpuModel(), Kernel: kernelRelease(), NoFile: hard,
		Started: time.Now().UTC().Truncate(time.Second),
	}
}

// Machine renders e on one line, the "machine:" line of every report:
// "AMD EPYC, nproc 2, GOMAXPROCS 2, go1.26.8 linux/amd64, kernel 6.18, open files 20000".
func (e Env) Machine() string {
	return fmt.Sprintf("%s, nproc %d, GOMAXPROCS %d, %s %s/%s, kernel %s, open files %d",
		e.CPUModel, e.NumCPU, e.GOMAXPROCS, e.GoVersion, e.GOOS, e.GOARCH, e.Kernel, e.NoFile)
}

// FormatBytes renders a byte count with a binary unit: "3.42 KiB". Negative counts
// (RSS can shrink at a tiny N) keep their sign.
func FormatBytes(b float64) string {
	abs := math.Abs(b)
	switch {
	case abs >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case abs >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case abs >= 1<<10:
		return fmt.Sprintf("%.2f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
