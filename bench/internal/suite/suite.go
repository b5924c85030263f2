// Package suite holds the comparisons that bench runs: every row measures
// dirstore and the contenders a user would pick instead, interleaved in
// rounds (A B C A B C ...), and reports the median throughput of each and
// dirstore's ratio to each.
package suite

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A Row is one operation: dirstore against its contenders.
type Row struct {
	Group string // "Store", "MemFile", ...
	Op    string // what one operation is
	Short string // Op in a few words, for the chart (default Op)
	Unit  Unit
	// Phase orders the run (the table keeps its order): rows of phase 0
	// run first, then 1, then 2. Without a journal, ext4 skips recently
	// deleted inodes, so after deletions file creation slows for minutes
	// (see README.md): rows that remove files run after those that only
	// create them, and mass deletion (the Delete row) runs last.
	Phase int
	// Goals hold dirstore's ratio to a named contender to a floor.
	Goals []Goal
	// Note explains what is measured, printed under the table.
	Note string
	// Setup prepares the data (untimed) and returns the contenders.
	Setup func(e *Env) (*Setup, error)
}

func (r *Row) short() string {
	if r.Short != "" {
		return r.Short
	}
	return r.Op
}

// Name is how -only and the progress line see a row.
func (r *Row) Name() string { return r.Group + ": " + r.Op }

// A Goal is a floor for dirstore's ratio to one contender of a row.
type Goal struct {
	Against string  // contender name
	Min     float64 // ratio (dirstore rate / contender rate) to reach
	Text    string  // the goal as the issue states it
}

// Setup is a prepared row.
type Setup struct {
	Ours   Contender
	Others []Contender
	// Close releases what Setup made; it runs after the row's rounds.
	Close func()
	// Report, if set, adds to the row's note after its rounds (cache hit
	// rates, for instance).
	Report func() string
}

// A Contender runs one timed batch of about budget and reports the work
// done in it.
type Contender struct {
	Name  string
	Batch func(budget time.Duration) (Result, error)
}

// Result is one batch.
type Result struct {
	Work float64       // operations, bytes or keys
	Time time.Duration // the timed part
	// Deferred is untimed work the contender left behind and that was
	// done right after the batch (Store.Sync of a NoSync store: its
	// checkpoint's fsyncs and the removal of replaced files), reported in
	// the notes so that the rate can be read with it too.
	Deferred time.Duration
}

// Unit says what Work counts.
type Unit int

const (
	Ops   Unit = iota // operations per second
	Bytes             // bytes per second
	Keys              // keys per second
)

// Env is what rows share.
type Env struct {
	Dir    string        // scratch directory, removed at the end
	Budget time.Duration // length of one batch
	// EngineBudget is the batch length of the I/O engine rows, where fio
	// runs as a process for that long.
	EngineBudget time.Duration
	ReopenKeys   int // keys of the reopen and list rows

	mu     sync.Mutex
	shared map[string]any
	seq    atomic.Int64
}

// Subdir returns a new, empty directory under the scratch directory.
func (e *Env) Subdir(name string) (string, error) {
	d := filepath.Join(e.Dir, fmt.Sprintf("%03d-%s", e.seq.Add(1), name))
	return d, os.MkdirAll(d, 0o700)
}

// Shared returns the value make built for key the first time, so that rows
// can share expensive data (the 100,000-key directories).
func (e *Env) Shared(key string, make func() (any, error)) (any, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v, ok := e.shared[key]; ok {
		return v, nil
	}
	v, err := make()
	if err != nil {
		return nil, err
	}
	if e.shared == nil {
		e.shared = map[string]any{}
	}
	e.shared[key] = v
	return v, nil
}

// Forget drops what Shared made for key, so that the garbage collector can
// reclaim it.
func (e *Env) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.shared, key)
}

// Outcome is a measured row.
type Outcome struct {
	Row    *Row
	Ours   Series
	Others []Series
	Err    error
	Report string // Setup.Report's text
}

// Series is one contender's batches.
type Series struct {
	Name     string
	Rates    []float64 // per batch
	Deferred []float64 // rate with the deferred work included, per batch
	Err      error
}

