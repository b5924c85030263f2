package dirstore_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/backends"
	"github.com/dirstore/dirstore/internal/storetest"
)

// Tests of what a Cache stores: a Cache from NewScanResistantCache stores a
// range at its second read (the first leaves only a ghost), one from
// NewCache at its first.

func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + i>>10)
	}
	return b
}

// TestStreamAdmission: a range's first read misses and stores nothing, its
// second misses and stores it, its third hits; hooks fire on all three. A
// ghost is shared by the Streams of a file.
func TestStreamAdmission(t *testing.T) {
	content := patterned(10000)
	kinds := []struct {
		name string
		open func(t *testing.T, c *dirstore.Cache) (*dirstore.Stream, *dirstore.Stream)
	}{
		{"checked", func(t *testing.T, c *dirstore.Cache) (*dirstore.Stream, *dirstore.Stream) {
			path := writeFile(t, content)
			o := &dirstore.StreamOptions{Cache: c}
			return openStream(t, path, os.O_RDONLY, o), openStream(t, path, os.O_RDONLY, o)
		}},
		{"immutable", func(t *testing.T, c *dirstore.Cache) (*dirstore.Stream, *dirstore.Stream) {
			path := writeFile(t, content)
			o := &dirstore.StreamOptions{Cache: c, Immutable: true}
			return openStream(t, path, os.O_RDONLY, o), openStream(t, path, os.O_RDONLY, o)
		}},
		{"store", func(t *testing.T, c *dirstore.Cache) (*dirstore.Stream, *dirstore.Stream) {
			s := storetest.Open(t, "", nil)
			if err := s.Set("k", content); err != nil {
				t.Fatal(err)
			}
			var st [2]*dirstore.Stream
			for i := range st {
				var err error
				if st[i], err = s.OpenStream("k", &dirstore.StreamOptions{Cache: c}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st[i].Close() })
			}
			return st[0], st[1]
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			c := dirstore.NewScanResistantCache(1 << 20)
			a, b := k.open(t, c)
			hooked := 0
			for _, s := range []*dirstore.Stream{a, b} {
				s.Hook(dirstore.OnRead, func(_ *dirstore.Stream, _ []byte, n int) { hooked += n })
			}
			const off, n = 1000, 4096
			want := []struct {
				s                               *dirstore.Stream
				hits, misses, admitted, entries int64
			}{
				{a, 0, 1, 0, 0}, // first read: a ghost only
				{b, 0, 2, 1, 1}, // second, through another Stream: stored
				{a, 1, 2, 1, 1}, // third: a hit
				{b, 2, 2, 1, 1},
			}
			for i, w := range want {
				p := make([]byte, n)
				if m, err := w.s.ReadAt(p, off); m != n || err != nil || !bytes.Equal(p, content[off:off+n]) {
					t.Fatalf("read %d: %d, %v, or wrong bytes", i+1, m, err)
				}
				st := c.Stats()
				if st.Hits != w.hits || st.Misses != w.misses || st.Admitted != w.admitted || st.Entries != w.entries {
					t.Fatalf("after read %d: %+v, want %d hits, %d misses, %d admitted, %d entries",
						i+1, st, w.hits, w.misses, w.admitted, w.entries)
				}
				if _, ok := dirstore.StreamCached(a, off, n); ok != (w.entries == 1) {
					t.Fatalf("after read %d: cached %v", i+1, ok)
				}
			}
			if hooked != len(want)*n {
				t.Fatalf("hooks saw %d bytes, want %d", hooked, len(want)*n)
			}

			// Read takes the same range as ReadAt of the same offset and
			// length: a hit now.
			a.Seek(off, io.SeekStart)
			if m, _ := a.Read(make([]byte, n)); m != n || c.Stats().Hits != 3 {
				t.Fatalf("Read: %d bytes, %+v", m, c.Stats())
			}

			// Purge forgets the ghosts too.
			c.Purge()
			for i := range 2 {
				a.ReadAt(make([]byte, n), off)
				if got := c.Stats().Entries; got != int64(i) {
					t.Fatalf("read %d after Purge: %d entries", i+1, got)
				}
			}
		})
	}
}

