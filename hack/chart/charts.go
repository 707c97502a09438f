package main

import (
	"fmt"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// cdf is the empirical distribution of samples: (value, fraction at or
// below it).
func cdf(samples []float64) plotter.XYs {
	s := slices.Clone(samples)
	slices.Sort(s)
	xys := make(plotter.XYs, 0, len(s)+1)
	if len(s) > 0 {
		xys = append(xys, plotter.XY{X: s[0], Y: 0})
	}
	for i, v := range s {
		xys = append(xys, plotter.XY{X: v, Y: float64(i+1) / float64(len(s))})
	}
	return xys
}

func stepLine(xys plotter.XYs, c color.Color, dashed bool) (*plotter.Line, error) {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil, err
	}
	l.StepStyle = plotter.PostStep
	l.Color = c
	l.Width = vg.Points(1.5)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	return l, nil
}

// latencyFigure: CDFs of sandbox ready, pod ready and teardown per handler,
// with the CNI floor's where it has one.
func latencyFigure(r *results) (figure, error) {
	f := figure{width: 30 * vg.Centimeter, height: 10 * vg.Centimeter, legend: newLegend(), legendWidth: 4.2 * vg.Centimeter}
	panels := []struct{ metric, title string }{
		{"sandbox_ready", "sandbox ready (CNI network)"},
		{"pod_ready", "pod ready (sandbox + 1 container)"},
		{"teardown", "teardown (stop + remove)"},
	}
	inLegend := map[string]bool{}
	for _, pn := range panels {
		p := newPlot(pn.title, "latency (ms)", "fraction of pods at or below")
		p.Y.Min, p.Y.Max = 0, 1
		for _, h := range r.HandlerOrder {
			s := r.Samples[h][pn.metric]
			if len(s) == 0 {
				continue
			}
			l, err := stepLine(cdf(s), r.color(h), false)
			if err != nil {
				return f, err
			}
			p.Add(l)
			if !inLegend[h] {
				f.legend.Add(fmt.Sprintf("%s (n=%d)", h, len(s)), l)
				inLegend[h] = true
			}
		}
		if s := r.FloorSamples[pn.metric]; len(s) > 0 {
			l, err := stepLine(cdf(s), floorColor, true)
			if err != nil {
				return f, err
			}
			p.Add(l)
			if !inLegend["floor"] {
				f.legend.Add(fmt.Sprintf("CNI floor (n=%d)", len(s)), l)
				inLegend["floor"] = true
			}
		}
		p.X.Min = 0
		f.panels = append(f.panels, p)
	}
	return f, nil
}

// memoryFigure: PSS per pod against live pods, per handler, on a log
// axis (a shared shim's pods sit an order of magnitude below).
func memoryFigure(r *results) (figure, error) {
	f := figure{width: 18 * vg.Centimeter, height: 11 * vg.Centimeter, legend: newLegend(), legendWidth: 3.6 * vg.Centimeter}
	p := newPlot(fmt.Sprintf("PSS per pod: shims (each once) + pause, %s", r.Date), "live pods per handler", "PSS per pod (kB, log scale)")
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, h := range r.HandlerOrder {
		pts := r.Memory[h]
		if len(pts) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(pts))
		for i, pt := range pts {
			xys[i] = plotter.XY{X: pt[0], Y: pt[1]}
			if pt[1] > 0 {
				lo, hi = math.Min(lo, pt[1]), math.Max(hi, pt[1])
			}
		}
		l, s, err := plotter.NewLinePoints(xys)
		if err != nil {
			return f, err
		}
		l.Color, l.Width = r.color(h), vg.Points(1.5)
		s.Color, s.Shape, s.Radius = r.color(h), draw.CircleGlyph{}, vg.Points(2.5)
		p.Add(l, s)
		f.legend.Add(h, l, s)
	}
	if math.IsInf(lo, 1) {
		return f, fmt.Errorf("no memory samples")
	}
	p.Y.Scale = plot.LogScale{}
	p.Y.Min, p.Y.Max = logRange(lo, hi)
	p.Y.Tick.Marker = plot.TickerFunc(logTicks)
	p.X.Min = 0
	p.X.Max = float64(r.Pods) * 1.02
	f.panels = []*plot.Plot{p}
	return f, nil
}

