package dirstore_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/filetest"
	"github.com/dirstore/dirstore/internal/storetest"
)

func writeFile(t testing.TB, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func openStream(t testing.TB, path string, flag int, o *dirstore.StreamOptions) *dirstore.Stream {
	t.Helper()
	s, err := dirstore.OpenStream(path, flag, 0o600, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStreamConformance runs the io conformance suite over every read path
// of every kind of Stream.
func TestStreamConformance(t *testing.T) {
	osKinds := []struct {
		name string
		opts func() *dirstore.StreamOptions
	}{
		{"default", func() *dirstore.StreamOptions { return nil }},
		{"cache", func() *dirstore.StreamOptions {
			return &dirstore.StreamOptions{Cache: dirstore.NewScanResistantCache(1 << 20)}
		}},
		{"nocache", func() *dirstore.StreamOptions { return &dirstore.StreamOptions{Cache: dirstore.NoCache} }},
		{"chunk=7", func() *dirstore.StreamOptions {
			return &dirstore.StreamOptions{ChunkSize: 7, Cache: dirstore.NewScanResistantCache(1 << 20)}
		}},
		{"tinycache", func() *dirstore.StreamOptions {
			return &dirstore.StreamOptions{ChunkSize: 100, Cache: dirstore.NewScanResistantCache(1000)}
		}},
		{"immutable", func() *dirstore.StreamOptions {
			return &dirstore.StreamOptions{Immutable: true, Cache: dirstore.NewScanResistantCache(1 << 20)}
		}},
	}
	for _, k := range osKinds {
		t.Run("OpenStream/"+k.name, func(t *testing.T) {
			filetest.Run(t, func(t *testing.T, content []byte) filetest.Opener {
				path := writeFile(t, content)
				return func() (any, error) { return dirstore.OpenStream(path, os.O_RDONLY, 0, k.opts()) }
			})
		})
	}
	for _, sk := range storeKinds {
		for _, cache := range []*dirstore.Cache{nil, dirstore.NoCache} {
			name := "Store.Open/" + sk.name
			if cache != nil {
				name += "/nocache"
			}
			t.Run(name, func(t *testing.T) {
				s := storetest.Open(t, "", &dirstore.Options{FS: sk.fs()})
				filetest.Run(t, func(t *testing.T, content []byte) filetest.Opener {
					key := t.Name()
					if err := s.Set(key, content); err != nil {
						t.Fatal(err)
					}
					return func() (any, error) { return s.OpenStream(key, &dirstore.StreamOptions{Cache: cache}) }
				})
			})
		}
	}
}

func TestStreamErrors(t *testing.T) {
	path := writeFile(t, []byte("content"))
	s := openStream(t, path, os.O_RDONLY, nil)
	isPath := func(err error, want error) {
		t.Helper()
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != path || !errors.Is(err, want) {
			t.Fatalf("error %v: want a *fs.PathError for %s matching %v", err, path, want)
		}
	}
	if _, err := s.ReadAt(make([]byte, 1), -1); err == nil {
		t.Fatal("ReadAt at -1 succeeded")
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Fatal("Write to a read-only stream succeeded")
	}
	if _, err := s.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("Seek to -1 succeeded")
	}
	if err := s.Hook("bogus", func(*dirstore.Stream, []byte, int) {}); !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("Hook(bogus) = %v", err)
	}
	if err := s.Hook(dirstore.OnRead, nil); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Hook(nil) = %v", err)
	}
	if s.Name() != path {
		t.Fatalf("Name() = %q", s.Name())
	}
	if fi, err := s.Stat(); err != nil || fi.Size() != 7 || fi.Name() != "f" || !fi.Mode().IsRegular() {
		t.Fatalf("Stat() = %v, %v", fi, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Read(make([]byte, 1))
	isPath(err, fs.ErrClosed)
	_, err = s.ReadAt(make([]byte, 1), 0)
	isPath(err, fs.ErrClosed)
	_, err = s.Write([]byte("x"))
	isPath(err, fs.ErrClosed)
	_, err = s.Seek(0, io.SeekStart)
	isPath(err, fs.ErrClosed)
	_, err = s.Stat()
	isPath(err, fs.ErrClosed)
	isPath(s.Sync(), fs.ErrClosed)
	isPath(s.Close(), fs.ErrClosed)
	isPath(s.Hook(dirstore.OnRead, func(*dirstore.Stream, []byte, int) {}), fs.ErrClosed)

	_, err = dirstore.OpenStream(filepath.Join(t.TempDir(), "missing"), os.O_RDONLY, 0, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenStream of a missing file: %v", err)
	}
	if _, err := dirstore.OpenStream(path, os.O_RDWR, 0, &dirstore.StreamOptions{Immutable: true}); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("OpenStream(Immutable, O_RDWR): %v", err)
	}
	if _, err := dirstore.OpenStream(path, os.O_RDONLY, 0, &dirstore.StreamOptions{ChunkSize: -1}); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("OpenStream(ChunkSize -1): %v", err)
	}
	a := openStream(t, path, os.O_WRONLY|os.O_APPEND, nil)
	if _, err := a.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("WriteAt on O_APPEND succeeded")
	}
}