// TestStreamFirstReadCache: a Cache from NewCache stores every miss.
func TestStreamFirstReadCache(t *testing.T) {
	content := patterned(10000)
	path := writeFile(t, content)
	c := dirstore.NewCache(1 << 20)
	s := openStream(t, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: c})
	p := make([]byte, 100)
	for i := range 2 {
		if _, err := s.ReadAt(p, 50); err != nil || !bytes.Equal(p, content[50:150]) {
			t.Fatal(err)
		}
		if st := c.Stats(); st.Hits != int64(i) || st.Misses != 1 || st.Admitted != 1 || st.Entries != 1 {
			t.Fatalf("after read %d: %+v", i+1, st)
		}
	}
}

// TestStreamScanKeepsHot: ranges read over and over stay in a
// NewScanResistantCache while a scan of a file 16 times the budget goes by;
// the scan stores nothing. A NewCache, shown for contrast, loses them. A file
// that fits in the Cache, scanned over and over, is stored at the second
// pass and served from the third.
func TestStreamScanKeepsHot(t *testing.T) {
	const budget = 64 << 10
	hotContent, big, smallContent := patterned(budget), patterned(16*budget), patterned(budget/2)
	hotPath, bigPath, smallPath := writeFile(t, hotContent), writeFile(t, big), writeFile(t, smallContent)
	hotRanges := []int64{0, 5000, 10000, 20000} // 1000 bytes each
	scan := func(s *dirstore.Stream, content []byte) {
		t.Helper()
		s.Seek(0, io.SeekStart)
		p := make([]byte, 512)
		for off := 0; ; off += 512 {
			n, err := s.Read(p)
			if err == io.EOF && n == 0 && off == len(content) {
				return
			}
			if err != nil || !bytes.Equal(p[:n], content[off:off+n]) {
				t.Fatalf("scan: Read at %d: %d, %v", off, n, err)
			}
		}
	}
	for _, k := range []struct {
		name     string
		newCache func(int64) *dirstore.Cache
		kept     bool
	}{
		{"NewScanResistantCache", dirstore.NewScanResistantCache, true},
		{"NewCache", dirstore.NewCache, false},
	} {
		t.Run(k.name, func(t *testing.T) {
			c := k.newCache(budget)
			o := &dirstore.StreamOptions{Cache: c, ChunkSize: 4096}
			hot := openStream(t, hotPath, os.O_RDONLY, o)
			readHot := func() (hits int64) {
				before := c.Stats().Hits
				for _, off := range hotRanges {
					p := make([]byte, 1000)
					if _, err := hot.ReadAt(p, off); err != nil || !bytes.Equal(p, hotContent[off:off+1000]) {
						t.Fatalf("hot read at %d: %v", off, err)
					}
				}
				return c.Stats().Hits - before
			}
			for range 3 {
				readHot()
			}
			if hits := readHot(); hits != 4 {
				t.Fatalf("hot ranges not cached: %d hits", hits)
			}
			before := c.Stats()
			scan(openStream(t, bigPath, os.O_RDONLY, o), big)
			after := c.Stats()
			t.Logf("scan: %+v", after)
			if hits := readHot(); (hits == 4) != k.kept {
				t.Fatalf("after the scan, %d of 4 hot ranges hit", hits)
			}
			if k.kept && (after.Admitted != before.Admitted || after.Evictions != 0) {
				t.Fatalf("the scan stored %d ranges and evicted %d", after.Admitted-before.Admitted, after.Evictions)
			}

			// A file half the budget, scanned again and again.
			c.Purge()
			small := openStream(t, smallPath, os.O_RDONLY, o)
			for pass := range 3 {
				before := c.Stats()
				scan(small, smallContent)
				after := c.Stats()
				hits, admitted := after.Hits-before.Hits, after.Admitted-before.Admitted
				reads := int64(len(smallContent) / 512)
				want := [3][2]int64{{0, 0}, {0, reads}, {reads, 0}}[pass]
				if !k.kept {
					want = [3][2]int64{{0, reads}, {reads, 0}, {reads, 0}}[pass]
				}
				if hits != want[0] || admitted != want[1] {
					t.Fatalf("pass %d: %d hits, %d stored; want %d, %d", pass+1, hits, admitted, want[0], want[1])
				}
			}
		})
	}
}