// headline are the ratios the targets chart shows, with their axis names.
var headline = []struct{ key, name string }{
	{"sandbox_ready_p50", "sandbox ready\np50"},
	{"sandbox_ready_p99", "sandbox ready\np99"},
	{"pod_ready_p50", "pod ready\np50"},
	{"teardown_p50", "teardown\np50"},
	{"pss_per_pod", "PSS\nper pod"},
	{"p99_growth_vs_runc", "p99 growth 10→N\nover runc's"},
}

// targetsFigure: each handler's headline ratios to runc as bars, each with
// its target as a black bar across it (lower is better), and runc at 1.
func targetsFigure(r *results) (figure, error) {
	f := figure{width: 24 * vg.Centimeter, height: 11 * vg.Centimeter, legend: newLegend(), legendWidth: 4.6 * vg.Centimeter}
	p := newPlot(fmt.Sprintf("ratio to runc (lower is better), %d live pods per handler", r.Pods), "", "ratio to runc")
	var names []string
	for _, m := range headline {
		names = append(names, m.name)
	}
	p.NominalX(names...)
	p.X.Tick.Label.Font.Size = vg.Points(9)

	var others []string
	for _, h := range r.HandlerOrder[1:] {
		if r.Ratio[h] != nil {
			others = append(others, h)
		}
	}
	width := vg.Points(18)
	top := 1.1
	marks := &targetMarks{width: width + vg.Points(6)}
	for i, h := range others {
		var vs plotter.Values
		var labels plotter.XYLabels
		for j, m := range headline {
			v := r.Ratio[h][m.key]
			vs = append(vs, v)
			text := fmt.Sprintf("%.2f", v)
			if v == 0 {
				text = "n/a"
			}
			labels.XYs = append(labels.XYs, plotter.XY{X: float64(j), Y: v})
			labels.Labels = append(labels.Labels, text)
			top = math.Max(top, v)
		}
		bars, err := plotter.NewBarChart(vs, width)
		if err != nil {
			return f, err
		}
		offset := (vg.Length(i) - vg.Length(len(others)-1)/2) * (width + vg.Points(2))
		bars.Offset = offset
		bars.Color = r.color(h)
		bars.LineStyle.Width = 0
		text, err := plotter.NewLabels(labels)
		if err != nil {
			return f, err
		}
		for k := range text.TextStyle {
			text.TextStyle[k].Font.Size = vg.Points(8)
			text.TextStyle[k].XAlign = draw.XCenter
		}
		text.Offset = vg.Point{X: offset, Y: vg.Points(3)}
		p.Add(bars, text)
		f.legend.Add(h+" / runc", bars)
		for _, v := range r.Targets {
			if v.Handler != h {
				continue
			}
			for j, m := range headline {
				if m.key == v.Key {
					marks.at = append(marks.at, targetMark{x: float64(j), offset: offset, y: v.Max})
					top = math.Max(top, v.Max)
				}
			}
		}
	}
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Color = color.Gray{Y: 0x70}
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	one.XMin, one.XMax = -0.5, float64(len(headline))-0.5
	p.Add(one, marks)
	f.legend.Add("target (at most)", marks)
	f.legend.Add("runc = 1", one)
	p.Y.Min, p.Y.Max = 0, top*1.12
	p.X.Min, p.X.Max = -0.5, float64(len(headline))-0.5
	f.panels = []*plot.Plot{p}
	return f, nil
}

// targetMarks draw each target as a short thick line across its bar.
type targetMarks struct {
	width vg.Length
	at    []targetMark
}

type targetMark struct {
	x, y   float64
	offset vg.Length
}

var markStyle = draw.LineStyle{Color: color.Black, Width: vg.Points(2.5)}

func (t *targetMarks) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	for _, m := range t.at {
		x, y := tx(m.x)+m.offset, ty(m.y)
		c.StrokeLine2(markStyle, x-t.width/2, y, x+t.width/2, y)
	}
}

func (t *targetMarks) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(markStyle, c.Min.X, y, c.Max.X, y)
}
