package suite

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// A saved run is what -json writes and -merge reads: one run of the suite on
// one file system, for the file-system matrix (fsmatrix.sh), which runs the
// suite once per file system and then merges the runs into one table per
// file system and one chart with a panel per file system.
type savedRun struct {
	Label        string // the file system, as the matrix names it
	Machine      *Machine
	Command      string
	Rounds       int
	Budget       time.Duration
	EngineBudget time.Duration
	Rows         []savedOutcome
}

type savedOutcome struct {
	Group, Op, Short, Note, Report string
	Unit                           Unit
	Goals                          []Goal
	Ours                           savedSeries
	Others                         []savedSeries
	Err                            string `json:",omitempty"`
}

type savedSeries struct {
	Name     string
	Rates    []float64
	Deferred []float64 `json:",omitempty"`
	Err      string    `json:",omitempty"`
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func textErr(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
}

func saveSeries(s Series) savedSeries {
	return savedSeries{Name: s.Name, Rates: s.Rates, Deferred: s.Deferred, Err: errText(s.Err)}
}

func (s savedSeries) series() Series {
	return Series{Name: s.Name, Rates: s.Rates, Deferred: s.Deferred, Err: textErr(s.Err)}
}

// writeJSON saves a run to path.
func writeJSON(path, label string, m *Machine, cmd string, outcomes []*Outcome, rounds int, budget, ebudget time.Duration) error {
	run := savedRun{Label: label, Machine: m, Command: cmd, Rounds: rounds, Budget: budget, EngineBudget: ebudget}
	for _, o := range outcomes {
		so := savedOutcome{Group: o.Row.Group, Op: o.Row.Op, Short: o.Row.Short, Note: o.Row.Note, Report: o.Report,
			Unit: o.Row.Unit, Goals: o.Row.Goals, Ours: saveSeries(o.Ours), Err: errText(o.Err)}
		for _, s := range o.Others {
			so.Others = append(so.Others, saveSeries(s))
		}
		run.Rows = append(run.Rows, so)
	}
	b, err := json.MarshalIndent(run, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string) (*savedRun, []*Outcome, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var run savedRun
	if err := json.Unmarshal(b, &run); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	var outcomes []*Outcome
	for _, so := range run.Rows {
		o := &Outcome{
			Row:    &Row{Group: so.Group, Op: so.Op, Short: so.Short, Note: so.Note, Unit: so.Unit, Goals: so.Goals},
			Ours:   so.Ours.series(),
			Err:    textErr(so.Err),
			Report: so.Report,
		}
		for _, s := range so.Others {
			o.Others = append(o.Others, s.series())
		}
		outcomes = append(outcomes, o)
	}
	return &run, outcomes, nil
}

// merge reads the runs saved in paths and writes a markdown section per run
// to w, and a chart with a panel per run to svgPath ("-" for none).
func merge(w io.Writer, paths []string, svgPath string) error {
	var plots [][]*plot.Plot
	var height vg.Length
	for _, path := range paths {
		run, outcomes, err := readJSON(path)
		if err != nil {
			return err
		}
		label := run.Label
		if label == "" {
			label = shortFS(run.Machine.FS)
		}
		fmt.Fprintf(w, "\n## %s\n\n", label)
		writeMarkdown(w, run.Machine, run.Command, outcomes, run.Rounds, run.Budget, run.EngineBudget)
		if svgPath == "-" {
			continue
		}
		p, n, err := ratioPlot(fmt.Sprintf("%s: dirstore ÷ alternative (right of 1: dirstore faster; black tick: goal), %s",
			label, run.Machine.Date.UTC().Format("2006-01-02")), outcomes)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		plots = append(plots, []*plot.Plot{p})
		height = max(height, barsHeight(n))
	}
	if svgPath == "-" || len(plots) == 0 {
		return nil
	}
	c := vgsvg.New(10*vg.Inch, height*vg.Length(len(plots)))
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(12)}
	for i, row := range plot.Align(plots, tiles, dc) {
		plots[i][0].Draw(row[0])
	}
	if err := os.MkdirAll(filepath.Dir(svgPath), 0o755); err != nil {
		return err
	}
	f, err := os.Create(svgPath)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// splitList splits a comma-separated flag value.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
