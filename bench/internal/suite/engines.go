package suite

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore/backends"
)

const (
	cFio  = "fio io_uring"
	cSync = "sync engine (pread)"

	directFileSize = 1 << 30
	cachedFileSize = 256 << 20
)

func engineRows() []*Row {
	var rows []*Row
	for _, direct := range []bool{true, false} {
		for _, depth := range []int{1, 32, 1024} {
			kind, size := "page cache, 256 MiB file", int64(cachedFileSize)
			if direct {
				kind, size = "O_DIRECT, 1 GiB file", directFileSize
			}
			rows = append(rows, &Row{
				Group: groupEngines,
				Op:    fmt.Sprintf("Random 4 KiB reads, %s, %s %d", kind, depthWord(depth), depth),
				Short: fmt.Sprintf("%s, %d in flight", map[bool]string{true: "O_DIRECT", false: "page cache"}[direct], depth),
				Unit:  Ops,
				Goals: []Goal{{Against: cFio, Min: 0.8, Text: "uring at least 0.8x fio"}},
				Setup: engineRow(size, direct, depth),
				Note:  engineNote(direct, depth),
			})
		}
	}
	return rows
}

func depthWord(depth int) string {
	if depth == 1 {
		return "concurrency"
	}
	return "concurrency/queue depth"
}

func fioJobs(depth int) (jobs, iodepth int) {
	jobs = min(depth, runtime.GOMAXPROCS(0))
	return jobs, depth / jobs
}

func engineNote(direct bool, depth int) string {
	jobs, iodepth := fioJobs(depth)
	s := fmt.Sprintf("dirstore is the backends uring engine (default options) and the sync engine its portable pread one, each with %d goroutines reading one shared backends.File. fio: --ioengine=io_uring --numjobs=%d --iodepth=%d (as many jobs as Go has cores to run goroutines on), --norandommap, the same file.", depth, jobs, iodepth)
	if !direct {
		s += " The file is read whole first so that it sits in the page cache, and fio runs with --invalidate=0 so that it leaves it there."
	}
	return s
}

func engineRow(size int64, direct bool, depth int) func(e *Env) (*Setup, error) {
	return func(e *Env) (*Setup, error) {
		if _, err := exec.LookPath("fio"); err != nil {
			return nil, fmt.Errorf("fio not installed (apt-get install fio): %w", err)
		}
		name, err := e.patternFile(size)
		if err != nil {
			return nil, err
		}
		flag := os.O_RDONLY
		if direct {
			flag |= unix.O_DIRECT
		} else if err := warm(name); err != nil {
			return nil, err
		}
		uring, err := backends.New("uring", nil)
		if err != nil {
			return nil, fmt.Errorf("io_uring engine unavailable here: %w", err)
		}
		syncEng := backends.NewSync()
		var files []*backends.File
		closeAll := func() {
			for _, f := range files {
				f.Close()
			}
			uring.Close()
			syncEng.Close()
		}
		for _, b := range []backends.Backend{uring, syncEng} {
			f, err := backends.OpenFile(name, flag, 0, &backends.FileOptions{Backend: b})
			if err != nil {
				closeAll()
				return nil, err
			}
			files = append(files, f)
		}
		reader := func(cname string, f *backends.File) Contender {
			return Contender{Name: cname, Batch: func(budget time.Duration) (Result, error) {
				return timedReads(f, size, depth, budget)
			}}
		}
		return &Setup{
			Ours: reader("dirstore", files[0]),
			Others: []Contender{
				{Name: cFio, Batch: func(budget time.Duration) (Result, error) {
					iops, err := runFio(name, depth, direct, budget)
					return Result{Work: iops * budget.Seconds(), Time: budget}, err
				}},
				reader(cSync, files[1]),
			},
			Close: closeAll,
		}, nil
	}
}

// timedReads has g goroutines read random 4 KiB blocks of f for about d,
// checking every block, and returns the reads done.
func timedReads(f io.ReaderAt, size int64, g int, d time.Duration) (Result, error) {
	var stop atomic.Bool
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, g)
	blocks := size / memBlock
	start := time.Now()
	for i := range g {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			p := backends.AlignedBuffer(memBlock)
			n := int64(0)
			for !stop.Load() {
				off := r.Int64N(blocks) * memBlock
				k, err := f.ReadAt(p, off)
				if k != memBlock || err != nil || binary.LittleEndian.Uint64(p) != uint64(off) {
					errs[i] = fmt.Errorf("ReadAt(%d) = %d, %v (or wrong bytes)", off, k, err)
					stop.Store(true)
					break
				}
				n++
			}
			total.Add(n)
		})
	}
	t := time.AfterFunc(d, func() { stop.Store(true) })
	wg.Wait()
	t.Stop()
	el := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	return Result{Work: float64(total.Load()), Time: el}, nil
}

// runFio runs fio's io_uring engine, random 4 KiB reads of name at depth in
// flight (split over jobs) for d, and returns its IOPS.
func runFio(name string, depth int, direct bool, d time.Duration) (float64, error) {
	jobs, iodepth := fioJobs(depth)
	dio := "0"
	if direct {
		dio = "1"
	}
	args := []string{"--name=dirstore", "--filename=" + name, "--readonly",
		"--rw=randread", "--bs=4k", "--direct=" + dio, "--invalidate=0",
		"--ioengine=io_uring", "--iodepth=" + strconv.Itoa(iodepth),
		"--numjobs=" + strconv.Itoa(jobs), "--group_reporting",
		"--norandommap", "--randrepeat=0",
		"--time_based", fmt.Sprintf("--runtime=%dms", d.Milliseconds()),
		"--output-format=json"}
	out, err := exec.Command("fio", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("fio: %w: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return 0, fmt.Errorf("fio: %w", err)
	}
	var res struct {
		Jobs []struct {
			Read struct {
				IOPS float64 `json:"iops"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if i := bytes.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Jobs) == 0 {
		return 0, fmt.Errorf("fio output: %v: %.200s", err, out)
	}
	return res.Jobs[0].Read.IOPS, nil
}
