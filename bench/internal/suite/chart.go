package suite

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// bar is one ratio of the chart: dirstore against one contender on one row.
type bar struct {
	label string
	ratio float64
	goal  float64 // 0 if none
	group string
}

var (
	fasterColor = color.RGBA{R: 0x2a, G: 0x9d, B: 0x8f, A: 0xff}
	slowerColor = color.RGBA{R: 0xe7, G: 0x6f, B: 0x51, A: 0xff}
	gridColor   = color.Gray{Y: 0xcc}
)

// writeChart draws every ratio as a horizontal bar on a logarithmic axis
// around 1 (right: dirstore faster), with the goals as black ticks.
func writeChart(path string, m *Machine, outcomes []*Outcome) error {
	p, n, err := ratioPlot(chartTitle(m), outcomes)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return p.Save(10*vg.Inch, barsHeight(n), path)
}

func chartTitle(m *Machine) string {
	return fmt.Sprintf("dirstore ÷ alternative, median throughput (right of 1: dirstore faster; black tick: goal)\n%s, %d cores, %s, %s",
		m.CPU, m.Cores, shortFS(m.FS), m.Date.UTC().Format("2006-01-02"))
}

func barsHeight(n int) vg.Length { return vg.Length(n)*vg.Points(13) + vg.Inch }

// ratioPlot is the chart of outcomes' ratios, and its number of bars.
func ratioPlot(title string, outcomes []*Outcome) (*plot.Plot, int, error) {
	var bars []bar
	for _, o := range outcomes {
		if o.Err != nil {
			continue
		}
		for _, s := range o.Others {
			b := bar{
				label: fmt.Sprintf("%s: %s vs %s", o.Row.Group, o.Row.short(), s.Name),
				ratio: ratio(o.Ours, s),
				group: o.Row.Group,
			}
			for _, g := range o.Row.Goals {
				if g.Against == s.Name {
					b.goal = g.Min
				}
			}
			bars = append(bars, b)
		}
	}
	if len(bars) == 0 {
		return nil, 0, fmt.Errorf("nothing to draw")
	}

	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.Text = "ratio (log scale)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = ratioTicks{}
	p.Y.Tick.Label.Font.Size = vg.Points(7.5)
	p.X.Tick.Label.Font.Size = vg.Points(8)

	labels := make([]string, len(bars))
	for i, b := range bars {
		labels[len(bars)-1-i] = b.label
	}
	rb := &ratioBars{bars: bars, style: p.Y.Tick.Label}
	p.Add(rb)
	p.NominalY(labels...)
	lo, hi := rb.xRange()
	p.X.Min, p.X.Max = lo, hi
	return p, len(bars), nil
}

func shortFS(fs string) string {
	for i, c := range fs {
		if c == ' ' {
			return fs[:i]
		}
	}
	return fs
}

// ratioBars is a plot.Plotter of bars from 1 to each ratio.
type ratioBars struct {
	bars  []bar
	style text.Style
}

func (r *ratioBars) xRange() (lo, hi float64) {
	lo, hi = 1, 1
	for _, b := range r.bars {
		for _, v := range []float64{b.ratio, b.goal} {
			if v > 0 && !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	return lo / 3, hi * 3
}

// DataRange implements plot.DataRanger.
func (r *ratioBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	lo, hi := r.xRange()
	return lo, hi, -0.5, float64(len(r.bars)) - 0.5
}

// Plot implements plot.Plotter.
func (r *ratioBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	n := len(r.bars)
	x1 := trX(1)
	for i, b := range r.bars {
		y := float64(n - 1 - i)
		// a faint line between groups
		if i > 0 && r.bars[i-1].group != b.group {
			yy := trY(y + 0.5)
			c.StrokeLine2(draw.LineStyle{Color: gridColor, Width: vg.Points(0.5)}, c.Min.X, yy, c.Max.X, yy)
		}
		if math.IsNaN(b.ratio) || b.ratio <= 0 {
			continue
		}
		xr := trX(b.ratio)
		clr := fasterColor
		if b.ratio < 1 {
			clr = slowerColor
		}
		y0, y1 := trY(y-0.35), trY(y+0.35)
		c.FillPolygon(clr, []vg.Point{{X: x1, Y: y0}, {X: xr, Y: y0}, {X: xr, Y: y1}, {X: x1, Y: y1}})
		if b.goal > 0 {
			gx := trX(b.goal)
			c.StrokeLine2(draw.LineStyle{Color: color.Black, Width: vg.Points(1.5)}, gx, trY(y-0.48), gx, trY(y+0.48))
		}
		sty := r.style
		sty.YAlign = text.YCenter
		pt := vg.Point{X: xr + vg.Points(3), Y: trY(y)}
		sty.XAlign = text.XLeft
		if b.ratio < 1 {
			pt.X = xr - vg.Points(3)
			sty.XAlign = text.XRight
		}
		c.FillText(sty, pt, fmtRatio(b.ratio))
	}
	c.StrokeLine2(draw.LineStyle{Color: color.Black, Width: vg.Points(0.75)}, x1, c.Min.Y, x1, c.Max.Y)
}

// ratioTicks marks 1-2-5 steps on the logarithmic ratio axis.
type ratioTicks struct{}

// Ticks implements plot.Ticker.
func (ratioTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			ts = append(ts, plot.Tick{Value: v, Label: fmt.Sprintf("%gx", v)})
		}
	}
	return ts
}
