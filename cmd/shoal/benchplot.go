package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// The plots of the bench, as SVG files (fonts referenced, not embedded).

const plotWidth, plotHeight = 16 * vg.Centimeter, 10 * vg.Centimeter

// writePutPlot draws ops/s against writers, both on log scales, for each
// contender of a bench put run.
func writePutPlot(path string, rep *putReport) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Durable %d B writes, embedded", rep.ValueSize)
	p.X.Label.Text = "concurrent writers (log scale)"
	p.Y.Label.Text = "writes/s (log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	var ticks plot.ConstantTicks
	for _, w := range rep.Writers {
		ticks = append(ticks, plot.Tick{Value: float64(w), Label: strconv.Itoa(w)})
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = 1, 10 // an empty axis (a log scale needs one)
	if len(rep.Writers) > 0 {
		p.X.Min, p.X.Max = float64(slices.Min(rep.Writers))/1.5, float64(slices.Max(rep.Writers))*1.5
	}
	p.Y.Tick.Marker = log125Ticks{label: countLabel}
	placeLegend(p)
	p.Add(plotter.NewGrid())
	var series []any
	bottom, top := math.Inf(1), 0.0
	labels := map[string]string{"shoal": "shoal node.Put", "raw": "raw group commit", "bbolt": "bbolt", "raw-z": "raw, zero-filled ahead"}
	for _, name := range []string{"shoal", "raw", "bbolt", "raw-z"} {
		var xys plotter.XYs
		for _, r := range rep.Results {
			if r.Contender == name && r.OpsPerSec > 0 {
				xys = append(xys, plotter.XY{X: float64(r.Writers), Y: r.OpsPerSec})
				bottom, top = min(bottom, r.OpsPerSec), max(top, r.OpsPerSec)
			}
		}
		if len(xys) > 0 {
			series = append(series, labels[name], xys)
		}
	}
	if err := plotutil.AddLinePoints(p, series...); err != nil {
		return err
	}
	p.Y.Min, p.Y.Max = 1, 10 // an empty axis (a log scale needs one)
	if top > 0 {
		p.Y.Min, p.Y.Max = bottom/1.5, top*4 // room for the legend
	}
	return savePlot(p, path)
}

// placeLegend puts the legend in the top left corner, inside the axes.
func placeLegend(p *plot.Plot) {
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), -vg.Points(4)
	p.Legend.Padding = vg.Points(2)
}

// cdfSeries is one latency distribution of a CDF plot.
type cdfSeries struct {
	label string
	lat   []time.Duration // sorted
}

// cdfGoal is a p99 goal drawn on a CDF plot: a vertical line at its
// latency.
type cdfGoal struct {
	label string
	ms    float64
}

// writeCDFPlot draws the cumulative distribution of each series'
// latencies, on a log scale of milliseconds, with a line at the 99th
// percentile and one at each goal.
func writeCDFPlot(path, title string, series []cdfSeries, goals []cdfGoal) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "ack → visible on every node (ms, log scale)"
	p.Y.Label.Text = "fraction of writes"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = log125Ticks{label: func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }}
	p.Y.Min, p.Y.Max = 0, 1.2 // room for the legend
	p.Y.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0"}, {Value: 0.25, Label: "0.25"}, {Value: 0.5, Label: "0.5"},
		{Value: 0.75, Label: "0.75"}, {Value: 0.99, Label: "0.99"}}
	placeLegend(p)
	p.Add(plotter.NewGrid())
	var lines []any
	lo, hi := math.Inf(1), 0.0
	for _, s := range series {
		xys := cdfPoints(s.lat, 500)
		if len(xys) == 0 {
			continue
		}
		lo, hi = min(lo, xys[0].X), max(hi, xys[len(xys)-1].X)
		lines = append(lines, s.label, xys)
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return err
	}
	for _, g := range goals {
		lo, hi = min(lo, g.ms), max(hi, g.ms)
	}
	if hi == 0 { // nothing to draw: an empty axis (a log scale needs one)
		p.X.Min, p.X.Max = 1, 10
		return savePlot(p, path)
	}
	lo, hi = lo/1.5, hi*1.5
	p.X.Min, p.X.Max = lo, hi
	gray := color.Gray{Y: 120}
	p99, err := plotter.NewLine(plotter.XYs{{X: lo, Y: 0.99}, {X: hi, Y: 0.99}})
	if err != nil {
		return err
	}
	p99.Color, p99.Dashes = gray, []vg.Length{vg.Points(1), vg.Points(2)}
	p.Add(p99)
	for k, g := range goals {
		l, err := plotter.NewLine(plotter.XYs{{X: g.ms, Y: 0}, {X: g.ms, Y: 1}})
		if err != nil {
			return err
		}
		l.Color, l.Dashes = gray, plotutil.Dashes(k+1)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(g.label, l)
	}
	return savePlot(p, path)
}

// minPlotMs is where the log-scale axis starts at the least: smaller
// latencies (a write can show everywhere before its acknowledgement
// reaches the bench: 0) are drawn there.
const minPlotMs = 0.1

// cdfPoints samples the CDF of sorted latencies at up to n points, each
// (latency in ms, fraction of latencies at or below it).
func cdfPoints(sorted []time.Duration, n int) plotter.XYs {
	if len(sorted) == 0 {
		return nil
	}
	ms := func(d time.Duration) float64 { return max(minPlotMs, float64(d)/float64(time.Millisecond)) }
	var xys plotter.XYs
	step := max(1, len(sorted)/n)
	for i := 0; i < len(sorted); i += step {
		xys = append(xys, plotter.XY{X: ms(sorted[i]), Y: float64(i+1) / float64(len(sorted))})
	}
	xys = append(xys, plotter.XY{X: ms(sorted[len(sorted)-1]), Y: 1})
	return xys
}

func savePlot(p *plot.Plot, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return p.Save(plotWidth, plotHeight, path)
}

// log125Ticks marks a log axis at 1, 2 and 5 times the powers of ten.
type log125Ticks struct {
	label func(float64) string
}

// Over more than three decades only the powers of ten are labelled.
func (t log125Ticks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	wide := hi/lo > 1000
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			tick := plot.Tick{Value: v}
			if m == 1 || !wide {
				tick.Label = t.label(v)
			}
			ticks = append(ticks, tick)
		}
	}
	return ticks
}

// countLabel prints a count like 500, 20k or 1M.
func countLabel(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