// TestStreamPositionIsOwn: the position is the Stream's, whatever ReadAt,
// hits and misses do (duck reads from the descriptor's stale position after
// a hit).
func TestStreamPositionIsOwn(t *testing.T) {
	c := dirstore.NewScanResistantCache(1 << 20)
	path := writeFile(t, []byte("0123456789"))
	warm := openStream(t, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: c})
	if _, err := warm.ReadAt(make([]byte, 3), 0); err != nil {
		t.Fatal(err)
	}
	s := openStream(t, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: c})
	var got []byte
	for _, n := range []int{3, 2, 5} { // hit, then misses
		p := make([]byte, n)
		m, err := s.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:m]...)
		s.ReadAt(make([]byte, 4), 6)
	}
	if string(got) != "0123456789" {
		t.Fatalf("read %q", got)
	}
}

// TestStreamModel runs random operations through several Streams of one
// file (sharing a cache, or not, with various chunk sizes) and by plain
// os.File writes, against a []byte model.
func TestStreamModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			t.Logf("seed %d", seed)
			path := writeFile(t, nil)
			// The shared cache stores ranges at their second read, or (odd
			// seeds) at the first; the other cache does the opposite.
			newCaches := []func(int64) *dirstore.Cache{dirstore.NewScanResistantCache, dirstore.NewCache}
			shared := newCaches[seed%2](int64(rng.IntN(4096) + 64))
			var streams []*dirstore.Stream
			for i := range 4 {
				o := &dirstore.StreamOptions{ChunkSize: []int{3, 16, 64, 1 << 20}[i], Cache: shared}
				if i == 3 {
					o.Cache = newCaches[1-seed%2](2048) // its own cache
				}
				streams = append(streams, openStream(t, path, os.O_RDWR, o))
			}
			streams = append(streams, openStream(t, path, os.O_RDWR, &dirstore.StreamOptions{Cache: dirstore.NoCache}))
			ext, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer ext.Close()
			var model []byte
			for i := range 3000 {
				s := streams[rng.IntN(len(streams))]
				off := int64(rng.IntN(200))
				n := rng.IntN(40) + 1
				switch op := rng.IntN(20); {
				case op < 6: // WriteAt
					data := make([]byte, n)
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
					if op == 0 {
						if _, err := ext.WriteAt(data, off); err != nil { // another writer, seen by stat
							t.Fatal(err)
						}
					} else if _, err := s.WriteAt(data, off); err != nil {
						t.Fatal(err)
					}
					if end := off + int64(n); end > int64(len(model)) {
						model = append(model, make([]byte, end-int64(len(model)))...)
					}
					copy(model[off:], data)
				case op < 13: // ReadAt
					p := make([]byte, n)
					m, err := s.ReadAt(p, off)
					want := model[min(off, int64(len(model))):min(off+int64(n), int64(len(model)))]
					if !bytes.Equal(p[:m], want) || (m < n) != (err == io.EOF) || (err != nil && err != io.EOF) {
						t.Fatalf("op %d: ReadAt(%d, %d) = %q, %v, want %q", i, n, off, p[:m], err, want)
					}
				default: // Seek + Read
					if _, err := s.Seek(off, io.SeekStart); err != nil {
						t.Fatal(err)
					}
					p := make([]byte, n)
					m, err := s.Read(p)
					want := model[min(off, int64(len(model))):min(off+int64(n), int64(len(model)))]
					if m < len(want) && m > 0 && err == nil {
						want = want[:m] // capped by ChunkSize
					}
					if !bytes.Equal(p[:m], want) {
						t.Fatalf("op %d: Read(%d) at %d = %q, %v, want %q", i, n, off, p[:m], err, want)
					}
				}
			}
		})
	}
}