// Median is the median rate, or NaN without measurements.
func (s Series) Median() float64 { return median(s.Rates) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Main is the program.
func Main() {
	var (
		rounds  = flag.Int("rounds", 5, "rounds of every row (medians are taken over them)")
		only    = flag.String("only", "", "run only the rows whose \"Group: operation\" matches this regexp")
		budget  = flag.Duration("time", 250*time.Millisecond, "length of one contender's batch in a round")
		ebudget = flag.Duration("engine-time", 500*time.Millisecond, "batch length of the I/O engine rows (fio runs that long)")
		dir     = flag.String("dir", os.TempDir(), "directory to make the scratch directory in (its file system is the one measured)")
		svg     = flag.String("svg", "", "where to write the chart (default: docs/bench.svg in the repository root after a run of every row, none after -only; \"-\" for none)")
		keys    = flag.Int("reopen-keys", 100_000, "keys of the reopen and list rows")
		list    = flag.Bool("list", false, "list the rows and exit")
		jsonOut = flag.String("json", "", "also save the run's results to this file, for -merge")
		label   = flag.String("label", "", "with -json: the name of the file system measured (default: its type)")
		scale   = flag.Int("scale", 0, "instead of the rows: fill a store with this many 1 KiB keys under -dir and measure Set, Open, heap, Keys and Get at that size, then exit")
		cpuProf = flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
		mergeIn = flag.String("merge", "", "comma-separated files saved by -json: print a table per file and draw one chart with a panel per file (-svg), then exit")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: cd bench && go run . [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || *rounds < 1 || *budget <= 0 || *ebudget <= 0 || *keys < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if *mergeIn != "" {
		path := *svg
		if path == "" {
			path = filepath.Join(repoRoot(), "docs", "bench-fs.svg")
		}
		if err := merge(os.Stdout, splitList(*mergeIn), path); err != nil {
			fatalf("-merge: %v", err)
		}
		return
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			fatalf("-cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("-cpuprofile: %v", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fatalf("-cpuprofile: %v", err)
			}
		}()
	}
	if *scale > 0 {
		if err := scaleRun(os.Stdout, *dir, *scale, *rounds); err != nil {
			fatalf("-scale: %v", err)
		}
		return
	}
	re, err := regexp.Compile(*only)
	if err != nil {
		fatalf("-only: %v", err)
	}
	var rows []*Row
	for _, r := range AllRows(*keys) {
		if re.MatchString(r.Name()) {
			rows = append(rows, r)
		}
	}
	if *list {
		for _, r := range rows {
			fmt.Println(r.Name())
		}
		return
	}
	if len(rows) == 0 {
		fatalf("-only %q matches no row (see -list)", *only)
	}

	scratch, err := os.MkdirTemp(*dir, "dirstore-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	// An interrupted run still removes its files.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintf(os.Stderr, "\nbench: interrupted, removing %s\n", scratch)
		// The running row may still be adding files: try again until the
		// directory itself is gone.
		for range 20 {
			if os.RemoveAll(scratch) == nil {
				break
			}
		}
		os.Exit(130)
	}()
	env := &Env{Dir: scratch, Budget: *budget, EngineBudget: *ebudget, ReopenKeys: *keys}
	m := describeMachine(scratch)
	start := time.Now()
	prog := newProgress(len(rows), *rounds)
	prog.status("probing file creation")
	var slow time.Duration
	m.CreateStart, slow = probeCreate(env)
	if slow > 100*time.Microsecond {
		prog.clear()
		fmt.Fprintf(os.Stderr, "bench: creating a file under %s takes %v (about 12 µs on a rested ext4): the file system is probably still slow after mass deletions (see README.md); the Set rows will show it. Wait, or pick another -dir.\n", *dir, slow)
	}

	outcomes := make([]*Outcome, len(rows))
	order := make([]int, 0, len(rows))
	for phase := range 3 {
		for i, r := range rows {
			if r.Phase == phase {
				order = append(order, i)
			}
		}
	}
	for _, i := range order {
		outcomes[i] = runRow(env, rows[i], *rounds, prog)
	}
	prog.name = ""
	prog.status("probing file creation")
	m.CreateEnd, _ = probeCreate(env)
	prog.done()
	m.LoadEnd = loadAverage()
	m.Elapsed = time.Since(start)

	prog.status("removing the scratch directory")
	if err := os.RemoveAll(scratch); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	}
	prog.clear()

	writeMarkdown(os.Stdout, m, command(), outcomes, *rounds, *budget, *ebudget)
	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, *label, m, command(), outcomes, *rounds, *budget, *ebudget); err != nil {
			fatalf("-json: %v", err)
		}
	}

	// The chart in the repository shows every row: a run of some of them
	// (-only) leaves it alone unless told where to draw.
	path := *svg
	if path == "" && *only == "" {
		path = filepath.Join(repoRoot(), "docs", "bench.svg")
	}
	if path != "-" && path != "" {
		if err := writeChart(path, m, outcomes); err != nil {
			fatalf("chart: %v", err)
		}
		fmt.Fprintf(os.Stderr, "bench: wrote %s\n", path)
	}
}

