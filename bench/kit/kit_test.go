package kit

import (
	"os"
	"testing"
)

func TestFormatBytes(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{512, "512 B"},
		{3.5 * 1024, "3.50 KiB"},
		{-2048, "-2.00 KiB"}, // RSS can shrink at tiny N
		{12.3 * (1 << 20), "12.3 MiB"},
	} {
		if got := FormatBytes(c.in); got != c.want {
			t.Errorf("FormatBytes(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestProc(t *testing.T) {
	cpu, err := ProcCPU(os.Getpid())
	if err != nil || cpu < 0 {
		t.Errorf("ProcCPU = %v, %v", cpu, err)
	}
	m, err := ProcMem(os.Getpid())
	if err != nil || m.RSS <= 0 || m.Anon <= 0 || m.RSS < m.Anon {
		t.Errorf("ProcMem = %+v, %v", m, err)
	}
	if _, err := ProcMem(-1); err == nil {
		t.Error("ProcMem of no process succeeded")
	}
	if e := CurrentEnv(); e.NumCPU <= 0 || e.Machine() == "" {
		t.Errorf("CurrentEnv = %+v", e)
	}
}