// TestStreamTruncOpenSeen: opening with O_TRUNC is a change other Streams
// see, even if a same-size rewrite keeps size and (on a coarse clock) mtime.
func TestStreamTruncOpenSeen(t *testing.T) {
	c := dirstore.NewScanResistantCache(1 << 20)
	path := writeFile(t, []byte("aaaa"))
	r := openStream(t, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: c})
	p := make([]byte, 4)
	r.ReadAt(p, 0)
	mtime := func() time.Time { fi, _ := os.Stat(path); return fi.ModTime() }()
	w := openStream(t, path, os.O_WRONLY|os.O_TRUNC, &dirstore.StreamOptions{Cache: dirstore.NoCache})
	if _, err := w.Write([]byte("bbbb")); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, mtime, mtime) // only the generation can tell now
	if _, err := r.ReadAt(p, 0); err != nil || string(p) != "bbbb" {
		t.Fatalf("read %q, %v after a truncating rewrite", p, err)
	}
}

func TestStreamAppend(t *testing.T) {
	c := dirstore.NewScanResistantCache(1 << 20)
	path := writeFile(t, []byte("ab"))
	r := openStream(t, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: c})
	a := openStream(t, path, os.O_WRONLY|os.O_APPEND, &dirstore.StreamOptions{Cache: c})
	all := func() string {
		p := make([]byte, 64)
		n, _ := r.ReadAt(p, 0)
		return string(p[:n])
	}
	if got := all(); got != "ab" {
		t.Fatal(got)
	}
	for i, w := range []string{"cd", "efg"} {
		if _, err := a.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
		if pos, _ := a.Seek(0, io.SeekCurrent); pos != int64([]int{4, 7}[i]) {
			t.Fatalf("position after append %d", pos)
		}
	}
	if got := all(); got != "abcdefg" {
		t.Fatalf("after appends: %q", got)
	}
}

