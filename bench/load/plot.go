package load

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// PlotLatency draws each result's latency distribution as percentile against
// latency, the x axis in log scale, to path (.png or .svg by extension). Results
// without latencies are skipped; it returns false when none had any.
func PlotLatency(path, title string, results []*Result) (bool, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "fraction of messages at or below"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top, p.Legend.Left = false, false
	drawn := 0
	for i, r := range results {
		if r.hist == nil || r.hist.Count() == 0 {
			continue
		}
		us, frac := r.hist.CDF()
		pts := make(plotter.XYs, len(us))
		for j := range us {
			pts[j].X, pts[j].Y = math.Max(us[j], 1)/1000, frac[j]
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return false, fmt.Errorf("cannot plot %s: %w", r.Impl, err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(r.Impl, l)
		drawn++
	}
	if drawn == 0 {
		return false, nil
	}
	p.Add(plotter.NewGrid())
	if err := p.Save(7*vg.Inch, 4*vg.Inch, path); err != nil {
		return false, fmt.Errorf("cannot save plot %s: %w", path, err)
	}
	return true, nil
}

// PlotMemory draws each result's RSS growth per connection against the number of
// connections open, sampled while they were being opened, to path.
func PlotMemory(path, title string, results []*Result) (bool, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "authenticated connections"
	p.Y.Label.Text = "server RSS growth per connection (KiB)"
	drawn := 0
	for i, r := range results {
		var pts plotter.XYs
		for _, m := range r.MemSeries {
			if m.Conns < 500 { // one-time costs dominate below this
				continue
			}
			pts = append(pts, plotter.XY{X: float64(m.Conns), Y: float64(m.RSS) / float64(m.Conns) / 1024})
		}
		if r.RSSAfter > 0 && r.Connected > 0 {
			pts = append(pts, plotter.XY{X: float64(r.Connected), Y: r.RSSPerConn / 1024})
		}
		if len(pts) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return false, fmt.Errorf("cannot plot %s: %w", r.Impl, err)
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		s.Shape = plotutil.Shape(i)
		p.Add(l, s)
		p.Legend.Add(r.Impl, l, s)
		drawn++
	}
	if drawn == 0 {
		return false, nil
	}
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{Y: 220}
	g.Horizontal.Color = color.Gray{Y: 220}
	p.Add(g)
	p.Y.Min = 0
	if err := p.Save(7*vg.Inch, 4*vg.Inch, path); err != nil {
		return false, fmt.Errorf("cannot save plot %s: %w", path, err)
	}
	return true, nil
}