// runRow prepares r and measures its contenders in interleaved rounds.
func runRow(env *Env, r *Row, rounds int, prog *progress) *Outcome {
	out := &Outcome{Row: r}
	prog.row(r.Name())
	prog.status("setting up")
	s, err := r.Setup(env)
	if err != nil {
		out.Err = err
		return out
	}
	if s.Close != nil {
		defer s.Close()
	}
	all := append([]Contender{s.Ours}, s.Others...)
	series := make([]Series, len(all))
	for i, c := range all {
		series[i].Name = c.Name
	}
	budget := env.Budget
	if r.Group == groupEngines {
		budget = env.EngineBudget
	}
	for round := range rounds {
		for i, c := range all {
			if series[i].Err != nil {
				continue
			}
			prog.status(fmt.Sprintf("round %d/%d, %s", round+1, rounds, c.Name))
			res, err := c.Batch(budget)
			if err == nil && (res.Work <= 0 || res.Time <= 0) {
				err = errors.New("no work measured")
			}
			if err != nil {
				series[i].Err = err
				continue
			}
			series[i].Rates = append(series[i].Rates, res.Work/res.Time.Seconds())
			if res.Deferred > 0 {
				series[i].Deferred = append(series[i].Deferred, res.Work/(res.Time+res.Deferred).Seconds())
			}
		}
	}
	out.Ours, out.Others = series[0], series[1:]
	if s.Report != nil {
		out.Report = s.Report()
	}
	return out
}

// command is the command line that reproduces this run.
func command() string {
	var b strings.Builder
	b.WriteString("cd bench && go run .")
	for _, a := range os.Args[1:] {
		b.WriteString(" ")
		if strings.ContainsAny(a, " \t\"'$\\*?[]|&;<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		b.WriteString(a)
	}
	return b.String()
}

// repoRoot returns the directory of the dirstore module above the working
// directory, or the working directory.
func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			regexp.MustCompile(`(?m)^module\s+github\.com/dirstore/dirstore\s*$`).Match(b) {
			return d
		}
		if filepath.Dir(d) == d {
			return wd
		}
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

// loop runs op until budget has passed or maxOps operations are done, and
// returns the count and the time taken. It reads the clock only every few
// operations when they are short, so that the clock does not weigh on
// operations of a few hundred nanoseconds.
func loop(budget time.Duration, maxOps int, op func(i int) error) (Result, error) {
	if maxOps <= 0 {
		maxOps = math.MaxInt
	}
	n, stride := 0, 1
	start := time.Now()
	last := start
	for {
		for range stride {
			if err := op(n); err != nil {
				return Result{}, err
			}
			n++
			if n >= maxOps {
				break
			}
		}
		now := time.Now()
		if now.Sub(start) >= budget || n >= maxOps {
			return Result{Work: float64(n), Time: now.Sub(start)}, nil
		}
		if now.Sub(last) < 20*time.Microsecond && stride < 1<<12 {
			stride *= 2
		}
		last = now
	}
}

// parallel runs op from g goroutines until budget has passed or maxOps
// operations are done in all, and returns the count and the time taken.
// Each goroutine counts its own operations; op gets the goroutine's index
// and its own operation count.
func parallel(g int, budget time.Duration, maxOps int, op func(gi, i int) error) (Result, error) {
	if maxOps <= 0 {
		maxOps = math.MaxInt
	}
	per := max(1, maxOps/g)
	var stop atomic.Bool
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, g)
	start := time.Now()
	for gi := range g {
		wg.Go(func() {
			n := 0
			for n < per && !stop.Load() {
				if err := op(gi, n); err != nil {
					errs[gi] = err
					stop.Store(true)
					break
				}
				n++
			}
			total.Add(int64(n))
		})
	}
	t := time.AfterFunc(budget, func() { stop.Store(true) })
	wg.Wait()
	t.Stop()
	d := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	return Result{Work: float64(total.Load()), Time: d}, nil
}

// progress prints one status line on stderr, when stderr is a terminal.
type progress struct {
	on            bool
	rows, rounds  int
	n             int
	name          string
	start         time.Time
	mu            sync.Mutex
	w             io.Writer
	lastLineWidth int
}

func newProgress(rows, rounds int) *progress {
	return &progress{on: isTerminal(os.Stderr), rows: rows, rounds: rounds, start: time.Now(), w: os.Stderr}
}

func (p *progress) row(name string) {
	p.n++
	p.name = name
}

func (p *progress) status(s string) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("[%d/%d %s] %s", p.n, p.rows, time.Since(p.start).Round(time.Second), s)
	if p.name != "" {
		line = fmt.Sprintf("[%d/%d %s] %s: %s", p.n, p.rows, time.Since(p.start).Round(time.Second), p.name, s)
	}
	if len(line) > 150 {
		line = line[:150]
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
}

func (p *progress) clear() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *progress) done() { p.clear() }