// TestStreamHooksUseStream: hooks run with no lock held, so they may read,
// write and even close the stream they are called for.
func TestStreamHooksUseStream(t *testing.T) {
	path := writeFile(t, []byte("0123456789"))
	s := openStream(t, path, os.O_RDWR, &dirstore.StreamOptions{Cache: dirstore.NewScanResistantCache(1 << 20)})
	var mu sync.Mutex // the async hook's reads fire the sync hooks too
	var inner []string
	add := func(s string) { mu.Lock(); inner = append(inner, s); mu.Unlock() }
	s.Hook(dirstore.OnWrite, func(s *dirstore.Stream, data []byte, n int) {
		p := make([]byte, n)
		s.ReadAt(p, 0) // fires OnRead
		add(string(p))
	})
	s.Hook(dirstore.OnRead, func(s *dirstore.Stream, data []byte, n int) {
		if n == 2 { // not the async hook's reads, below
			add("read:" + string(data))
		}
	})
	var async atomic.Int64
	s.HookAsync(dirstore.OnRead, func(s *dirstore.Stream, data []byte, n int) {
		p := make([]byte, 1)
		s.ReadAt(p, 0) // an async hook may use the stream too, until Close
		async.Add(int64(n))
	})
	if _, err := s.WriteAt([]byte("ab"), 0); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(inner)
	mu.Unlock()
	if want := []string{"read:ab", "ab"}; !slices.Equal(got, want) {
		t.Fatalf("hook calls %q, want %q", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The ReadAt of 2 in the write hook, then the async hook's own ReadAts
	// of 1 (each firing it again, until Close): at least 3, and Close waited.
	if n := async.Load(); n < 3 {
		t.Fatalf("async hooks saw %d bytes", n)
	}

	c := openStream(t, path, os.O_RDONLY, nil)
	c.Hook(dirstore.OnRead, func(s *dirstore.Stream, _ []byte, _ int) {
		if err := s.Close(); err != nil {
			t.Errorf("Close in a hook: %v", err)
		}
	})
	c.ReadAt(make([]byte, 3), 0)
	if _, err := c.ReadAt(make([]byte, 1), 0); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("stream not closed by the hook: %v", err)
	}
}

// TestStreamAsyncHooksNeverLost: many events, slow async hooks; Close waits
// for all of them, in order.
func TestStreamAsyncHooksNeverLost(t *testing.T) {
	path := writeFile(t, bytes.Repeat([]byte("x"), 1000))
	s := openStream(t, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: dirstore.NewScanResistantCache(1 << 20)})
	var got []int
	var mu sync.Mutex
	for h := range 2 {
		s.HookAsync(dirstore.OnRead, func(_ *dirstore.Stream, data []byte, n int) {
			if h == 0 {
				time.Sleep(10 * time.Microsecond)
			}
			mu.Lock()
			got = append(got, n*2+h)
			mu.Unlock()
		})
	}
	var want []int
	for i := range 500 {
		n := i%7 + 1
		s.ReadAt(make([]byte, n), int64(i))
		want = append(want, n*2, n*2+1)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("%d async calls, want %d, in order", len(got), len(want))
	}
}

func TestStreamCacheBudget(t *testing.T) {
	for _, newCache := range []func(int64) *dirstore.Cache{dirstore.NewScanResistantCache, dirstore.NewCache} {
		testStreamCacheBudget(t, newCache(3000))
	}
}

func testStreamCacheBudget(t *testing.T, c *dirstore.Cache) {
	content := make([]byte, 1<<16)
	for i := range content {
		content[i] = byte(i * 7)
	}
	path := writeFile(t, content)
	s := openStream(t, path, os.O_RDWR, &dirstore.StreamOptions{Cache: c, ChunkSize: 4096})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		off := rng.IntN(len(content))
		n := rng.IntN(1500) + 1
		if i%2 == 0 { // ranges read again, which a scan-resistant Cache stores too
			off, n = rng.IntN(8)*300, 300*(rng.IntN(3)+1)
		}
		p := make([]byte, n)
		m, _ := s.ReadAt(p, int64(off))
		if !bytes.Equal(p[:m], content[off:off+m]) {
			t.Fatal("wrong bytes")
		}
		if rng.IntN(10) == 0 {
			s.WriteAt(content[off:off+m], int64(off))
		}
		if st := c.Stats(); st.Bytes > st.MaxBytes {
			t.Fatalf("cache holds %d bytes, budget %d", st.Bytes, st.MaxBytes)
		}
	}
	if st := c.Stats(); st.Evictions == 0 {
		t.Fatalf("the budget was never reached: %+v", st)
	}
	for range 2 {
		s.ReadAt(make([]byte, 4000), 0) // one entry of 4000 > budget
	}
	if st := c.Stats(); st.Bytes > st.MaxBytes {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := dirstore.StreamCached(s, 0, 4000); ok {
		t.Fatal("an entry larger than the budget was cached")
	}
}

