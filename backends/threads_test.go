//go:build linux

package backends_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirstore/dirstore/backends"
	"golang.org/x/sys/unix"
)

// The thread test: threadsReaders goroutines each do one random 4 KiB
// O_DIRECT read of one shared file, all released at the same moment. Each
// engine runs in a child process (this test binary, re-executed) so that its
// thread count starts from a fresh runtime, and so that the sync engine may
// hit the runtime's 10,000-thread limit without taking the test down.
const (
	envThreadsEngine = "DIRSTORE_BACKENDS_THREADS_ENGINE"
	envThreadsFile   = "DIRSTORE_BACKENDS_THREADS_FILE"
	threadsFileSize  = 64 << 20
)

func TestThreads(t *testing.T) {
	name := filepath.Join(t.TempDir(), "data")
	if err := writePatternFile(name, threadsFileSize); err != nil {
		t.Fatal(err)
	}
	if fd, err := unix.Open(name, unix.O_RDONLY|unix.O_DIRECT, 0); err != nil {
		t.Skipf("O_DIRECT not supported in %s: %v", filepath.Dir(name), err)
	} else {
		unix.Close(fd)
	}
	limit := runtime.GOMAXPROCS(0) + 8
	for _, engine := range []string{"uring", "sync"} {
		dropCache(name)
		res, out, err := threadsChild(engine, name)
		switch {
		case engine == "uring" && errors.Is(err, errUnavailable):
			if _, perr := backends.NewUring(nil); perr == nil {
				t.Fatalf("uring works here but not in the child: %s", out)
			}
			t.Logf("uring not run: %s", out)
			continue
		case engine == "sync" && err != nil:
			// Expected to struggle: report, do not fail.
			t.Logf("sync: %d goroutines, child failed (%v); last output:\n%s", threadsReaders, err, lastLines(out, 5))
			continue
		case err != nil:
			t.Fatalf("%s child: %v\n%s", engine, err, out)
		}
		t.Logf("%-5s: %d goroutines, %d reads in %v, errors %d, wrong bytes %d, peak OS threads %d (GOMAXPROCS %d)",
			engine, threadsReaders, res.reads, res.elapsed, res.errors, res.wrong, res.peak, runtime.GOMAXPROCS(0))
		if engine == "uring" {
			if res.errors != 0 || res.wrong != 0 || res.reads != threadsReaders {
				t.Errorf("uring: %d reads, %d errors, %d wrong; want %d, 0, 0", res.reads, res.errors, res.wrong, threadsReaders)
			}
			if res.peak > limit {
				t.Errorf("uring: peak OS threads %d > GOMAXPROCS+8 = %d", res.peak, limit)
			}
		}
	}
}

func init() { testMainHooks.child = runThreadsChild }

var errUnavailable = errors.New("engine unavailable")

type threadsResult struct {
	reads, errors, wrong, peak int
	elapsed                    time.Duration
}

func threadsChild(engine, name string) (threadsResult, string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envThreadsEngine+"="+engine, envThreadsFile+"="+name)
	out, err := cmd.CombinedOutput()
	var res threadsResult
	for line := range strings.Lines(string(out)) {
		if rest, ok := strings.CutPrefix(line, "unavailable: "); ok {
			return res, strings.TrimSpace(rest), errUnavailable
		}
		if _, ok := strings.CutPrefix(line, "threads-result "); ok {
			var ms int64
			_, serr := fmt.Sscanf(line, "threads-result reads=%d errors=%d wrong=%d peak=%d ms=%d",
				&res.reads, &res.errors, &res.wrong, &res.peak, &ms)
			res.elapsed = time.Duration(ms) * time.Millisecond
			if serr != nil {
				return res, string(out), serr
			}
			return res, string(out), err
		}
	}
	if err == nil {
		err = errors.New("no result line")
	}
	return res, string(out), err
}

// runThreadsChild is the child's side; it reports whether this process is a
// child (and has done its work).
func runThreadsChild() bool {
	engine := os.Getenv(envThreadsEngine)
	if engine == "" {
		return false
	}
	b, err := backends.New(engine, nil)
	if err != nil {
		fmt.Printf("unavailable: %v\n", err)
		return true
	}
	f, err := backends.OpenFile(os.Getenv(envThreadsFile), os.O_RDONLY|unix.O_DIRECT, 0, &backends.FileOptions{Backend: b})
	if err != nil {
		fmt.Printf("open: %v\n", err)
		os.Exit(1)
	}

	var peak atomic.Int64
	sample := func() {
		if n := osThreads(); int64(n) > peak.Load() {
			peak.Store(int64(n))
		}
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()

	slab := backends.AlignedBuffer(threadsReaders * blockSize)
	var errs, wrong, reads atomic.Int64
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	start := make(chan struct{})
	ready.Add(threadsReaders)
	for i := range threadsReaders {
		wg.Go(func() {
			p := slab[i*blockSize : (i+1)*blockSize : (i+1)*blockSize]
			off := rand.Int64N(threadsFileSize/blockSize) * blockSize
			ready.Done()
			<-start
			n, err := f.ReadAt(p, off)
			reads.Add(1)
			switch {
			case err != nil || n != blockSize:
				if errs.Add(1) == 1 {
					fmt.Printf("first error: ReadAt(%d) = %d, %v\n", off, n, err)
				}
			case !checkPattern(p, off):
				wrong.Add(1)
			}
		})
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	close(stop)
	<-sampled
	sample()
	fmt.Printf("threads-result reads=%d errors=%d wrong=%d peak=%d ms=%d\n",
		reads.Load(), errs.Load(), wrong.Load(), peak.Load(), elapsed.Milliseconds())
	f.Close()
	b.Close()
	return true
}

// osThreads returns the process's thread count from /proc/self/status.
func osThreads() int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
