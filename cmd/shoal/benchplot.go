package main

import (
	"fmt"
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

// writePutPlot draws ops/s against writers (log scale) for each contender
// of a bench put run.
func writePutPlot(path string, rep *putReport) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Durable %d B writes, embedded", rep.ValueSize)
	p.X.Label.Text = "concurrent writers"
	p.Y.Label.Text = "writes/s"
	p.X.Scale = plot.LogScale{}
	var ticks plot.ConstantTicks
	for _, w := range rep.Writers {
		ticks = append(ticks, plot.Tick{Value: float64(w), Label: strconv.Itoa(w)})
	}
	p.X.Tick.Marker = ticks
	if len(rep.Writers) > 0 {
		p.X.Min, p.X.Max = float64(slices.Min(rep.Writers))/1.5, float64(slices.Max(rep.Writers))*1.5
	}
	p.Y.Tick.Marker = countTicks{}
	placeLegend(p)
	p.Add(plotter.NewGrid())
	var series []any
	top := 0.0
	labels := map[string]string{"shoal": "shoal node.Put", "raw": "raw group commit", "bbolt": "bbolt"}
	for _, name := range []string{"shoal", "raw", "bbolt"} {
		var xys plotter.XYs
		for _, r := range rep.Results {
			if r.Contender == name {
				xys = append(xys, plotter.XY{X: float64(r.Writers), Y: r.OpsPerSec})
				top = max(top, r.OpsPerSec)
			}
		}
		if len(xys) > 0 {
			series = append(series, labels[name], xys)
		}
	}
	if err := plotutil.AddLinePoints(p, series...); err != nil {
		return err
	}
	p.Y.Min, p.Y.Max = 0, top*1.25 // room for the legend
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

// writeCDFPlot draws the cumulative distribution of each series'
// latencies, on a log scale of milliseconds.
func writeCDFPlot(path, title string, series []cdfSeries) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "ack → visible on every node (ms, log scale)"
	p.Y.Label.Text = "fraction of writes"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = msTicks{}
	p.Y.Min, p.Y.Max = 0, 1.15 // room for the legend
	placeLegend(p)
	p.Add(plotter.NewGrid())
	var lines []any
	for _, s := range series {
		xys := cdfPoints(s.lat, 500)
		if len(xys) == 0 {
			continue
		}
		lines = append(lines, s.label, xys)
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return err
	}
	return savePlot(p, path)
}

// minPlotMs is where the log-scale axis starts: smaller latencies are
// drawn there.
const minPlotMs = 0.01

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

// msTicks marks a log axis of milliseconds at 1, 2, 5 times powers of ten.
type msTicks struct{}

func (msTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow10(int(e)) <= hi*10; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow10(int(e))
			if v < lo || v > hi {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		}
	}
	return ticks
}

// countTicks is the default linear ticker with labels like 12k.
type countTicks struct{}

func (countTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label == "" {
			continue
		}
		v := ticks[i].Value
		switch {
		case v >= 1e6:
			ticks[i].Label = strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
		case v >= 1e3:
			ticks[i].Label = strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
		default:
			ticks[i].Label = strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	return ticks
}