// TestStreamNoIdentLeak: the registry of files keeps a file while a Stream
// of it is open or a cache holds entries of it, and forgets it after, even
// when the cache is dropped without Purge.
func TestStreamNoIdentLeak(t *testing.T) {
	// Entries of deleted files of other tests, whose inodes the files here
	// may reuse, must not count.
	dirstore.DefaultCache().Purge()
	dir := t.TempDir()
	c := dirstore.NewScanResistantCache(1 << 20)
	var paths []string
	for i := range 20 {
		path := filepath.Join(dir, strconv.Itoa(i))
		os.WriteFile(path, []byte("data"), 0o600)
		paths = append(paths, path)
		s, err := dirstore.OpenStream(path, os.O_RDONLY, 0, &dirstore.StreamOptions{Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		s.ReadAt(make([]byte, 4), 0)
		s.ReadAt(make([]byte, 4), 0) // the second read stores the range
		s.Close()
	}
	if n := dirstore.StreamFilesTracked(paths...); n != len(paths) {
		t.Fatalf("%d of %d files with cached entries tracked", n, len(paths))
	}
	c.Purge()
	if n := dirstore.StreamFilesTracked(paths...); n != 0 {
		t.Fatalf("%d files still tracked with no stream and no entry", n)
	}

	func() {
		s, err := dirstore.OpenStream(paths[1], os.O_RDONLY, 0, &dirstore.StreamOptions{Cache: dirstore.NewScanResistantCache(1 << 20)})
		if err != nil {
			t.Fatal(err)
		}
		s.ReadAt(make([]byte, 4), 0)
		if dirstore.StreamFilesTracked(paths[1]) != 1 {
			t.Fatal("a file with an open stream is not tracked")
		}
		s.Close()
	}()
	if dirstore.StreamFilesTracked(paths[1]) != 0 {
		t.Fatal("a dropped cache keeps its files tracked")
	}
}

// Two processes: this one reads through a Stream, a child writes the file
// in place (same size, so only the modification time tells) and says so;
// every read after that must return the new bytes, though the old ones are
// in the cache. The child is this test binary run again.

const twoProcEnv = "DIRSTORE_STREAM_WRITER"

const twoProcSize = 4096

func versionBytes(v uint64) []byte {
	b := make([]byte, twoProcSize)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], v)
	}
	return b
}

