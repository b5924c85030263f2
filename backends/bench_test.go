//go:build linux

package backends_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirstore/dirstore/backends"
	"golang.org/x/sys/unix"
)

// Benchmarks. Every engine reads through a backends.File shared by all
// goroutines. The *Ratio benchmarks run the engines (and fio) in alternating
// rounds inside one benchmark and report median throughputs and their
// ratios: the host is noisy, so only ratios measured together mean much.
//
//	go test -run XXX -bench . -count 5 ./backends/

const (
	directFileSize = 1 << 30
	cachedFileSize = 256 << 20
	blockSize      = 4096
)

var benchFiles struct {
	sync.Mutex
	dir   string
	names map[int64]string
}

// benchFile returns a file of size bytes whose every 8-byte word holds its own
// offset, created once per process in a directory removed by TestMain.
// The data is written out and synced, so O_DIRECT reads hit the device.
func benchFile(b testing.TB, size int64) string {
	benchFiles.Lock()
	defer benchFiles.Unlock()
	if name, ok := benchFiles.names[size]; ok {
		return name
	}
	if benchFiles.dir == "" {
		dir, err := os.MkdirTemp("", "dirstore-backends-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchFiles.dir = dir
		benchFiles.names = map[int64]string{}
	}
	name := filepath.Join(benchFiles.dir, fmt.Sprintf("data-%d", size))
	if err := writePatternFile(name, size); err != nil {
		b.Fatal(err)
	}
	benchFiles.names[size] = name
	return name
}

func init() { testMainHooks.cleanup = removeBenchFiles }

func removeBenchFiles() {
	benchFiles.Lock()
	defer benchFiles.Unlock()
	if benchFiles.dir != "" {
		os.RemoveAll(benchFiles.dir)
	}
}

func writePatternFile(name string, size int64) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		fillPattern(buf, off)
		if _, err := f.Write(buf[:min(int64(len(buf)), size-off)]); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fillPattern fills p with the content a pattern file has at off (off and
// len(p) multiples of 8).
func fillPattern(p []byte, off int64) {
	for i := 0; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], uint64(off)+uint64(i))
	}
}

func checkPattern(p []byte, off int64) bool {
	for i := 0; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:]) != uint64(off)+uint64(i) {
			return false
		}
	}
	return true
}

// dropCache evicts name from the page cache.
func dropCache(name string) {
	fd, err := unix.Open(name, unix.O_RDONLY, 0)
	if err == nil {
		unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
		unix.Close(fd)
	}
}

// warmCache reads name so that it sits in the page cache.
func warmCache(tb testing.TB, name string) {
	data, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	_ = data
}

