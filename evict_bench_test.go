package dirstore_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// Benchmarks of cache mode (Options.MaxBytes). Run them with
// TMPDIR on the file system to measure, for example:
//
//	go test -run XXX -bench 'GetBounded|SetFull|ZipfHitRatio' -count 5 .

// BenchmarkGetBounded: Get of a 1 KiB value from a bounded store against
// the same Get from an unbounded one, interleaved (goal: speedup at least
// 0.95: recency is recorded off the read path).
func BenchmarkGetBounded(b *testing.B) {
	v := benchValue(1024)
	bounded := storetest.Open(b, b.TempDir(), &dirstore.Options{MaxBytes: 2 * benchKeys * 1024})
	unbounded := storetest.Open(b, b.TempDir(), nil)
	for i := range benchKeys {
		mustSet(b, bounded, fmt.Sprint("key", i), v)
		mustSet(b, unbounded, fmt.Sprint("key", i), v)
	}
	get := func(s *dirstore.Store) func(int) error {
		return func(i int) error {
			_, err := s.Get(fmt.Sprint("key", i%benchKeys))
			return err
		}
	}
	// Each pair runs in both orders, in case the first of a pair pays for
	// the second's (speedup: unbounded time / bounded time in both).
	b.Run("bounded-first", func(b *testing.B) { interleave(b, get(bounded), get(unbounded)) })
	b.Run("unbounded-first", func(b *testing.B) { interleaveSwapped(b, get(unbounded), get(bounded)) })
}

// interleaveSwapped is interleave with the reference run first in each
// pair; its speedup is still ref time / store time.
func interleaveSwapped(b *testing.B, ref, store func(i int) error) {
	b.Helper()
	var ts, tr time.Duration
	for i := range b.N {
		t0 := time.Now()
		if err := ref(i); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := store(i); err != nil {
			b.Fatal(err)
		}
		tr += t1.Sub(t0)
		ts += time.Since(t1)
	}
	b.ReportMetric(float64(ts.Nanoseconds())/float64(b.N), "store-ns/op")
	b.ReportMetric(float64(tr.Nanoseconds())/float64(b.N), "ref-ns/op")
	b.ReportMetric(float64(tr)/float64(ts), "speedup")
}

// BenchmarkSetFullStore: a NoSync Set of a new 1 KiB key into a full
// bounded store, which evicts one key per Set, against the same Set into an
// unbounded store, interleaved (goal: speedup at least 0.8). The Sets pay for
// writing their files (see applyEvery), and the evictions for removing
// theirs.
func BenchmarkSetFullStore(b *testing.B) {
	v := benchValue(1024)
	full := storetest.Open(b, b.TempDir(), &dirstore.Options{NoSync: true, MaxBytes: benchKeys * 1024})
	unbounded := storetest.Open(b, b.TempDir(), &dirstore.Options{NoSync: true})
	for i := range benchKeys {
		mustSet(b, full, fmt.Sprint("old", i), v)
	}
	if err := full.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	set := func(s *dirstore.Store) func(int) error {
		return func(i int) error {
			if err := s.Set(fmt.Sprint("key", i), v); err != nil {
				return err
			}
			return applyEvery(s, i)
		}
	}
	interleave(b, set(full), set(unbounded))
	b.StopTimer()
	if st := full.Stats(); st.Evictions < int64(b.N) || st.Bytes > st.MaxBytes {
		b.Fatalf("%d Sets made %d evictions, Bytes %d", b.N, st.Evictions, st.Bytes)
	}
}

// BenchmarkZipfHitRatio replays a Zipf(0.99) trace of 1,000,000 requests
// over 100,000 keys (a miss sets the key) on a NoSync store bounded to 10%
// of the keys' bytes, and on golang-lru's exact LRU of as many entries, and
// reports both hit ratios and theirs (goal: ratio at least 0.98).
func BenchmarkZipfHitRatio(b *testing.B) {
	const keys, requests, size = 100_000, 1_000_000, 100
	trace := zipfTrace(keys, requests, 0.99)
	v := benchValue(size)
	for range b.N {
		s := storetest.Open(b, b.TempDir(), &dirstore.Options{NoSync: true, MaxBytes: keys / 10 * size})
		ref, _ := lru.New[uint32, struct{}](keys / 10)
		var hits, refHits int
		for _, k := range trace {
			key := fmt.Sprintf("key%06d", k)
			if err := s.View(key, func([]byte) error { return nil }); err == nil {
				hits++
			} else if err := s.Set(key, v); err != nil {
				b.Fatal(err)
			}
			if _, ok := ref.Get(k); ok {
				refHits++
			} else {
				ref.Add(k, struct{}{})
			}
		}
		if st := s.Stats(); st.Bytes > st.MaxBytes {
			b.Fatalf("Bytes %d over MaxBytes %d", st.Bytes, st.MaxBytes)
		}
		b.ReportMetric(float64(hits)/requests, "store-hits")
		b.ReportMetric(float64(refHits)/requests, "lru-hits")
		b.ReportMetric(float64(hits)/float64(refHits), "ratio")
		s.Close()
	}
}