func TestStreamTwoProcesses(t *testing.T) {
	if path := os.Getenv(twoProcEnv); path != "" {
		twoProcWriter(path)
		return
	}
	const rounds = 1500
	path := writeFile(t, versionBytes(0))
	cmd := exec.Command(os.Args[0], "-test.run=^TestStreamTwoProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), twoProcEnv+"="+path, "DIRSTORE_STREAM_ROUNDS="+strconv.Itoa(rounds))
	toChild, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	fromChild, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer toChild.Close()

	c := dirstore.NewScanResistantCache(1 << 20)
	s := openStream(t, path, os.O_RDONLY, &dirstore.StreamOptions{Cache: c, ChunkSize: 1024})
	check := func(round int, want uint64) {
		t.Helper()
		p := make([]byte, twoProcSize)
		read := func(how string, got []byte) {
			t.Helper()
			if !bytes.Equal(got, versionBytes(want)[:len(got)]) {
				t.Fatalf("round %d: %s returned bytes of version %d, want %d (stale)", round, how, binary.LittleEndian.Uint64(got), want)
			}
		}
		// Each twice: the second is a cache hit (in round 0, where every
		// read is a first one, it stores the range instead).
		for range 2 {
			if n, err := s.ReadAt(p, 0); n != twoProcSize || err != nil {
				t.Fatalf("ReadAt = %d, %v", n, err)
			}
			read("ReadAt", p)
			s.Seek(int64(round%4)*1024, io.SeekStart)
			n, _ := s.Read(p)
			read("Read", p[:n])
			s.ReadAt(p[:8], int64(round%512)*8)
			read("ReadAt(8)", p[:8])
		}
	}
	check(0, 0)
	lines := bufio.NewScanner(fromChild)
	for round := 1; round <= rounds; round++ {
		if !lines.Scan() {
			t.Fatalf("writer stopped at round %d: %v", round, lines.Err())
		}
		v, err := strconv.ParseUint(lines.Text(), 10, 64)
		if err != nil || v != uint64(round) {
			t.Fatalf("writer said %q at round %d", lines.Text(), round)
		}
		check(round, v)
		fmt.Fprintln(toChild, "ok")
	}
	st := c.Stats()
	t.Logf("%d rounds: %+v", rounds, st)
	if st.Hits < rounds || st.Stale < rounds {
		t.Fatalf("the cache was not exercised: %+v", st)
	}
}

// twoProcWriter is the child: it writes version after version, each in one
// of three ways, and waits for the reader after each.
func twoProcWriter(path string) {
	rounds, _ := strconv.Atoi(os.Getenv("DIRSTORE_STREAM_ROUNDS"))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	acks := bufio.NewScanner(os.Stdin)
	for v := uint64(1); v <= uint64(rounds); v++ {
		b := versionBytes(v)
		switch v % 3 {
		case 0: // in place, one write
			_, err = f.WriteAt(b, 0)
		case 1: // in place, in two writes
			if _, err = f.WriteAt(b[twoProcSize/2:], twoProcSize/2); err == nil {
				_, err = f.WriteAt(b[:twoProcSize/2], 0)
			}
		case 2: // truncate and rewrite
			if err = f.Truncate(0); err == nil {
				_, err = f.WriteAt(b, 0)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(v)
		if !acks.Scan() {
			os.Exit(3)
		}
	}
	os.Exit(0)
}

// TestStreamStress runs readers, writers and hooks on one file from many
// goroutines (for -race), then checks that no cache entry any of them made
// is stale.
func TestStreamStress(t *testing.T) {
	const size, block = 1 << 15, 64
	path := writeFile(t, make([]byte, size))
	shared := dirstore.NewScanResistantCache(16 << 10) // small: evictions all along
	own := dirstore.NewCache(1 << 20)
	opts := []*dirstore.StreamOptions{
		{Cache: shared, ChunkSize: 4096},
		{Cache: shared, ChunkSize: 256},
		{Cache: own, ChunkSize: 1024},
		{Cache: dirstore.NoCache},
	}
	common := openStream(t, path, os.O_RDWR, opts[0])
	var hookBytes, hookAsync, done atomic.Int64
	common.Hook(dirstore.OnRead, func(s *dirstore.Stream, data []byte, n int) {
		if n != len(data) {
			t.Error("n != len(data)")
		}
		hookBytes.Add(int64(n))
	})
	common.HookAsync(dirstore.OnWrite, func(s *dirstore.Stream, data []byte, n int) {
		s.ReadAt(make([]byte, 8), 0)
		hookAsync.Add(int64(n))
	})
	var readBytes, written atomic.Int64
	lengths := []int{block, 256, 1024, 4096}
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Second)
	if testing.Short() {
		deadline = time.Now().Add(200 * time.Millisecond)
	}
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			var s *dirstore.Stream
			if g%2 == 0 {
				s = common
			} else {
				s = openStream(t, path, os.O_RDWR, opts[g%len(opts)])
			}
			p := make([]byte, 4096)
			for i := 0; time.Now().Before(deadline); i++ {
				off := int64(rng.IntN(size/block)) * block
				n := lengths[rng.IntN(len(lengths))]
				switch {
				case g < 2 && i%2 == 0: // writers
					b := bytes.Repeat([]byte{byte(rng.Uint32())}, n)
					if _, err := s.WriteAt(b, off); err != nil {
						t.Error(err)
						return
					}
					if s == common {
						written.Add(int64(n))
					}
				case g%2 == 1: // own stream: Seek and Read
					s.Seek(off, io.SeekStart)
					if _, err := s.Read(p[:n]); err != nil && err != io.EOF {
						t.Error(err)
						return
					}
				default:
					m, err := s.ReadAt(p[:n], off)
					if err != nil && err != io.EOF {
						t.Error(err)
						return
					}
					readBytes.Add(int64(m))
				}
				if i%500 == 0 && g == 7 {
					shared.Purge()
				}
			}
			done.Add(1)
		})
	}
	wg.Wait()
	if err := common.Close(); err != nil {
		t.Fatal(err)
	}
	if hookBytes.Load() < readBytes.Load() || hookAsync.Load() != written.Load() {
		t.Fatalf("hooks saw %d read and %d written bytes, want %d+ and %d", hookBytes.Load(), hookAsync.Load(), readBytes.Load(), written.Load())
	}

	// Quiet now: every key the readers used must give the file's bytes.
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts[:3] {
		s := openStream(t, path, os.O_RDONLY, o)
		for off := int64(0); off < size; off += block {
			for _, n := range lengths {
				p := make([]byte, n)
				m, _ := s.ReadAt(p, off)
				if !bytes.Equal(p[:m], disk[off:off+int64(m)]) {
					t.Fatalf("chunk %d: ReadAt(%d, %d) returned stale bytes", o.ChunkSize, n, off)
				}
				s.Seek(off, io.SeekStart)
				m, _ = s.Read(p)
				if !bytes.Equal(p[:m], disk[off:off+int64(m)]) {
					t.Fatalf("chunk %d: Read(%d) at %d returned stale bytes", o.ChunkSize, n, off)
				}
			}
		}
	}
	t.Logf("shared %+v; own %+v", shared.Stats(), own.Stats())
}

