package main

import (
	"image/color"
	"io"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// figure is one or more plots side by side, with one legend in a strip of
// its own at the right, clear of every curve.
type figure struct {
	width, height vg.Length
	panels        []*plot.Plot
	legend        plot.Legend
	legendWidth   vg.Length
}

func newLegend() plot.Legend {
	l := plot.NewLegend()
	l.Top, l.Left = true, true
	l.TextStyle.Font.Size = vg.Points(10)
	l.ThumbnailWidth = vg.Points(24)
	l.Padding = vg.Points(3)
	return l
}

// newPlot is a panel with a grid and labelled axes.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(12)
	p.X.Label.Text = x
	p.Y.Label.Text = y
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = vg.Points(10)
		a.Tick.Label.Font.Size = vg.Points(9)
	}
	p.X.Tick.Marker = plot.TickerFunc(linearTicks)
	p.Y.Tick.Marker = plot.TickerFunc(linearTicks)
	p.Add(plotter.NewGrid())
	return p
}

func (f figure) draw(c draw.Canvas) {
	plots := draw.Crop(c, 0, -f.legendWidth, 0, 0)
	tiles := draw.Tiles{Rows: 1, Cols: len(f.panels), PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2}
	for i, p := range f.panels {
		p.Draw(tiles.At(plots, i, 0))
	}
	strip := draw.Crop(c, c.Max.X-c.Min.X-f.legendWidth+vg.Millimeter*3, 0, 0, -vg.Millimeter*10)
	f.legend.Draw(strip)
}

// save writes path.svg and path.png (150 dpi).
func (f figure) save(path string) error {
	svg := vgsvg.New(f.width, f.height)
	f.draw(draw.New(svg))
	png := vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(f.width, f.height), vgimg.UseDPI(150), vgimg.UseBackgroundColor(white))}
	f.draw(draw.New(png))
	if err := writeTo(path+".svg", svg); err != nil {
		return err
	}
	return writeTo(path+".png", png)
}

var white = color.White

type writerTo interface {
	WriteTo(w io.Writer) (int64, error)
}

func writeTo(path string, c writerTo) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(out); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// logTicks label 1, 2 and 5 times each power of ten in range, with
// unlabelled ticks between: a log axis that is read without counting
// decades, even over less than one decade.
func logTicks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(min)); math.Pow(10, e) <= max; e++ {
		for m := 1; m < 10; m++ {
			v := float64(m) * math.Pow(10, e)
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// logRange widens [min, max] to whole steps of 1-2-5 so the ends carry labels.
func logRange(min, max float64) (float64, float64) {
	steps := func(e float64) []float64 {
		p := math.Pow(10, e)
		return []float64{p, 2 * p, 5 * p, 10 * p}
	}
	lo := math.Pow(10, math.Floor(math.Log10(min)))
	for _, s := range steps(math.Floor(math.Log10(min))) {
		if s <= min {
			lo = s
		}
	}
	hi := math.Pow(10, math.Ceil(math.Log10(max)))
	for _, s := range steps(math.Floor(math.Log10(max))) {
		if s >= max {
			hi = s
			break
		}
	}
	return lo, hi
}

// linearTicks label every step of 1, 2 or 5 times a power of ten that
// gives at most eight labels, with an unlabelled tick halfway between.
func linearTicks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	step := math.Pow(10, math.Floor(math.Log10(hi-lo)))
	for _, m := range []float64{0.1, 0.2, 0.5, 1} {
		if (hi-lo)/(step*m) <= 8 {
			step *= m
			break
		}
	}
	decimals := max(int(-math.Floor(math.Log10(step)+1e-9)), 0)
	var ticks []plot.Tick
	for k := math.Ceil(lo / step); k*step <= hi+step*1e-9; k++ {
		v := k * step
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals, 64)})
		if half := v + step/2; half <= hi {
			ticks = append(ticks, plot.Tick{Value: half})
		}
	}
	return ticks
}
