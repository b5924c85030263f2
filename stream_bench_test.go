package dirstore_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// The speed goals of the Stream issue, each as sub-benchmarks of one
// benchmark so that the ratios come from one run:
//
//   - BenchmarkStreamHit4KiB: a cached 4 KiB ReadAt against the reference, a
//     golang-lru Get plus copying 4 KiB (goal: at most 1.5x);
//   - BenchmarkStreamMiss: a ReadAt that misses against a plain pread of the
//     same size (goal: at most 1.2x), for 4 KiB, 64 KiB and 1 MiB. The reads
//     cycle through a file 8 times the cache: with a NewScanResistantCache
//     each is a first read, which stores nothing. stream=firstread (a
//     Cache from NewCache) stores every miss, evicting another entry: the
//     cost of every miss under NewCache (and of the second read of a range
//     under NewScanResistantCache), whose floor is ref=pread+copy;
//   - BenchmarkStreamStoreOpen1MiB: Store.Open plus reading a 1 MiB value
//     against os.ReadFile of its file (goal: at least 0.9x the throughput);
//   - BenchmarkStreamMissRatio: BenchmarkStreamMiss's ratios measured
//     interleaved, steady on a noisy host;
//   - BenchmarkStreamScan: Reads from the start to the end of a file 8 times
//     the cache, against *os.File.Read.

const benchBlock = 4096

// benchFD opens path for reading until the benchmark ends and returns its
// descriptor.
func benchFD(b *testing.B, path string) int {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

func benchFile(b *testing.B, size int) string {
	b.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*31 + i>>12)
	}
	return writeFile(b, data)
}

// rangeKey is the reference's key: what a cache keyed by (file, offset,
// length) needs, as the Stream's cache has.
type rangeKey struct {
	file, off, n int64
}

