package floor

import "testing"

// TestProbeSmoke runs the probe at a tiny size: it checks that every figure is
// measured, not what it is.
func TestProbeSmoke(t *testing.T) {
	res, err := Probe(Config{N: 500, Rounds: 3, Accepts: 500})
	if err != nil {
		t.Fatal(err)
	}
	if res.Write <= 0 || res.ReadWrite <= 0 || res.EpollReadWrite <= 0 || res.Accept <= 0 || res.AcceptRate <= 0 {
		t.Errorf("a figure is missing: %+v", res)
	}
	if res.WriteWall <= 0 || res.ReadWriteWall <= 0 {
		t.Errorf("a wall time is missing: %+v", res)
	}
	if res.Text() == "" {
		t.Error("no text")
	}
}