// randomReads has goroutines read random aligned blocks of f until ops reads
// are done, and returns the elapsed time. It fails tb on a wrong byte.
func randomReads(tb testing.TB, f io.ReaderAt, size int64, goroutines int, ops int64) time.Duration {
	var next atomic.Int64
	var bad atomic.Int64
	var wg sync.WaitGroup
	blocks := size / blockSize
	start := time.Now()
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			p := backends.AlignedBuffer(blockSize)
			for next.Add(1) <= ops {
				off := r.Int64N(blocks) * blockSize
				if n, err := f.ReadAt(p, off); n != blockSize || err != nil {
					tb.Errorf("ReadAt(%d) = %d, %v", off, n, err)
					return
				}
				if binary.LittleEndian.Uint64(p) != uint64(off) {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if bad.Load() > 0 {
		tb.Fatalf("%d reads returned wrong bytes", bad.Load())
	}
	return d
}

func openWith(tb testing.TB, e engine, name string, flag int) (*backends.File, func()) {
	b, err := e.new()
	if err != nil {
		tb.Fatal(err)
	}
	f, err := backends.OpenFile(name, flag, 0, &backends.FileOptions{Backend: b})
	if err != nil {
		b.Close()
		tb.Fatal(err)
	}
	return f, func() { f.Close(); b.Close() }
}

const (
	directGoroutines = 1024
	cachedGoroutines = 64
)

// BenchmarkReadDirect: random 4 KiB O_DIRECT reads of a 1 GiB file, 1,024
// goroutines sharing one File. The fio leaf runs fio --ioengine=io_uring
// at the uring engine's total queue depth on the same file.
func BenchmarkReadDirect(b *testing.B) {
	name := benchFile(b, directFileSize)
	for _, e := range engines(b) {
		b.Run("engine="+e.name, func(b *testing.B) {
			f, done := openWith(b, e, name, os.O_RDONLY|unix.O_DIRECT)
			defer done()
			b.SetBytes(blockSize)
			b.ResetTimer()
			d := randomReads(b, f, directFileSize, directGoroutines, int64(b.N))
			b.ReportMetric(float64(b.N)/d.Seconds(), "iops")
		})
	}
	b.Run("engine=fio", func(b *testing.B) {
		if _, err := exec.LookPath("fio"); err != nil {
			b.Skip("fio not installed (apt-get install fio)")
		}
		b.SetBytes(blockSize)
		iops, err := fioN(name, uringDepth(), b.N)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(iops, "iops")
	})
}

// BenchmarkReadCached: random 4 KiB reads of a 256 MiB file in the page
// cache, 64 goroutines sharing one File. The os leaf is the same workload on
// one shared *os.File, the baseline the figures use.
func BenchmarkReadCached(b *testing.B) {
	name := benchFile(b, cachedFileSize)
	warmCache(b, name)
	b.Run("engine=os", func(b *testing.B) {
		f, err := os.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(blockSize)
		d := randomReads(b, f, cachedFileSize, cachedGoroutines, int64(b.N))
		b.ReportMetric(float64(b.N)/d.Seconds(), "iops")
	})
	for _, e := range engines(b) {
		b.Run("engine="+e.name, func(b *testing.B) {
			f, done := openWith(b, e, name, os.O_RDONLY)
			defer done()
			b.SetBytes(blockSize)
			b.ResetTimer()
			d := randomReads(b, f, cachedFileSize, cachedGoroutines, int64(b.N))
			b.ReportMetric(float64(b.N)/d.Seconds(), "iops")
		})
	}
}

// uringDepth is the number of reads the default uring engine keeps in flight.
func uringDepth() int {
	if i := backends.Info(); i.Name == "uring" {
		return i.Rings * i.QueueDepth
	}
	return 128
}

// fio runs fio's io_uring engine: random 4 KiB O_DIRECT reads of name at the
// given depth for d, and returns its IOPS.
func fio(name string, depth int, d time.Duration) (float64, error) {
	return runFio(name, depth, "--time_based", fmt.Sprintf("--runtime=%dms", d.Milliseconds()))
}

// fioN is fio for n reads.
func fioN(name string, depth, n int) (float64, error) {
	return runFio(name, depth, "--number_ios="+strconv.Itoa(n))
}

func runFio(name string, depth int, args ...string) (float64, error) {
	path, err := exec.LookPath("fio")
	if err != nil {
		return 0, fmt.Errorf("fio not installed (apt-get install fio): %w", err)
	}
	args = append([]string{"--name=dirstore", "--filename=" + name, "--readonly",
		"--rw=randread", "--bs=4k", "--direct=1", "--ioengine=io_uring",
		"--iodepth=" + strconv.Itoa(depth), "--output-format=json"}, args...)
	out, err := exec.Command(path, args...).Output()
	if err != nil {
		return 0, fmt.Errorf("fio: %w: %s", err, out)
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
		return 0, fmt.Errorf("fio output: %v: %s", err, out)
	}
	return res.Jobs[0].Read.IOPS, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// ratioRounds runs the contenders in turn, rounds times, and reports every
// contender's median rate, each median relative to the first contender's
// (the baseline), and uring relative to fio when fio ran.
func ratioRounds(b *testing.B, rounds int, contenders []string, run func(name string) float64) {
	rates := map[string][]float64{}
	for r := range rounds {
		for k := range contenders {
			c := contenders[(r+k)%len(contenders)] // rotate the order
			rates[c] = append(rates[c], run(c))
		}
	}
	base := median(rates[contenders[0]])
	for _, c := range contenders {
		m := median(rates[c])
		b.ReportMetric(m, c+"-iops")
		if c != contenders[0] {
			b.ReportMetric(m/base, c+"/"+contenders[0])
		}
	}
	if f, ok := rates["fio"]; ok && rates["uring"] != nil {
		b.ReportMetric(median(rates["uring"])/median(f), "uring/fio")
	}
}

// BenchmarkReadDirectRatio alternates sync, uring and fio in rounds of
// BenchmarkReadDirect's workload and reports the ratios.
func BenchmarkReadDirectRatio(b *testing.B) {
	name := benchFile(b, directFileSize)
	es := engines(b)
	if len(es) < 2 {
		b.Skip("uring unavailable")
	}
	contenders := []string{"sync", "uring"}
	if _, err := exec.LookPath("fio"); err == nil {
		contenders = append(contenders, "fio")
	} else {
		b.Log("fio not installed: no fio ratio")
	}
	files := map[string]*backends.File{}
	for _, e := range es {
		f, done := openWith(b, e, name, os.O_RDONLY|unix.O_DIRECT)
		defer done()
		files[e.name] = f
	}
	const round = 500 * time.Millisecond
	b.ResetTimer()
	for range b.N {
		ratioRounds(b, 3, contenders, func(c string) float64 {
			if c == "fio" {
				iops, err := fio(name, uringDepth(), round)
				if err != nil {
					b.Fatal(err)
				}
				return iops
			}
			return timedReads(b, files[c], directFileSize, directGoroutines, round)
		})
	}
}

// BenchmarkReadCachedRatio alternates sync, uring and a shared *os.File in
// rounds of BenchmarkReadCached's workload and reports the ratios to sync.
func BenchmarkReadCachedRatio(b *testing.B) {
	name := benchFile(b, cachedFileSize)
	warmCache(b, name)
	es := engines(b)
	if len(es) < 2 {
		b.Skip("uring unavailable")
	}
	files := map[string]io.ReaderAt{}
	for _, e := range es {
		f, done := openWith(b, e, name, os.O_RDONLY)
		defer done()
		files[e.name] = f
	}
	osf, err := os.Open(name)
	if err != nil {
		b.Fatal(err)
	}
	defer osf.Close()
	files["os"] = osf
	const round = 300 * time.Millisecond
	b.ResetTimer()
	for range b.N {
		ratioRounds(b, 5, []string{"sync", "uring", "os"}, func(c string) float64 {
			return timedReads(b, files[c], cachedFileSize, cachedGoroutines, round)
		})
	}
}

// timedReads runs randomReads' workload for about d and returns reads per
// second.
func timedReads(tb testing.TB, f io.ReaderAt, size int64, goroutines int, d time.Duration) float64 {
	var done atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	blocks := size / blockSize
	start := time.Now()
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), uint64(start.UnixNano())))
			p := backends.AlignedBuffer(blockSize)
			n := int64(0)
			for !stop.Load() {
				off := r.Int64N(blocks) * blockSize
				if k, err := f.ReadAt(p, off); k != blockSize || err != nil || binary.LittleEndian.Uint64(p) != uint64(off) {
					tb.Errorf("ReadAt(%d) = %d, %v (or wrong bytes)", off, k, err)
					break
				}
				n++
			}
			done.Add(n)
		})
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}