// zipfTrace draws n requests over keys keys with Zipf exponent s < 1 (the
// standard library's Zipf needs s > 1), by inverting the CDF.
func zipfTrace(keys, n int, s float64) []uint32 {
	cdf := make([]float64, keys)
	var sum float64
	for i := range keys {
		sum += 1 / math.Pow(float64(i+1), s)
		cdf[i] = sum
	}
	rng := rand.New(rand.NewPCG(7, 8))
	// Ranks are shuffled over the key names, so that hot keys are not
	// neighbours in key order.
	perm := rng.Perm(keys)
	out := make([]uint32, n)
	for j := range out {
		u := rng.Float64() * sum
		lo, hi := 0, keys-1
		for lo < hi {
			mid := (lo + hi) / 2
			if cdf[mid] < u {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		out[j] = uint32(perm[lo])
	}
	return out
}

// BenchmarkHeapBounded: the live heap after Open and 1,000 Gets of a
// bounded store of 1,000,000 keys against one of 1,000 keys (goal: within
// 8 MiB). The stores live in memory (vfs.NewMem). It reports the two heaps
// in KiB; TestHeapDoesNotGrowWithKeysBounded checks 100,000 keys in CI.
func BenchmarkHeapBounded(b *testing.B) {
	mem := vfs.NewMem()
	fillStore(b, mem, "/small", 1000)
	fillStore(b, mem, "/large", 1_000_000)
	for range b.N {
		heapAfterOpenBounded(b, mem, "/small", 1000)
		heapAfterOpenBounded(b, mem, "/large", 1_000_000)
		hs := heapAfterOpenBounded(b, mem, "/small", 1000)
		hl := heapAfterOpenBounded(b, mem, "/large", 1_000_000)
		b.ReportMetric(float64(hs>>10), "small-KiB")
		b.ReportMetric(float64(hl>>10), "large-KiB")
		b.ReportMetric(float64((hl-hs)>>10), "growth-KiB")
	}
}

// TestHeapDoesNotGrowWithKeysBounded is TestHeapDoesNotGrowWithKeys for a
// bounded store with Gets, which note their keys' recency.
func TestHeapDoesNotGrowWithKeysBounded(t *testing.T) {
	mem := vfs.NewMem()
	fillStore(t, mem, "/small", 1000)
	fillStore(t, mem, "/large", 100_000)
	heapAfterOpenBounded(t, mem, "/small", 1000)
	heapAfterOpenBounded(t, mem, "/large", 100_000)
	hs := heapAfterOpenBounded(t, mem, "/small", 1000)
	hl := heapAfterOpenBounded(t, mem, "/large", 100_000)
	t.Logf("heap after open and 1,000 Gets, bounded: %d KiB with 1,000 keys, %d KiB with 100,000", hs>>10, hl>>10)
	if hl > hs+8<<20 {
		t.Fatalf("the heap grew by %d KiB from 1,000 to 100,000 keys", (hl-hs)>>10)
	}
}

// heapAfterOpenBounded returns the live heap after opening dir with a
// budget as large as its values and reading 1,000 of its n keys, with the
// store still open.
func heapAfterOpenBounded(tb testing.TB, fsys vfs.FS, dir string, n int) int64 {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	s, err := dirstore.Open(dir, &dirstore.Options{FS: fsys, MaxBytes: int64(16 * n)})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	for i := range 1000 {
		if _, err := s.Get(fmt.Sprintf("key%07d", i*(n/1000))); err != nil {
			tb.Fatal(err)
		}
	}
	if st := s.Stats(); st.Keys != int64(n) || st.Evictions != 0 {
		tb.Fatalf("Stats %+v", st)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc) - int64(before)
}