// countingBackend counts the reads a Stream makes of its file.
type countingBackend struct {
	backends.Backend
	reads atomic.Int64
}

func (b *countingBackend) ReadAt(fd int, p []byte, off int64, f backends.Flags) (int, error) {
	b.reads.Add(1)
	return b.Backend.ReadAt(fd, p, off, f)
}

// TestStreamScanPreads: a sequential scan makes one read of the file per
// Read call, of the caller's size (up to ChunkSize), whatever the Cache
// (with one more for NoCache, which does not know the size);
// a ReadAt larger than ChunkSize makes one read per chunk. Admission never
// splits a read into smaller ones.
func TestStreamScanPreads(t *testing.T) {
	const size = 1<<20 + 123
	content := patterned(size)
	path := writeFile(t, content)
	ceil := func(a, b int) int64 { return int64((a + b - 1) / b) }
	caches := []struct {
		name string
		c    func() *dirstore.Cache
	}{
		{"NewScanResistantCache", func() *dirstore.Cache { return dirstore.NewScanResistantCache(8 << 20) }},
		{"NewCache", func() *dirstore.Cache { return dirstore.NewCache(8 << 20) }},
		{"NoCache", func() *dirstore.Cache { return dirstore.NoCache }},
	}
	for _, k := range caches {
		for _, chunk := range []int{16 << 10, dirstore.DefaultChunkSize} {
			t.Run(fmt.Sprintf("cache=%s,chunk=%d", k.name, chunk), func(t *testing.T) {
				be := &countingBackend{Backend: backends.Default()}
				c := k.c()
				s := openStream(t, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: c, ChunkSize: chunk, Backend: be})
				const buf = 64 << 10
				wantReads := ceil(size, min(buf, chunk))
				if k.name == "NoCache" {
					wantReads++ // a NoCache Stream reads to find the end
				}
				for pass := range 3 {
					be.reads.Store(0)
					s.Seek(0, io.SeekStart)
					p := make([]byte, buf)
					var got []byte
					for {
						n, err := s.Read(p)
						got = append(got, p[:n]...)
						if err == io.EOF {
							break
						}
						if err != nil {
							t.Fatal(err)
						}
					}
					if !bytes.Equal(got, content) {
						t.Fatalf("pass %d: wrong bytes", pass+1)
					}
					want := wantReads
					if hit := (k.name == "NewScanResistantCache" && pass == 2) || (k.name == "NewCache" && pass > 0); hit {
						want = 0
					}
					if n := be.reads.Load(); n != want {
						t.Fatalf("pass %d: %d reads of the file, want %d", pass+1, n, want)
					}
				}

				// One ReadAt of the whole file: one read per chunk.
				if k.name != "NoCache" {
					c.Purge()
				}
				be.reads.Store(0)
				p := make([]byte, size)
				if n, err := s.ReadAt(p, 0); n != size || (err != nil && err != io.EOF) || !bytes.Equal(p, content) {
					t.Fatalf("ReadAt: %d, %v", n, err)
				}
				want := ceil(size, chunk)
				if k.name == "NoCache" {
					want = 1 // straight to the file
				}
				if n := be.reads.Load(); n != want {
					t.Fatalf("ReadAt: %d reads of the file, want %d", n, want)
				}
			})
		}
	}
}
