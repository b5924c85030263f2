package suite

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// ratio is dirstore's median rate over a contender's, or NaN.
func ratio(ours, other Series) float64 {
	o, c := ours.Median(), other.Median()
	if math.IsNaN(o) || math.IsNaN(c) || c == 0 {
		return math.NaN()
	}
	return o / c
}

// goalMet reports whether g holds in o, and the ratio it was judged on.
func goalMet(o *Outcome, g Goal) (bool, float64, bool) {
	for _, s := range o.Others {
		if s.Name == g.Against {
			r := ratio(o.Ours, s)
			if math.IsNaN(r) {
				return false, r, false
			}
			return r >= g.Min, r, true
		}
	}
	return false, math.NaN(), false
}

func writeMarkdown(w io.Writer, m *Machine, cmd string, outcomes []*Outcome, rounds int, budget, ebudget time.Duration) {
	fmt.Fprintf(w, "# dirstore against the alternatives\n\n")
	fmt.Fprintf(w, "    %s\n\n", cmd)
	fmt.Fprintf(w, "- date: %s, %s in all\n", m.Date.UTC().Format("2006-01-02 15:04 MST"), m.Elapsed.Round(time.Second))
	fmt.Fprintf(w, "- CPU: %s, %d cores (GOMAXPROCS %d), %.0f GiB RAM\n", m.CPU, m.Cores, m.GOMAXPROCS, m.MemGiB)
	fmt.Fprintf(w, "- kernel: %s\n", m.Kernel)
	fmt.Fprintf(w, "- file system of the bench directory (%s): %s\n", m.Dir, m.FS)
	fmt.Fprintf(w, "- Go: %s; dirstore's default I/O engine: %s\n", m.Go, m.Engine)
	fmt.Fprintf(w, "- file creation (create, write 1 KiB, close, in a new directory; about 12 µs on a rested file system, far more for minutes after mass deletions: see bench/README.md): %s at the start, %s at the end\n", m.CreateStart, m.CreateEnd)
	fmt.Fprintf(w, "- load average (1, 5, 15 min): %s at the start, %s at the end (the machine is shared)\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "- method: %d rounds; in each round every contender of a row runs one batch of about %v (%v for the I/O engine rows), in turn (A B C A B C ...); the figures are the medians of the rounds' rates, and the ratios are dirstore's median over the contender's (above 1: dirstore is faster). In the rows that write files without fsync, every contender's files are fsynced after its batch, untimed (dirstore's by Store.Sync, whose cost the notes give), so that none leaves writeback to the next one's batch\n\n",
		rounds, budget, ebudget)

	fmt.Fprintf(w, "| operation | dirstore | contender | contender's rate | dirstore ÷ contender | goal |\n")
	fmt.Fprintf(w, "|---|--:|---|--:|--:|---|\n")
	group := ""
	for _, o := range outcomes {
		r := o.Row
		if r.Group != group {
			group = r.Group
			fmt.Fprintf(w, "| **%s** | | | | | |\n", groupTitle(group))
		}
		if o.Err != nil {
			fmt.Fprintf(w, "| %s | failed: %s | | | | |\n", r.Op, cell(o.Err.Error()))
			continue
		}
		for i, s := range o.Others {
			op, ours := "", ""
			if i == 0 {
				op, ours = r.Op, rateCell(o.Ours, r.Unit)
			}
			goal := ""
			for _, g := range r.Goals {
				if g.Against == s.Name {
					met, _, ok := goalMet(o, g)
					switch {
					case !ok:
						goal = fmt.Sprintf("≥ %gx: not measured", g.Min)
					case met:
						goal = fmt.Sprintf("≥ %gx: met", g.Min)
					default:
						goal = fmt.Sprintf("≥ %gx: **missed**", g.Min)
					}
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", op, ours, s.Name, rateCell(s, r.Unit), ratioCell(o.Ours, s), goal)
		}
	}

	fmt.Fprintf(w, "\n## Goals\n\n| goal | dirstore ÷ contender | |\n|---|--:|---|\n")
	for _, o := range outcomes {
		for _, g := range o.Row.Goals {
			met, r, ok := goalMet(o, g)
			verdict := "not measured"
			if ok && met {
				verdict = "met"
			} else if ok {
				verdict = "**missed**"
			}
			fmt.Fprintf(w, "| %s (%s vs %s) | %s | %s |\n", g.Text, o.Row.Op, g.Against, fmtRatio(r), verdict)
		}
	}

	fmt.Fprintf(w, "\n## Notes\n\n")
	for _, o := range outcomes {
		var parts []string
		if o.Row.Note != "" {
			parts = append(parts, o.Row.Note)
		}
		if o.Report != "" {
			parts = append(parts, o.Report)
		}
		if d := o.Ours.Deferred; len(d) > 0 {
			md := median(d)
			s := fmt.Sprintf("The store's NoSync checkpoint (Store.Sync: fsync of the new files, the directory and the manifest, and removal of replaced or deleted files) runs untimed after each batch; counting it, dirstore does %s", fmtRate(md, o.Row.Unit))
			for _, c := range o.Others {
				if cm := c.Median(); !math.IsNaN(cm) && cm > 0 {
					s += fmt.Sprintf(", %s %s", fmtRatio(md/cm), c.Name)
				}
			}
			parts = append(parts, s+".")
		}
		for _, s := range append([]Series{o.Ours}, o.Others...) {
			if s.Err != nil {
				parts = append(parts, fmt.Sprintf("%s failed: %v.", s.Name, s.Err))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "- **%s**: %s\n", o.Row.Name(), strings.Join(parts, " "))
		}
	}
}

func groupTitle(g string) string {
	if t, ok := groupTitles[g]; ok {
		return t
	}
	return g
}

func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

func rateCell(s Series, u Unit) string {
	if s.Err != nil && len(s.Rates) == 0 {
		return "failed"
	}
	return fmtRate(s.Median(), u)
}

func ratioCell(ours, other Series) string {
	return "**" + fmtRatio(ratio(ours, other)) + "**"
}

func fmtRatio(r float64) string {
	switch {
	case math.IsNaN(r):
		return "n/a"
	case r >= 100:
		return fmt.Sprintf("%.0fx", r)
	case r >= 10:
		return fmt.Sprintf("%.1fx", r)
	case r > 0 && r < 0.01:
		// Two significant digits, not a 0.00x that reads as nothing done.
		return strconv.FormatFloat(r, 'g', 2, 64) + "x"
	default:
		return fmt.Sprintf("%.2fx", r)
	}
}

// fmtRate formats a per-second rate with an SI prefix.
func fmtRate(v float64, u Unit) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	suffix := "/s"
	switch u {
	case Bytes:
		suffix = "B/s"
	case Keys:
		suffix = " keys/s"
	}
	prefixes := []struct {
		f float64
		p string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}, {1, ""}}
	for _, p := range prefixes {
		if v >= p.f {
			x := v / p.f
			switch {
			case x >= 100:
				return fmt.Sprintf("%.0f %s%s", x, p.p, suffix)
			case x >= 10:
				return fmt.Sprintf("%.1f %s%s", x, p.p, suffix)
			default:
				return fmt.Sprintf("%.2f %s%s", x, p.p, suffix)
			}
		}
	}
	return fmt.Sprintf("%.3g %s", v, suffix)
}