// BenchmarkWriteBuffered: random 4 KiB buffered writes into a 64 MiB file,
// 16 goroutines sharing one File. The uring-iowq leaf sends them through
// the ring (Options.InlineWriters -1), where ext4 hands each to an io-wq
// thread.
func BenchmarkWriteBuffered(b *testing.B) {
	const size, goroutines = 64 << 20, 16
	name := filepath.Join(b.TempDir(), "w")
	if err := os.WriteFile(name, make([]byte, size), 0o644); err != nil {
		b.Fatal(err)
	}
	es := engines(b)
	if len(es) > 1 {
		es = append(es, engine{"uring-iowq", func() (backends.Backend, error) {
			return backends.NewUring(&backends.Options{InlineWriters: -1})
		}})
	}
	for _, e := range es {
		b.Run("engine="+e.name, func(b *testing.B) {
			f, done := openWith(b, e, name, os.O_RDWR)
			defer done()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(blockSize)
			b.ResetTimer()
			for g := range goroutines {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 9))
					p := make([]byte, blockSize)
					for next.Add(1) <= int64(b.N) {
						if _, err := f.WriteAt(p, r.Int64N(size/blockSize)*blockSize); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// BenchmarkReadEnginesRatio alternates the sync and uring engines, rounds
// of 200 ms each, on the bench module's workloads: random 4 KiB reads of a
// 256 MiB file in the page cache and of a 1 GiB file with O_DIRECT, from 1,
// 32 and 1,024 goroutines sharing one File; it reports uring's rate over
// sync's.
func BenchmarkReadEnginesRatio(b *testing.B) {
	es := engines(b)
	if len(es) < 2 {
		b.Skip("uring unavailable")
	}
	for _, direct := range []bool{false, true} {
		size, flag := int64(cachedFileSize), os.O_RDONLY
		if direct {
			size, flag = directFileSize, os.O_RDONLY|unix.O_DIRECT
		}
		name := benchFile(b, size)
		if !direct {
			warmCache(b, name)
		}
		files := map[string]*backends.File{}
		for _, e := range es {
			f, done := openWith(b, e, name, flag)
			defer done()
			files[e.name] = f
		}
		for _, g := range []int{1, 32, 1024} {
			b.Run(fmt.Sprintf("direct=%t/goroutines=%d", direct, g), func(b *testing.B) {
				for range b.N {
					ratioRounds(b, 5, []string{"sync", "uring"}, func(c string) float64 {
						return timedReads(b, files[c], size, g, 200*time.Millisecond)
					})
				}
			})
		}
	}
}

// BenchmarkReadCachedPaired reads random 4 KiB blocks of a 256 MiB file in
// the page cache from one goroutine, through the sync engine and the uring
// engine in turn, 3,000 reads each, rotating which goes first, and
// reports the median and quartiles over rounds of uring's speed relative
// to sync's in the same round. Short paired rounds ride out the load of a
// shared machine better than a few long ones.
func BenchmarkReadCachedPaired(b *testing.B) {
	es := engines(b)
	if len(es) < 2 {
		b.Skip("uring unavailable")
	}
	name := benchFile(b, cachedFileSize)
	warmCache(b, name)
	files := map[string]*backends.File{}
	for _, e := range es {
		f, done := openWith(b, e, name, os.O_RDONLY)
		defer done()
		files[e.name] = f
	}
	order := []string{"sync", "uring"}
	p := make([]byte, 4096)
	var ratios []float64
	for r := 0; b.Loop(); r++ {
		var d [2]time.Duration
		for k := range 2 {
			i := (r + k) % 2
			f := files[order[i]]
			start := time.Now()
			for range 3000 {
				off := rand.Int64N(cachedFileSize/4096) * 4096
				if n, err := f.ReadAt(p, off); n != len(p) || err != nil {
					b.Fatal(n, err)
				}
			}
			d[i] = time.Since(start)
		}
		ratios = append(ratios, float64(d[0])/float64(d[1]))
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "uring/sync")
	b.ReportMetric(ratios[len(ratios)/4], "uring/sync-p25")
	b.ReportMetric(ratios[len(ratios)*3/4], "uring/sync-p75")
}