func BenchmarkStreamHit4KiB(b *testing.B) {
	const entries = 256 // 1 MiB of 4 KiB entries, read in turn
	path := benchFile(b, entries*benchBlock)
	p := make([]byte, benchBlock)

	b.Run("ref=lru+copy", func(b *testing.B) {
		c, _ := lru.New[rangeKey, []byte](entries)
		for i := range entries {
			c.Add(rangeKey{1, int64(i * benchBlock), benchBlock}, make([]byte, benchBlock))
		}
		b.SetBytes(benchBlock)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			v, ok := c.Get(rangeKey{1, int64(i%entries) * benchBlock, benchBlock})
			if !ok {
				b.Fatal("miss")
			}
			copy(p, v)
		}
	})
	// The reference of a mutable ("checked") Stream's hit: a pread of the
	// same ranges, which a hit should not cost more than.
	b.Run("ref=pread", func(b *testing.B) {
		fd := benchFD(b, path)
		b.SetBytes(benchBlock)
		for i := 0; b.Loop(); i++ {
			if m, err := unix.Pread(fd, p, int64(i%entries)*benchBlock); m != benchBlock {
				b.Fatal(m, err)
			}
		}
	})
	// The floor of a mutable Stream's hit with any cache that copies: the
	// fstat that sees a change made by another process, and the copy.
	b.Run("ref=fstat+copy", func(b *testing.B) {
		fd := benchFD(b, path)
		cached := make([]byte, entries*benchBlock)
		var st unix.Stat_t
		b.SetBytes(benchBlock)
		for i := 0; b.Loop(); i++ {
			if err := dirstore.Fstat(fd, &st); err != nil {
				b.Fatal(err)
			}
			off := (i % entries) * benchBlock
			copy(p, cached[off:off+benchBlock])
		}
	})
	streams := []struct {
		name string
		open func(b *testing.B) *dirstore.Stream
	}{
		{"stream=immutable", func(b *testing.B) *dirstore.Stream {
			return openStream(b, path, os.O_RDONLY, &dirstore.StreamOptions{Immutable: true, Cache: dirstore.NewScanResistantCache(8 << 20)})
		}},
		{"stream=store", func(b *testing.B) *dirstore.Stream {
			s := storetest.Open(b, b.TempDir(), nil)
			data, _ := os.ReadFile(path)
			s.Set("k", data)
			st, err := s.OpenStream("k", &dirstore.StreamOptions{Cache: dirstore.NewScanResistantCache(8 << 20)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}},
		{"stream=checked", func(b *testing.B) *dirstore.Stream {
			return openStream(b, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: dirstore.NewScanResistantCache(8 << 20)})
		}},
	}
	for _, k := range streams {
		b.Run(k.name, func(b *testing.B) {
			s := k.open(b)
			for range 2 { // the second read of a range stores it
				for i := range entries {
					if _, err := s.ReadAt(p, int64(i*benchBlock)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.SetBytes(benchBlock)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := s.ReadAt(p, int64(i%entries)*benchBlock); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStreamHitChecked: a mutable ("checked") Stream's 4 KiB hit
// against pread of the same range (goal: pread-x-hit, pread's time over
// the hit's, at least 1.0) and against the hit's floor (the fstat that
// sees another process's change, and the copy), interleaved in blocks of
// 64 reads. The three read sets, 512 KiB each, fit the L2 cache together.
func BenchmarkStreamHitChecked(b *testing.B) {
	const entries = 128
	path := benchFile(b, entries*benchBlock)
	p := make([]byte, benchBlock)
	s := openStream(b, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: dirstore.NewScanResistantCache(8 << 20)})
	for range 2 { // the second read of a range stores it
		for i := range entries {
			if _, err := s.ReadAt(p, int64(i*benchBlock)); err != nil {
				b.Fatal(err)
			}
		}
	}
	fd := benchFD(b, path)
	cached := make([]byte, entries*benchBlock)
	var st unix.Stat_t
	interleaved(b, 64, []string{"hit", "pread", "floor"}, func(name string, i int) {
		off := i % entries * benchBlock
		var err error
		switch name {
		case "hit":
			_, err = s.ReadAt(p, int64(off))
		case "pread":
			if m, err := unix.Pread(fd, p, int64(off)); m != benchBlock {
				b.Fatal(m, err)
			}
		case "floor":
			err = dirstore.Fstat(fd, &st)
			copy(p, cached[off:off+benchBlock])
		}
		if err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkStreamMiss(b *testing.B) {
	const size = 64 << 20 // read in turn: gone from an 8 MiB cache long before the next turn
	path := benchFile(b, size)
	for _, n := range []int{4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%dKiB", n>>10), func(b *testing.B) {
			p := make([]byte, n)
			next := func(i int) int64 { return int64(i) * int64(n) % size }
			b.Run("ref=pread", func(b *testing.B) {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				fd := int(f.Fd())
				b.SetBytes(int64(n))
				for i := 0; b.Loop(); i++ {
					if m, err := unix.Pread(fd, p, next(i)); m != n || err != nil {
						b.Fatal(m, err)
					}
				}
			})
			// The floor of any cache that copies: the pread, plus one copy
			// into a ring of buffers as large as the cache (8 MiB), with no
			// bookkeeping at all.
			b.Run("ref=pread+copy", func(b *testing.B) {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				fd := int(f.Fd())
				ring := make([][]byte, max(1, (8<<20)/n))
				for i := range ring {
					ring[i] = make([]byte, n)
				}
				b.SetBytes(int64(n))
				for i := 0; b.Loop(); i++ {
					if m, err := unix.Pread(fd, p, next(i)); m != n || err != nil {
						b.Fatal(m, err)
					}
					copy(ring[i%len(ring)], p)
				}
			})
			kinds := []struct {
				name  string
				opts  dirstore.StreamOptions
				store bool // every miss stores its result
			}{
				{"stream=immutable", dirstore.StreamOptions{Immutable: true}, false},
				{"stream=checked", dirstore.StreamOptions{}, false},
				{"stream=nocache", dirstore.StreamOptions{Cache: dirstore.NoCache}, false},
				{"stream=firstread", dirstore.StreamOptions{Immutable: true}, true},
			}
			for _, k := range kinds {
				b.Run(k.name, func(b *testing.B) {
					o := k.opts
					if o.Cache == nil && k.store {
						o.Cache = dirstore.NewCache(8 << 20)
					} else if o.Cache == nil {
						o.Cache = dirstore.NewScanResistantCache(8 << 20)
					}
					s := openStream(b, path, os.O_RDONLY, &o)
					before := o.Cache.Stats()
					b.SetBytes(int64(n))
					for i := 0; b.Loop(); i++ {
						if _, err := s.ReadAt(p, next(i)); err != nil {
							b.Fatal(err)
						}
					}
					st := o.Cache.Stats()
					if st.Hits > before.Hits {
						b.Fatalf("%d hits: not a miss benchmark", st.Hits-before.Hits)
					}
					if stored := st.Admitted - before.Admitted; o.Cache != dirstore.NoCache && (stored == st.Misses-before.Misses) != k.store {
						b.Fatalf("%d of %d misses stored", stored, st.Misses-before.Misses)
					}
				})
			}
		})
	}
}

// BenchmarkStreamMissRatio measures BenchmarkStreamMiss's ratios on a
// noisy host: each op is a block of 64 plain preads then a block of 64
// Stream ReadAts of the same size (of other ranges of the same file), and
// it reports the Stream's time over pread's as x-pread, and the Stream's
// time per read as ns/read. Noise from other processes, and drifts in the
// machine's speed, then weigh on both sides alike. ref=pread, pread
// against itself, shows the method's own bias.
func BenchmarkStreamMissRatio(b *testing.B) {
	const size = 64 << 20
	const block = 64
	path := benchFile(b, size)
	for _, n := range []int{4 << 10, 64 << 10} {
		for _, k := range []struct {
			name  string
			opts  dirstore.StreamOptions
			cache func(int64) *dirstore.Cache // nil: pread against itself
		}{
			{"ref=pread", dirstore.StreamOptions{}, nil}, // the method's bias
			// immutable and checked: a NewScanResistantCache's first reads;
			// firstread: every miss of a NewCache (the default).
			{"stream=immutable", dirstore.StreamOptions{Immutable: true}, dirstore.NewScanResistantCache},
			{"stream=checked", dirstore.StreamOptions{}, dirstore.NewScanResistantCache},
			{"stream=nocache", dirstore.StreamOptions{Cache: dirstore.NoCache}, dirstore.NewCache},
			{"stream=firstread", dirstore.StreamOptions{Immutable: true}, dirstore.NewCache},
		} {
			b.Run(fmt.Sprintf("size=%dKiB/%s", n>>10, k.name), func(b *testing.B) {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				fd := int(f.Fd())
				read := func(p []byte, off int64) error {
					_, err := unix.Pread(fd, p, off)
					return err
				}
				o := k.opts
				if k.cache != nil {
					if o.Cache == nil {
						o.Cache = k.cache(8 << 20) // a new one for every run
					}
					s := openStream(b, path, os.O_RDONLY, &o)
					read = func(p []byte, off int64) error {
						_, err := s.ReadAt(p, off)
						return err
					}
				}
				p := make([]byte, n)
				blocks := int64(size / n)
				var ref, ours time.Duration
				reads := int64(0)
				for i := int64(0); b.Loop(); {
					start := time.Now()
					for j := range int64(block) {
						if m, err := unix.Pread(fd, p, (i+j)%blocks*int64(n)); m != n || err != nil {
							b.Fatal(m, err)
						}
					}
					mid := time.Now()
					for j := range int64(block) {
						// Half a file away from the preads' ranges.
						if err := read(p, (i+j+blocks/2)%blocks*int64(n)); err != nil {
							b.Fatal(err)
						}
					}
					ours += time.Since(mid)
					ref += mid.Sub(start)
					i += block
					reads += block
				}
				b.ReportMetric(float64(ours)/float64(ref), "x-pread")
				b.ReportMetric(float64(ours.Nanoseconds())/float64(reads), "ns/read")
				if st := o.Cache.Stats(); st.Hits > 0 { // NoCache's (and nil's) are zero
					b.Fatalf("%d hits: not a miss benchmark", st.Hits)
				}
			})
		}
	}
}

func BenchmarkStreamStoreOpen1MiB(b *testing.B) {
	const size = 1 << 20
	s := storetest.Open(b, b.TempDir(), nil)
	value := make([]byte, size)
	for i := range value {
		value[i] = byte(i * 7)
	}
	if err := s.Set("k", value); err != nil {
		b.Fatal(err)
	}
	st, err := s.Open("k")
	if err != nil {
		b.Fatal(err)
	}
	path := st.Name()
	st.Close()
	if filepath.Dir(path) != s.Dir() {
		b.Fatalf("value file %s", path)
	}

	b.Run("ref=os.ReadFile", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if data, err := os.ReadFile(path); len(data) != size || err != nil {
				b.Fatal(len(data), err)
			}
		}
	})
	buf := make([]byte, size+512) // room to see the end, as os.ReadFile has
	for _, k := range []struct {
		name  string
		cache *dirstore.Cache
	}{
		{"stream=cached", dirstore.NewScanResistantCache(64 << 20)},
		{"stream=nocache", dirstore.NoCache},
	} {
		b.Run(k.name, func(b *testing.B) {
			opts := &dirstore.StreamOptions{Cache: k.cache}
			b.SetBytes(size)
			for b.Loop() {
				st, err := s.OpenStream("k", opts)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					m, err := st.Read(buf[n:])
					n += m
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if n != size {
					b.Fatal(n)
				}
				st.Close()
			}
		})
	}
}

// BenchmarkStreamScan reads a 64 MiB file from start to end, by Reads of
// 4 KiB, 64 KiB and 1 MiB, against *os.File.Read of the same sizes: one
// pass over a file larger than the cache (8 MiB), which no cache can help
// and which must cost about what reading the file costs.
func BenchmarkStreamScan(b *testing.B) {
	const size = 64 << 20
	path := benchFile(b, size)
	scan := func(b *testing.B, r io.ReadSeeker, p []byte) {
		b.Helper()
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			b.Fatal(err)
		}
		total := 0
		for {
			m, err := r.Read(p)
			total += m
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if total != size {
			b.Fatal(total)
		}
	}
	for _, n := range []int{4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%dKiB", n>>10), func(b *testing.B) {
			p := make([]byte, n)
			b.Run("ref=os.File", func(b *testing.B) {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				b.SetBytes(size)
				for b.Loop() {
					scan(b, f, p)
				}
			})
			for _, k := range []struct {
				name string
				opts dirstore.StreamOptions
			}{
				{"stream=immutable", dirstore.StreamOptions{Immutable: true}},
				{"stream=checked", dirstore.StreamOptions{}},
				{"stream=firstread", dirstore.StreamOptions{Immutable: true}},
			} {
				b.Run(k.name, func(b *testing.B) {
					o := k.opts
					if o.Cache = dirstore.NewScanResistantCache(8 << 20); k.name == "stream=firstread" {
						o.Cache = dirstore.NewCache(8 << 20)
					}
					s := openStream(b, path, os.O_RDONLY, &o)
					b.SetBytes(size)
					for b.Loop() {
						scan(b, s, p)
					}
				})
			}
		})
	}
}

// interleaved runs contenders in blocks of reads, every contender's block
// next to the others' in time, rotating their order, and reports each
// one's time relative to the first's (x-<first>) and per read (ns/read).
// Drifts in the machine's speed and noise from other processes weigh on all
// of them alike.
func interleaved(b *testing.B, block int, names []string, run func(name string, i int)) {
	total := make([]time.Duration, len(names))
	reads := 0
	for r := 0; b.Loop(); r++ {
		for k := range names {
			c := (r + k) % len(names)
			start := time.Now()
			for j := range block {
				run(names[c], r*block+j)
			}
			total[c] += time.Since(start)
		}
		reads += block
	}
	for c, name := range names {
		b.ReportMetric(float64(total[c].Nanoseconds())/float64(reads), name+"-ns/read")
		if c > 0 {
			b.ReportMetric(float64(total[c])/float64(total[0]), name+"-x-"+names[0])
		}
	}
}

// BenchmarkStreamMissFloor measures a 4 KiB store-on-miss ReadAt (a Cache
// from NewCache, immutable and mutable Streams) against its floor, a pread
// plus one copy of the result into an 8 MiB ring of buffers with no
// bookkeeping (floor), against that floor with the fstat a mutable Stream
// makes per read (statfloor), against the floor of the order the cache
// reads in, a pread into the ring and a copy out of it (readfloor), and
// against a plain pread, interleaved in blocks of 64 reads. Every read is of
// a range read last 16,384 reads earlier, long evicted from the 8 MiB cache,
// of a 64 MiB file in the page cache. Each floor has a ring of its own: two
// sharing one would find its buffers warm every other turn, as the cache's
// never are.
func BenchmarkStreamMissFloor(b *testing.B) {
	const size, n = 64 << 20, benchBlock
	path := benchFile(b, size)
	fd := benchFD(b, path)
	newRing := func() [][]byte {
		r := make([][]byte, (8<<20)/n)
		for i := range r {
			r[i] = make([]byte, n)
		}
		return r
	}
	ring, statRing, readRing := newRing(), newRing(), newRing()
	immutable := openStream(b, path, os.O_RDONLY, &dirstore.StreamOptions{Immutable: true, Cache: dirstore.NewCache(8 << 20)})
	mutable := openStream(b, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: dirstore.NewCache(8 << 20)})
	p := make([]byte, n)
	const blocks = size / n
	// Each contender reads its own share of the blocks in turn, so that
	// none finds the pages another has just brought into the CPU's caches.
	// statfloor is the floor of a mutable Stream: it must also fstat the
	// file at every read, to see a change made by another process.
	names := []string{"floor", "pread", "immutable", "mutable", "statfloor", "readfloor"}
	offset := func(c, i int) int64 { return int64((c*blocks/len(names)+i)%blocks) * n }
	pread := func(q []byte, off int64) {
		if m, err := unix.Pread(fd, q, off); m != n || err != nil {
			b.Fatal(m, err)
		}
	}
	var st unix.Stat_t
	interleaved(b, 64, names, func(name string, i int) {
		switch name {
		case "floor":
			pread(p, offset(0, i))
			copy(ring[i%len(ring)], p)
		case "pread":
			pread(p, offset(1, i))
		case "immutable":
			if _, err := immutable.ReadAt(p, offset(2, i)); err != nil {
				b.Fatal(err)
			}
		case "mutable":
			if _, err := mutable.ReadAt(p, offset(3, i)); err != nil {
				b.Fatal(err)
			}
		case "statfloor":
			if err := dirstore.Fstat(fd, &st); err != nil {
				b.Fatal(err)
			}
			pread(p, offset(4, i))
			copy(statRing[i%len(statRing)], p)
		case "readfloor":
			q := readRing[i%len(readRing)]
			pread(q, offset(5, i))
			copy(p, q)
		}
	})
}

// BenchmarkStreamMix measures 4 KiB ReadAts on a mutable Stream (the
// default: an fstat per read) with a 16 MiB Cache, 90% of them among 1,024
// hot blocks that the cache holds and 10% anywhere in a 256 MiB file in the
// page cache (misses, stored), against pread of the same offsets,
// interleaved in blocks of 64 reads. An immutable Stream is shown beside it,
// and the floor of a mutable Stream with a copying cache (see floor below).
func BenchmarkStreamMix(b *testing.B) {
	const size, n, hot = 256 << 20, benchBlock, 1024
	path := benchFile(b, size)
	fd := benchFD(b, path)
	mutable := openStream(b, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: dirstore.NewCache(16 << 20)})
	immutable := openStream(b, path, os.O_RDONLY, &dirstore.StreamOptions{Immutable: true, Cache: dirstore.NewCache(16 << 20)})
	p := make([]byte, n)
	for i := range hot {
		for _, s := range []*dirstore.Stream{mutable, immutable} {
			if _, err := s.ReadAt(p, int64(i)*n); err != nil {
				b.Fatal(err)
			}
		}
	}
	rng := rand.New(rand.NewPCG(5, 5))
	offs := make([]int64, 1<<16)
	for i := range offs {
		if rng.IntN(10) == 0 {
			offs[i] = rng.Int64N(size/n) * n
		} else {
			offs[i] = rng.Int64N(hot) * n
		}
	}
	// The floor of a mutable Stream with any cache that copies: an fstat
	// per read, a copy of 4 KiB out of cache memory on a hit, and a pread
	// plus a copy into cache memory on a miss, with no bookkeeping at all.
	hotBufs := make([][]byte, hot)
	for i := range hotBufs {
		hotBufs[i] = make([]byte, n)
	}
	ring := make([][]byte, (16<<20)/n-hot)
	for i := range ring {
		ring[i] = make([]byte, n)
	}
	var st unix.Stat_t
	interleaved(b, 64, []string{"pread", "mutable", "immutable", "floor"}, func(name string, i int) {
		off := offs[i%len(offs)]
		var err error
		switch name {
		case "floor":
			if err = dirstore.Fstat(fd, &st); err != nil {
				break
			}
			if off < hot*n {
				copy(p, hotBufs[off/n])
				break
			}
			var m int
			if m, err = unix.Pread(fd, p, off); m != n {
				b.Fatal(m, err)
			}
			copy(ring[i%len(ring)], p)
		case "pread":
			var m int
			if m, err = unix.Pread(fd, p, off); m != n {
				b.Fatal(m, err)
			}
		case "mutable":
			_, err = mutable.ReadAt(p, off)
		case "immutable":
			_, err = immutable.ReadAt(p, off)
		}
		if err != nil {
			b.Fatal(err)
		}
	})
}
