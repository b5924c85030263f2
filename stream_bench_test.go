package dirstore_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore"
)

// The speed goals of the Stream issue, each as sub-benchmarks of one
// benchmark so that the ratios come from one run:
//
//   - BenchmarkStreamHit4KiB: a cached 4 KiB ReadAt against the reference, a
//     golang-lru Get plus copying 4 KiB (goal: at most 1.5x);
//   - BenchmarkStreamMiss: a ReadAt that misses (and stores the result,
//     evicting another) against a plain pread of the same size (goal: at
//     most 1.2x), for 4 KiB, 64 KiB and 1 MiB; ref=pread+copy is the floor
//     of any cache that keeps a copy;
//   - BenchmarkStreamStoreOpen1MiB: Store.Open plus reading a 1 MiB value
//     against os.ReadFile of its file (goal: at least 0.9x the throughput).

const benchBlock = 4096

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
	streams := []struct {
		name string
		open func(b *testing.B) *dirstore.Stream
	}{
		{"stream=immutable", func(b *testing.B) *dirstore.Stream {
			return openStream(b, path, os.O_RDONLY, &dirstore.StreamOptions{Immutable: true, Cache: dirstore.NewCache(8 << 20)})
		}},
		{"stream=store", func(b *testing.B) *dirstore.Stream {
			s := openT(b, b.TempDir(), nil)
			data, _ := os.ReadFile(path)
			s.Set("k", data)
			st, err := s.OpenStream("k", &dirstore.StreamOptions{Cache: dirstore.NewCache(8 << 20)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}},
		{"stream=checked", func(b *testing.B) *dirstore.Stream {
			return openStream(b, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: dirstore.NewCache(8 << 20)})
		}},
	}
	for _, k := range streams {
		b.Run(k.name, func(b *testing.B) {
			s := k.open(b)
			for i := range entries {
				if _, err := s.ReadAt(p, int64(i*benchBlock)); err != nil {
					b.Fatal(err)
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
				name string
				opts dirstore.StreamOptions
			}{
				{"stream=immutable", dirstore.StreamOptions{Immutable: true}},
				{"stream=checked", dirstore.StreamOptions{}},
				{"stream=nocache", dirstore.StreamOptions{Cache: dirstore.NoCache}},
			}
			for _, k := range kinds {
				b.Run(k.name, func(b *testing.B) {
					o := k.opts
					if o.Cache == nil {
						o.Cache = dirstore.NewCache(8 << 20)
					}
					s := openStream(b, path, os.O_RDONLY, &o)
					b.SetBytes(int64(n))
					for i := 0; b.Loop(); i++ {
						if _, err := s.ReadAt(p, next(i)); err != nil {
							b.Fatal(err)
						}
					}
					if st := o.Cache.Stats(); st.Hits > 0 {
						b.Fatalf("%d hits: not a miss benchmark", st.Hits)
					}
				})
			}
		})
	}
}

func BenchmarkStreamStoreOpen1MiB(b *testing.B) {
	const size = 1 << 20
	s := openT(b, b.TempDir(), nil)
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
		{"stream=cached", dirstore.NewCache(64 << 20)},
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
