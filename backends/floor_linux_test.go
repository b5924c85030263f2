package backends_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkReadCachedFloor measures what the kernel charges for one random
// 4 KiB read of a file in the page cache, with one thread per CPU (each
// locked to its goroutine and pinned to its CPU, so the threads really run
// side by side), in four ways:
//
//   - fd=shared: every thread reads one descriptor, as the sync engine and
//     the uring engine's fast path do with a File shared by all goroutines;
//     the threads write the same struct file (its reference count and
//     read-ahead state) on every read.
//   - fd=own: each thread reads its own open file description (a separate
//     open(2) of the file), which is what per-CPU descriptors in an engine
//     would buy.
//   - call=pread, as the sync engine reads; call=preadv2, preadv2 with
//     RWF_NOWAIT, as the uring engine's fast path reads.
//
// It reports each way's median CPU time per read (thread CPU time, which the
// host's other load disturbs far less than throughput) over interleaved
// rounds, and each relative to fd=shared,call=pread: the ceiling on what the
// uring engine can gain over sync for page-cache hits by spreading
// descriptors, before any cost of picking one.
//
//	go test -run XXX -bench ReadCachedFloor -count 5 ./backends/
func BenchmarkReadCachedFloor(b *testing.B) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		b.Fatal(err)
	}
	var cpus []int
	for c := 0; c < len(allowed)*int(unsafe.Sizeof(allowed[0]))*8 && len(cpus) < runtime.GOMAXPROCS(0); c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		b.Skip("needs two CPUs")
	}
	threads := len(cpus)
	name := benchFile(b, cachedFileSize)
	warmCache(b, name)
	open := func() int {
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	shared := open()
	sharedFds := make([]int, threads)
	ownFds := make([]int, threads)
	for i := range threads {
		sharedFds[i], ownFds[i] = shared, open()
	}
	type way struct {
		name string
		fds  []int
		read func(fd int, p []byte, off int64) (int, error)
	}
	ways := []way{
		{"fd=shared,call=pread", sharedFds, unix.Pread},
		{"fd=own,call=pread", ownFds, unix.Pread},
		{"fd=shared,call=preadv2", sharedFds, preadv2Nowait},
		{"fd=own,call=preadv2", ownFds, preadv2Nowait},
	}
	const readsPerThread = 100_000
	b.ResetTimer()
	for range b.N {
		perRead := map[string][]float64{}
		for range 5 {
			for _, w := range ways {
				perRead[w.name] = append(perRead[w.name], pinnedReads(b, cpus, w.fds, w.read, readsPerThread))
			}
		}
		base := median(perRead[ways[0].name])
		for _, w := range ways {
			m := median(perRead[w.name])
			b.ReportMetric(m, w.name+"-cpu-ns/read")
			if w.name != ways[0].name {
				b.ReportMetric(m/base, w.name+"/"+ways[0].name)
			}
		}
	}
}

// pinnedReads runs one thread per descriptor in fds, thread i pinned to CPU
// cpus[i], each doing n random 4 KiB reads, and returns the mean thread CPU time
// per read in nanoseconds. Reads that preadv2 refuses with EAGAIN (a page
// marked for read-ahead) are redone with pread and counted in the mean.
func pinnedReads(tb testing.TB, cpus, fds []int, read func(int, []byte, int64) (int, error), n int) float64 {
	var wg sync.WaitGroup
	var ready, start sync.WaitGroup
	ready.Add(len(fds))
	start.Add(1)
	cpu := make([]time.Duration, len(fds))
	errs := make([]error, len(fds))
	for i, fd := range fds {
		wg.Go(func() {
			// The goroutine ends locked, so the runtime retires the pinned
			// thread instead of reusing it.
			runtime.LockOSThread()
			var set unix.CPUSet
			set.Set(cpus[i])
			errs[i] = unix.SchedSetaffinity(0, &set)
			ready.Done()
			if errs[i] != nil {
				return
			}
			start.Wait()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			p := make([]byte, blockSize)
			t0 := threadCPU()
			for range n {
				off := r.Int64N(cachedFileSize/blockSize) * blockSize
				k, err := read(fd, p, off)
				if err == unix.EAGAIN {
					k, err = unix.Pread(fd, p, off)
				}
				if k != blockSize || err != nil || !checkPattern(p[:8], off) {
					errs[i] = fmt.Errorf("read at %d = %d, %v (or wrong bytes)", off, k, err)
					break
				}
			}
			cpu[i] = threadCPU() - t0
		})
	}
	ready.Wait()
	start.Done()
	wg.Wait()
	var total time.Duration
	for i := range fds {
		if errs[i] != nil {
			tb.Fatal(errs[i])
		}
		total += cpu[i]
	}
	return float64(total.Nanoseconds()) / float64(n*len(fds))
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

// preadv2Nowait is the uring engine's fast-path read: preadv2 with
// RWF_NOWAIT on one buffer.
func preadv2Nowait(fd int, p []byte, off int64) (int, error) {
	iov := unix.Iovec{Base: unsafe.SliceData(p)}
	iov.SetLen(len(p))
	n, _, errno := unix.Syscall6(unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1,
		uintptr(off), uintptr(uint64(off)>>32>>32), unix.RWF_NOWAIT)
	runtime.KeepAlive(p)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
