package dirstore_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
	"golang.org/x/sys/unix"
)

// The benchmarks come in pairs, "store" against a reference ("os", ...),
// so that a ratio can be read from one run: go test -bench . -count 6.

const benchKeys = 1000

func benchValue(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(i * 7)
	}
	return v
}

// BenchmarkGet1KiB: Store.Get of a 1 KiB value against os.ReadFile of a
// file of the same size (goal: store at least 1.2x as fast).
func BenchmarkGet1KiB(b *testing.B) {
	v := benchValue(1024)
	b.Run("store", func(b *testing.B) {
		s := storetest.Open(b, b.TempDir(), nil)
		for i := range benchKeys {
			mustSet(b, s, fmt.Sprint("key", i), v)
		}
		b.SetBytes(1024)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := s.Get(fmt.Sprint("key", i%benchKeys)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("os.ReadFile", func(b *testing.B) {
		dir := b.TempDir()
		for i := range benchKeys {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprint("key", i)), v, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(1024)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := os.ReadFile(filepath.Join(dir, fmt.Sprint("key", i%benchKeys))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGetLarge: Store.Get of a 64 KiB and a 1 MiB value at random
// among 64 keys, interleaved with the floor of a file per value: open,
// fstat, a buffer of the file's size, pread, close (raw system calls, no
// manifest, no checksum).
func BenchmarkGetLarge(b *testing.B) {
	const keys = 64
	for _, n := range []int{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) {
			v := benchValue(n)
			s := storetest.Open(b, b.TempDir(), nil)
			dir := b.TempDir()
			for i := range keys {
				mustSet(b, s, fmt.Sprint("key", i), v)
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprint("key", i)), v, 0o600); err != nil {
					b.Fatal(err)
				}
			}
			dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer unix.Close(dirfd)
			rng := rand.New(rand.NewPCG(1, 2))
			b.SetBytes(int64(n))
			interleave(b, func(int) error {
				_, err := s.Get(fmt.Sprint("key", rng.IntN(keys)))
				return err
			}, func(int) error {
				fd, err := unix.Openat(dirfd, fmt.Sprint("key", rng.IntN(keys)), unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				var st unix.Stat_t
				if err := unix.Fstat(fd, &st); err != nil {
					return err
				}
				p := make([]byte, st.Size)
				if m, err := unix.Pread(fd, p, 0); m != len(p) {
					return fmt.Errorf("read %d of %d bytes: %v", m, len(p), err)
				}
				return nil
			})
		})
	}
}

// interleave runs store and ref alternately, one operation each per
// iteration, so that both see the same machine (this host's speed drifts
// by tens of percent within seconds), and reports each one's time per
// operation and the speed of store relative to ref.
func interleave(b *testing.B, store, ref func(i int) error) {
	b.Helper()
	var ts, tr time.Duration
	for i := range b.N {
		t0 := time.Now()
		if err := store(i); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := ref(i); err != nil {
			b.Fatal(err)
		}
		ts += t1.Sub(t0)
		tr += time.Since(t1)
	}
	b.ReportMetric(float64(ts.Nanoseconds())/float64(b.N), "store-ns/op")
	b.ReportMetric(float64(tr.Nanoseconds())/float64(b.N), "ref-ns/op")
	b.ReportMetric(float64(tr)/float64(ts), "speedup")
}

// BenchmarkSetNew1KiB: a Set of a new key with NoSync against creating and
// writing a new file with os.OpenFile, Write, Close (goal: speedup at least
// 0.85). The Sets pay for writing their files (see applyEvery).
func BenchmarkSetNew1KiB(b *testing.B) {
	v := benchValue(1024)
	s := storetest.Open(b, b.TempDir(), &dirstore.Options{NoSync: true})
	dir := b.TempDir()
	b.ResetTimer()
	interleave(b, func(i int) error {
		if err := s.Set(fmt.Sprint("key", i), v); err != nil {
			return err
		}
		return applyEvery(s, i)
	}, func(i int) error {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint("key", i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.Write(v); err != nil {
			return err
		}
		return f.Close()
	})
}

// applyEvery applies a NoSync store's write buffer after every 256th
// operation, in the timed operation, so that buffered writes are charged
// for the files they lead to instead of leaving them to a background
// goroutine that would run during the reference's turn.
func applyEvery(s *dirstore.Store, i int) error {
	if i%256 != 255 {
		return nil
	}
	return s.ApplyBuffered()
}

// BenchmarkOverwrite1KiB: overwriting a recently written key with NoSync
// against overwriting a file in place by truncate-and-write, as diskv does
// (goal: speedup at least 30). keys=1 overwrites one key over and over;
// keys=1000 overwrites 1,000 keys in turn, each last written 1,000
// operations before, so that every batch of the write buffer writes a file
// per operation (and keys=1000,unbuffered does so without the buffer). The
// Sets pay for writing their files (see applyEvery).
func BenchmarkOverwrite1KiB(b *testing.B) {
	v := benchValue(1024)
	for _, c := range []struct {
		name   string
		n      int
		buffer int64 // Options.WriteBuffer
	}{{"keys=1", 1, 0}, {"keys=1000", 1000, 0}, {"keys=1000,unbuffered", 1000, -1}} {
		n := c.n
		b.Run(c.name, func(b *testing.B) {
			s := storetest.Open(b, b.TempDir(), &dirstore.Options{NoSync: true, WriteBuffer: c.buffer})
			dir := b.TempDir()
			for i := range n {
				mustSet(b, s, fmt.Sprint("key", i), v)
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprint("key", i)), v, 0o600); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Sync(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			interleave(b, func(i int) error {
				if err := s.Set(fmt.Sprint("key", i%n), v); err != nil {
					return err
				}
				return applyEvery(s, i)
			}, func(i int) error {
				return os.WriteFile(filepath.Join(dir, fmt.Sprint("key", i%n)), v, 0o600)
			})
		})
	}
}

// BenchmarkSetSync: durable Sets of new 1 KiB keys from 1 and 8 goroutines
// (goal: 8 goroutines at least 3x the throughput of 1).
func BenchmarkSetSync(b *testing.B) {
	v := benchValue(1024)
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			s := storetest.Open(b, b.TempDir(), nil)
			runSplit(b, g, func(i int64) error { return s.Set(fmt.Sprint("key", i), v) })
		})
	}
}

// BenchmarkSetSyncParts: durable Sets of new 1 KiB keys from 8
// goroutines, in rounds of one second per contender: the Store; the Store
// without each of its three syncs in turn (seeded bugs, to see what each
// costs: "no file fsync", "no directory fsync", "manifest without sync");
// the floor of a file per value (create, write, fsync, directory fsync, in
// raw system calls); and the full protocol (the same under a temporary
// name, renamed into place before the directory's fsync). Each is reported
// in Sets per second and over the full protocol, medians of the rounds
// (-benchtime 5x makes five; -v shows every round). Run it on the file
// system to measure (TMPDIR).
func BenchmarkSetSyncParts(b *testing.B) {
	const goroutines = 8
	v := benchValue(1024)
	rate := func(set func(g, i int) error) float64 {
		var wg sync.WaitGroup
		var n atomic.Int64
		start := time.Now()
		stop := start.Add(time.Second)
		for g := range goroutines {
			wg.Go(func() {
				for i := 0; time.Now().Before(stop); i++ {
					if err := set(g, i); err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return float64(n.Load()) / time.Since(start).Seconds()
	}
	files := func(tmp bool) func() float64 {
		return func() float64 {
			dir := b.TempDir()
			dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer unix.Close(dirfd)
			return rate(func(g, i int) error {
				name := fmt.Sprint("key", g, "-", i)
				created := name
				if tmp {
					created += ".tmp"
				}
				fd, err := unix.Openat(dirfd, created, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
				if err != nil {
					return err
				}
				if _, err := unix.Write(fd, v); err != nil {
					unix.Close(fd)
					return err
				}
				if err := unix.Fsync(fd); err != nil {
					unix.Close(fd)
					return err
				}
				if err := unix.Close(fd); err != nil {
					return err
				}
				if tmp {
					if err := unix.Renameat(dirfd, created, dirfd, name); err != nil {
						return err
					}
				}
				return unix.Fsync(dirfd)
			})
		}
	}
	// Each Store variant keeps one store for all its rounds, warmed by a
	// round before the timer starts: a new store's first second ran at a
	// third of the rate in some rounds, and not once it had run a while.
	store := func(mutation string) func() float64 {
		s := storetest.Open(b, b.TempDir(), nil)
		round := 0
		run := func() float64 {
			if mutation != "" {
				defer dirstore.SetMutation(dirstore.Mutations[mutation])()
			}
			round++
			return rate(func(g, i int) error { return s.Set(fmt.Sprint("key", round, "-", g, "-", i), v) })
		}
		run()
		return run
	}
	contenders := []struct {
		name string
		run  func() float64
	}{
		{"store", store("")},
		{"no-file-fsync", store("no file fsync")},
		{"no-dir-fsync", store("no directory fsync")},
		{"no-manifest-sync", store("manifest without sync")},
		{"floor", files(false)},
		{"full", files(true)},
	}
	rates := make([][]float64, len(contenders))
	for r := 0; b.Loop(); r++ {
		for k := range contenders {
			c := (r + k) % len(contenders)
			rates[c] = append(rates[c], contenders[c].run())
		}
	}
	median := func(x []float64) float64 {
		x = slices.Clone(x)
		slices.Sort(x)
		return x[len(x)/2]
	}
	for c, x := range rates {
		b.Logf("%s: %.0f Sets/s in each round", contenders[c].name, x)
	}
	full := median(rates[len(rates)-1])
	for c, x := range rates {
		b.ReportMetric(median(x), contenders[c].name+"-sets/s")
		if c < len(rates)-1 {
			b.ReportMetric(median(x)/full, contenders[c].name+"-x-full")
		}
	}
}

// runSplit calls fn with 1 to b.N from g goroutines, each number once.
func runSplit(b *testing.B, g int, fn func(i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(1024)
	b.ResetTimer()
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := fn(i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkSetSyncFloor is the ceiling for BenchmarkSetSync's ratio: what
// the file system itself gives 1 and 8 goroutines that each create, write
// and fsync new 1 KiB files in one directory, with no directory sync and no
// manifest at all. A durable Set does this and more, so its 8-vs-1 ratio
// cannot exceed this one.
func BenchmarkSetSyncFloor(b *testing.B) {
	v := benchValue(1024)
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			dir := b.TempDir()
			runSplit(b, g, func(i int64) error {
				f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint("key", i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
				if err != nil {
					return err
				}
				_, err = f.Write(v)
				if err == nil {
					err = f.Sync()
				}
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				return err
			})
		})
	}
}

// BenchmarkOpen: Open and Close of a cleanly closed store of 1,000 and
// 100,000 keys (goal: 100,000 under 3x the time of 1,000).
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{1000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			fillStore(b, nil, dir, n)
			b.ResetTimer()
			for range b.N {
				s, err := dirstore.Open(dir, nil)
				if err != nil {
					b.Fatal(err)
				}
				if s.Len() != n {
					b.Fatalf("Len = %d", s.Len())
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