// TestStreamHitAllocs: a cache hit allocates nothing; a miss in steady state
// allocates only golang-lru's list node (the evicted entry's buffer and
// record take the new data).
func TestStreamHitAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	path := writeFile(t, make([]byte, 1<<20))
	for _, o := range []*dirstore.StreamOptions{
		{Immutable: true, Cache: dirstore.NewScanResistantCache(1 << 20)},
		{Cache: dirstore.NewScanResistantCache(1 << 20)},
	} {
		s := openStream(t, path, os.O_RDONLY, o)
		p := make([]byte, 4096)
		s.ReadAt(p, 0)
		s.ReadAt(p, 0) // stored now
		if n := testing.AllocsPerRun(100, func() { s.ReadAt(p, 0) }); n != 0 {
			t.Errorf("Immutable=%t: %v allocations per hit", o.Immutable, n)
		}
		if n := testing.AllocsPerRun(100, func() { s.Seek(0, io.SeekStart); s.Read(p) }); n != 0 {
			t.Errorf("Immutable=%t: %v allocations per Read hit", o.Immutable, n)
		}
		// A miss that stores its range (every miss, for a first-read
		// cache), and one that does not (a first read).
		for _, k := range []struct {
			c    *dirstore.Cache
			most float64
		}{
			{dirstore.NewCache(64 << 10), 1},
			{dirstore.NewScanResistantCache(64 << 10), 0},
		} {
			small := openStream(t, path, os.O_RDONLY, &dirstore.StreamOptions{Immutable: o.Immutable, Cache: k.c})
			off := int64(0)
			miss := func() { small.ReadAt(p, off); off = (off + 4096) % (1 << 20) }
			for range 512 {
				miss()
			}
			if n := testing.AllocsPerRun(100, miss); n > k.most {
				t.Errorf("Immutable=%t: %v allocations per miss, want at most %v", o.Immutable, n, k.most)
			}
			if st := k.c.Stats(); st.Hits != 0 || (st.Admitted == 0) != (k.most == 0) {
				t.Errorf("Immutable=%t: not the misses meant: %+v", o.Immutable, st)
			}
		}
	}
}
