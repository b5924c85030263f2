package dirstore_test

// Ports of the 36 tests of duck's FileIOStream (duck/utils/fileio/test_fileio.py),
// in its order. Duck's read() (size -1, "the rest of the file") becomes one Read
// into a buffer larger than every file here (fullRead), so duck's cache key
// "path:pos:-1" is (pos, fullRead) here; FILE_CACHE.get becomes StreamCached;
// fresh_cache() becomes a new Cache per test, from NewCache: duck's
// cache stores the result of every read, and so does that one (a Cache from
// NewScanResistantCache stores a range at its second read:
// stream_admission_test.go).
// Duck's AsyncFileIOStream has no Go twin: its tests run the operations on
// another goroutine, with hooks registered by HookAsync where duck awaits
// coroutine hooks. Seven of them fail in duck itself (they never open the
// stream); they pass here.

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirstore/dirstore"
)

// fullRead is the Read size standing for duck's read() of everything.
const fullRead = 1 << 10

func duckFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// duckOpen opens path with flag ("rb" is O_RDONLY, "wb" O_WRONLY|O_CREATE|O_TRUNC,
// "r+b" O_RDWR) and cache c.
func duckOpen(t *testing.T, path string, flag int, c *dirstore.Cache) *dirstore.Stream {
	t.Helper()
	return duckOpenOpts(t, path, flag, &dirstore.StreamOptions{Cache: c})
}

func duckOpenOpts(t *testing.T, path string, flag int, o *dirstore.StreamOptions) *dirstore.Stream {
	t.Helper()
	s, err := dirstore.OpenStream(path, flag, 0o600, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const wb = os.O_WRONLY | os.O_CREATE | os.O_TRUNC

// duckRead does one Read of at most n bytes; the end of the file is an
// empty result, as in Python.
func duckRead(t *testing.T, s *dirstore.Stream, n int) string {
	t.Helper()
	p := make([]byte, n)
	m, err := s.Read(p)
	if err != nil && err != io.EOF {
		t.Fatalf("Read(%d): %v", n, err)
	}
	return string(p[:m])
}

func duckWrite(t *testing.T, s *dirstore.Stream, data string) {
	t.Helper()
	if n, err := s.Write([]byte(data)); n != len(data) || err != nil {
		t.Fatalf("Write(%q) = %d, %v", data, n, err)
	}
}

func duckSeek(t *testing.T, s *dirstore.Stream, off int64) {
	t.Helper()
	if _, err := s.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
}

func duckClose(t *testing.T, s *dirstore.Stream) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func wantCached(t *testing.T, s *dirstore.Stream, off int64, n int, want string) {
	t.Helper()
	got, ok := dirstore.StreamCached(s, off, n)
	if !ok {
		t.Fatalf("no cache entry at (%d, %d), want %q", off, n, want)
	}
	if string(got) != want {
		t.Fatalf("cache entry at (%d, %d) = %q, want %q", off, n, got, want)
	}
}

func wantNotCached(t *testing.T, s *dirstore.Stream, off int64, n int) {
	t.Helper()
	if got, ok := dirstore.StreamCached(s, off, n); ok {
		t.Fatalf("cache entry at (%d, %d) = %q, want none", off, n, got)
	}
}

// async runs f on another goroutine and waits for it: the Go form of
// awaiting a coroutine.
func async(f func()) {
	var wg sync.WaitGroup
	wg.Go(f)
	wg.Wait()
}

// Core read / cache

func TestDuckOpenAndRead(t *testing.T) {
	path := duckFile(t, "hello world")
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	data := duckRead(t, s, fullRead)
	duckClose(t, s)
	if data != "hello world" {
		t.Fatalf("read %q", data)
	}
}

func TestDuckReadPopulatesCache(t *testing.T) {
	path := duckFile(t, "cache me")
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	duckRead(t, s, fullRead)
	duckClose(t, s)
	wantCached(t, s, 0, fullRead, "cache me")
}

// Duck replaces the content by a shorter one ("CORRUPTED"); the size is part
// of the freshness check here, so the port keeps the length, and checks too
// that the shorter one is seen.
func TestDuckReadServesCacheHit(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "from cache")
	s := duckOpen(t, path, os.O_RDONLY, c)
	duckRead(t, s, fullRead)
	duckClose(t, s)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	mtime := fi.ModTime()
	if err := os.WriteFile(path, []byte("CORRUPTED!"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	s2 := duckOpen(t, path, os.O_RDONLY, c)
	hits := c.Stats().Hits
	if second := duckRead(t, s2, fullRead); second != "from cache" {
		t.Fatalf("second read %q, want the cached bytes", second)
	}
	if c.Stats().Hits != hits+1 {
		t.Fatal("second read was not a cache hit")
	}

	// Not in duck: a change of size is a change, whatever the mtime says.
	if err := os.WriteFile(path, []byte("CORRUPTED"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	duckSeek(t, s2, 0)
	if third := duckRead(t, s2, fullRead); third != "CORRUPTED" {
		t.Fatalf("read after a change of size = %q", third)
	}
	duckClose(t, s2)
}

func TestDuckCacheMissOnMtimeChange(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "version one")
	s := duckOpen(t, path, os.O_RDONLY, c)
	duckRead(t, s, fullRead)
	duckClose(t, s)

	if err := os.WriteFile(path, []byte("version two"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	s2 := duckOpen(t, path, os.O_RDONLY, c)
	result := duckRead(t, s2, fullRead)
	duckClose(t, s2)
	if result != "version two" {
		t.Fatalf("read %q, want the new version", result)
	}
}

// Cache-on-write

func TestDuckWriteUpdatesCache(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "AAAABBBB")
	r := duckOpen(t, path, os.O_RDONLY, c)
	duckRead(t, r, fullRead)
	duckClose(t, r)

	w := duckOpen(t, path, os.O_RDWR, c)
	duckSeek(t, w, 4)
	duckWrite(t, w, "CCCC")
	duckClose(t, w)

	wantCached(t, w, 4, 4, "CCCC")
	wantCached(t, w, 0, fullRead, "AAAACCCC")
}

// Duck compares the mtime stored with the entry with the file's. Here the
// entry is fresh exactly when a later read hits it.
func TestDuckWriteCacheEntryHasFreshMtime(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "x")
	w := duckOpen(t, path, wb, c)
	duckWrite(t, w, "fresh")
	duckClose(t, w)
	wantCached(t, w, 0, 5, "fresh")

	r := duckOpen(t, path, os.O_RDONLY, c)
	hits := c.Stats().Hits
	if got := duckRead(t, r, 5); got != "fresh" {
		t.Fatalf("read %q", got)
	}
	if c.Stats().Hits != hits+1 {
		t.Fatal("the written entry was not fresh: the read missed")
	}
}

func TestDuckReadAfterWriteServedFromCache(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "original")
	w := duckOpen(t, path, wb, c)
	duckWrite(t, w, "written data")
	duckClose(t, w)
	wantCached(t, w, 0, 12, "written data")

	r := duckOpen(t, path, os.O_RDONLY, c)
	st := c.Stats()
	if got := duckRead(t, r, 12); got != "written data" {
		t.Fatalf("read %q", got)
	}
	if s2 := c.Stats(); s2.Hits != st.Hits+1 || s2.Misses != st.Misses {
		t.Fatalf("read after write: %+v, then %+v: want one hit, no miss", st, s2)
	}
}

// Duck checks that _cache_mtime is set by a write; here, that IsModified has
// a baseline after a write (false now, true after a change).
func TestDuckCacheMtimeUpdatedOnWrite(t *testing.T) {
	path := duckFile(t, "x")
	w := duckOpen(t, path, wb, dirstore.NewCache(1<<20))
	duckWrite(t, w, "written")
	duckClose(t, w)
	if w.IsModified() {
		t.Fatal("IsModified right after a write")
	}
	future := time.Now().Add(10 * time.Second)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	if !w.IsModified() {
		t.Fatal("no baseline after a write: IsModified false after a change")
	}
}

// IsModified

func TestDuckIsModifiedFalseBeforeRead(t *testing.T) {
	path := duckFile(t, "data")
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	if s.IsModified() {
		t.Fatal("IsModified before any read")
	}
}

func TestDuckIsModifiedFalseAfterReadUnchanged(t *testing.T) {
	path := duckFile(t, "stable")
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	duckRead(t, s, fullRead)
	duckClose(t, s)
	if s.IsModified() {
		t.Fatal("IsModified of an unchanged file")
	}
}

func TestDuckIsModifiedTrueAfterExternalWrite(t *testing.T) {
	path := duckFile(t, "original")
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	duckRead(t, s, fullRead)
	duckClose(t, s)
	future := time.Now().Add(10 * time.Second)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	if !s.IsModified() {
		t.Fatal("IsModified false after an external change")
	}
}

// on_read hooks

type hookCall struct {
	ev   string
	data string
	n    int
}

func TestDuckOnReadHookFiresOnCacheMiss(t *testing.T) {
	path := duckFile(t, "hook data")
	var log []hookCall
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	if err := s.Hook(dirstore.OnRead, func(_ *dirstore.Stream, data []byte, n int) {
		log = append(log, hookCall{"read", string(data), n})
	}); err != nil {
		t.Fatal(err)
	}
	duckRead(t, s, fullRead)
	duckClose(t, s)
	if want := []hookCall{{"read", "hook data", 9}}; !slices.Equal(log, want) {
		t.Fatalf("hook calls %v, want %v", log, want)
	}
}

func TestDuckOnReadHookFiresOnCacheHit(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "cached hook")
	s1 := duckOpen(t, path, os.O_RDONLY, c)
	duckRead(t, s1, fullRead)
	duckClose(t, s1)

	var log []int
	s2 := duckOpen(t, path, os.O_RDONLY, c)
	s2.Hook(dirstore.OnRead, func(_ *dirstore.Stream, _ []byte, n int) { log = append(log, n) })
	hits := c.Stats().Hits
	duckRead(t, s2, fullRead)
	duckClose(t, s2)
	if c.Stats().Hits != hits+1 {
		t.Fatal("the read was not a hit")
	}
	if !slices.Equal(log, []int{len("cached hook")}) {
		t.Fatalf("hook calls %v", log)
	}
}

func TestDuckOnReadMultipleHooks(t *testing.T) {
	path := duckFile(t, "multi")
	var order []string
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	s.Hook(dirstore.OnRead, func(*dirstore.Stream, []byte, int) { order = append(order, "first") })
	s.Hook(dirstore.OnRead, func(*dirstore.Stream, []byte, int) { order = append(order, "second") })
	duckRead(t, s, fullRead)
	duckClose(t, s)
	if !slices.Equal(order, []string{"first", "second"}) {
		t.Fatalf("order %v", order)
	}
}

// on_write hooks

func TestDuckOnWriteHookFires(t *testing.T) {
	path := duckFile(t, "")
	var log []hookCall
	s := duckOpen(t, path, wb, dirstore.NewCache(1<<20))
	s.Hook(dirstore.OnWrite, func(_ *dirstore.Stream, data []byte, n int) {
		log = append(log, hookCall{"write", string(data), n})
	})
	duckWrite(t, s, "written bytes")
	duckClose(t, s)
	if want := []hookCall{{"write", "written bytes", 13}}; !slices.Equal(log, want) {
		t.Fatalf("hook calls %v, want %v", log, want)
	}
}

func TestDuckOnWriteHookReceivesCorrectStream(t *testing.T) {
	path := duckFile(t, "")
	var received []*dirstore.Stream
	s := duckOpen(t, path, wb, dirstore.NewCache(1<<20))
	s.Hook(dirstore.OnWrite, func(s *dirstore.Stream, _ []byte, _ int) { received = append(received, s) })
	duckWrite(t, s, "x")
	duckClose(t, s)
	if len(received) != 1 || received[0] != s {
		t.Fatalf("hook got %v, want the stream %p", received, s)
	}
}

func TestDuckHookInvalidEventRaises(t *testing.T) {
	path := duckFile(t, "x")
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	for _, hook := range []func(dirstore.Event, dirstore.HookFunc) error{s.Hook, s.HookAsync} {
		err := hook("on_teleport", func(*dirstore.Stream, []byte, int) {})
		if err == nil {
			t.Fatal("no error for an unknown event")
		}
		if !strings.Contains(err.Error(), "on_teleport") {
			t.Fatalf("error %q does not name the event", err)
		}
		if !errors.Is(err, fs.ErrInvalid) {
			t.Fatalf("error %v does not match fs.ErrInvalid", err)
		}
	}
}

func TestDuckOnReadAndWriteHooksIndependent(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "")
	var reads, writes []int
	onRead := func(_ *dirstore.Stream, _ []byte, n int) { reads = append(reads, n) }
	onWrite := func(_ *dirstore.Stream, _ []byte, n int) { writes = append(writes, n) }

	w := duckOpen(t, path, wb, c)
	w.Hook(dirstore.OnRead, onRead)
	w.Hook(dirstore.OnWrite, onWrite)
	duckWrite(t, w, "hello")
	duckClose(t, w)
	if len(reads) != 0 || !slices.Equal(writes, []int{5}) {
		t.Fatalf("after the write: reads %v, writes %v", reads, writes)
	}

	r := duckOpen(t, path, os.O_RDONLY, c)
	r.Hook(dirstore.OnRead, onRead)
	r.Hook(dirstore.OnWrite, onWrite)
	c.Purge() // make the read go to the file
	duckRead(t, r, fullRead)
	duckClose(t, r)
	if !slices.Equal(reads, []int{5}) || !slices.Equal(writes, []int{5}) {
		t.Fatalf("after the read: reads %v, writes %v", reads, writes)
	}
}

// Async hooks (three of the seven that fail in duck)

func TestDuckAsyncHookOnRead(t *testing.T) {
	path := duckFile(t, "async hook read")
	var mu sync.Mutex
	var log []hookCall
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	s.HookAsync(dirstore.OnRead, func(_ *dirstore.Stream, data []byte, n int) {
		mu.Lock()
		log = append(log, hookCall{"async_read", string(data), n})
		mu.Unlock()
	})
	async(func() { duckRead(t, s, fullRead) })
	duckClose(t, s) // waits for the hook
	if want := []hookCall{{"async_read", "async hook read", 15}}; !slices.Equal(log, want) {
		t.Fatalf("hook calls %v, want %v", log, want)
	}
}

func TestDuckAsyncHookOnWrite(t *testing.T) {
	path := duckFile(t, "")
	var mu sync.Mutex
	var log []hookCall
	s := duckOpen(t, path, wb, dirstore.NewCache(1<<20))
	s.HookAsync(dirstore.OnWrite, func(_ *dirstore.Stream, data []byte, n int) {
		mu.Lock()
		log = append(log, hookCall{"async_write", string(data), n})
		mu.Unlock()
	})
	async(func() { duckWrite(t, s, "async written") })
	duckClose(t, s)
	if want := []hookCall{{"async_write", "async written", 13}}; !slices.Equal(log, want) {
		t.Fatalf("hook calls %v, want %v", log, want)
	}
}

func TestDuckMixedSyncAndAsyncHooks(t *testing.T) {
	path := duckFile(t, "mixed")
	var mu sync.Mutex
	var order []string
	add := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	s.Hook(dirstore.OnRead, func(*dirstore.Stream, []byte, int) { add("sync") })
	s.HookAsync(dirstore.OnRead, func(*dirstore.Stream, []byte, int) { add("async") })
	async(func() { duckRead(t, s, fullRead) })
	duckClose(t, s)
	if !slices.Equal(order, []string{"sync", "async"}) {
		t.Fatalf("order %v", order)
	}
}

// Async cache-on-write (two of the seven)

func TestDuckAsyncWriteUpdatesCache(t *testing.T) {
	path := duckFile(t, "")
	s := duckOpen(t, path, wb, dirstore.NewCache(1<<20))
	async(func() { duckWrite(t, s, "async written data") })
	duckClose(t, s)
	wantCached(t, s, 0, 18, "async written data")
}

func TestDuckAsyncReadAfterWriteServedFromCache(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "old")
	w := duckOpen(t, path, wb, c)
	async(func() { duckWrite(t, w, "new content") })
	duckClose(t, w)
	wantCached(t, w, 0, 11, "new content")

	r := duckOpen(t, path, os.O_RDONLY, c)
	hits := c.Stats().Hits
	var got string
	async(func() { got = duckRead(t, r, 11) })
	if got != "new content" || c.Stats().Hits != hits+1 {
		t.Fatalf("read %q, hits %d -> %d: want a hit", got, hits, c.Stats().Hits)
	}
}

// Seek correctness

func TestDuckSeekedFullReadUsesOwnCacheSlot(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "ABCDEFGH")
	s := duckOpen(t, path, os.O_RDONLY, c)
	duckSeek(t, s, 4)
	first := duckRead(t, s, fullRead)
	duckSeek(t, s, 4)
	hits := c.Stats().Hits
	second := duckRead(t, s, fullRead)
	duckClose(t, s)
	if first != "EFGH" || second != "EFGH" {
		t.Fatalf("reads %q, %q", first, second)
	}
	if c.Stats().Hits != hits+1 {
		t.Fatal("the second seeked read was not a hit")
	}
	wantCached(t, s, 4, fullRead, "EFGH")
}

func TestDuckSeekedPartialReadIndependentSlot(t *testing.T) {
	path := duckFile(t, "ABCDEFGH")
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	duckRead(t, s, 4)
	duckSeek(t, s, 4)
	got := duckRead(t, s, 4)
	duckClose(t, s)
	if got != "EFGH" {
		t.Fatalf("read %q", got)
	}
	wantCached(t, s, 0, 4, "ABCD")
	wantCached(t, s, 4, 4, "EFGH")
}

func TestDuckMultipleSeekPositionsAllCached(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	content := "0123456789ABCDEF"
	path := duckFile(t, content)
	positions := []int64{0, 4, 8, 12}
	pass := func() []string {
		s := duckOpen(t, path, os.O_RDONLY, c)
		var got []string
		for _, pos := range positions {
			duckSeek(t, s, pos)
			got = append(got, duckRead(t, s, 4))
		}
		duckClose(t, s)
		return got
	}
	first := pass()
	st := c.Stats()
	second := pass()
	if s2 := c.Stats(); s2.Hits != st.Hits+4 || s2.Misses != st.Misses {
		t.Fatalf("second pass: %+v, then %+v: want 4 hits and no miss", st, s2)
	}
	for i, pos := range positions {
		want := content[pos : pos+4]
		if first[i] != want || second[i] != want {
			t.Fatalf("pos %d: %q, %q, want %q", pos, first[i], second[i], want)
		}
	}
}

func TestDuckSeekedWritePatchesOverlappingCachedEntries(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "AAAABBBB")
	s := duckOpen(t, path, os.O_RDONLY, c)
	duckRead(t, s, fullRead)
	duckSeek(t, s, 0)
	duckRead(t, s, 4)
	duckClose(t, s)

	w := duckOpen(t, path, os.O_RDWR, c)
	duckSeek(t, w, 4)
	duckWrite(t, w, "CCCC")
	duckClose(t, w)

	wantCached(t, w, 0, fullRead, "AAAACCCC") // patched in place
	wantCached(t, w, 0, 4, "AAAA")            // no overlap: kept
	wantCached(t, w, 4, 4, "CCCC")            // the written slice

	// Not in duck: all three are fresh, not just present.
	r := duckOpen(t, path, os.O_RDONLY, c)
	st := c.Stats()
	got := duckRead(t, r, fullRead)
	duckSeek(t, r, 0)
	got += duckRead(t, r, 4)
	duckSeek(t, r, 4)
	got += duckRead(t, r, 4)
	if want := "AAAACCCC" + "AAAA" + "CCCC"; got != want || c.Stats().Hits != st.Hits+3 {
		t.Fatalf("reads %q, hits %d -> %d: want %q from 3 hits", got, st.Hits, c.Stats().Hits, want)
	}
}

func TestDuckSeekedWriteEvictsBoundaryPartialOverlaps(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "ABCDEFGH")
	s := duckOpen(t, path, os.O_RDONLY, c)
	duckSeek(t, s, 2)
	duckRead(t, s, 4)
	duckClose(t, s)
	wantCached(t, s, 2, 4, "CDEF")

	w := duckOpen(t, path, os.O_RDWR, c)
	duckWrite(t, w, "XXXX") // 0-3; the entry covers 2-5
	duckClose(t, w)
	wantNotCached(t, w, 2, 4)
}

// Async seek correctness (the last two of the seven)

func TestDuckAsyncSeekedFullReadIndependentSlot(t *testing.T) {
	path := duckFile(t, "ABCDEFGH")
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	var got string
	async(func() {
		duckRead(t, s, fullRead)
		duckSeek(t, s, 4)
		got = duckRead(t, s, fullRead) // not the cached pos-0 bytes
	})
	duckClose(t, s)
	if got != "EFGH" {
		t.Fatalf("read %q", got)
	}
	wantCached(t, s, 4, fullRead, "EFGH")
}

func TestDuckAsyncSeekedWritePatchesCache(t *testing.T) {
	c := dirstore.NewCache(1 << 20)
	path := duckFile(t, "AAAABBBB")
	r := duckOpen(t, path, os.O_RDONLY, c)
	async(func() { duckRead(t, r, fullRead) })
	duckClose(t, r)

	w := duckOpen(t, path, os.O_RDWR, c)
	async(func() {
		duckSeek(t, w, 4)
		duckWrite(t, w, "CCCC")
	})
	duckClose(t, w)
	wantCached(t, w, 0, fullRead, "AAAACCCC")
}

// Misc

func TestDuckSeekAndTell(t *testing.T) {
	path := duckFile(t, "ABCDEFGH")
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	duckSeek(t, s, 4)
	if pos, err := s.Seek(0, io.SeekCurrent); pos != 4 || err != nil {
		t.Fatalf("tell after Seek(4) = %d, %v", pos, err)
	}
	if got := duckRead(t, s, 4); got != "EFGH" {
		t.Fatalf("read after seek %q", got)
	}
	duckClose(t, s)
}

// Duck's _total_read_bytes is what an OnRead hook collects here.
func TestDuckTotalReadBytesAccumulates(t *testing.T) {
	path := duckFile(t, "ABCDEFGH")
	var total []byte
	s := duckOpenOpts(t, path, os.O_RDONLY, &dirstore.StreamOptions{ChunkSize: 8, Cache: dirstore.NewCache(1 << 20)})
	s.Hook(dirstore.OnRead, func(_ *dirstore.Stream, data []byte, _ int) { total = append(total, data...) })
	duckRead(t, s, 3)
	duckRead(t, s, 4)
	duckClose(t, s)
	if !bytes.Contains(total, []byte("ABC")) || !bytes.Contains(total, []byte("DEF")) || string(total) != "ABCDEFG" {
		t.Fatalf("accumulated %q", total)
	}
	// Not in duck: ChunkSize caps one Read.
	s2 := duckOpenOpts(t, path, os.O_RDONLY, &dirstore.StreamOptions{ChunkSize: 3, Cache: dirstore.NewCache(1 << 20)})
	if got := duckRead(t, s2, fullRead); got != "ABC" {
		t.Fatalf("Read with ChunkSize 3 = %q", got)
	}
}

// A Go Stream is open from OpenStream to Close: the unopened state of duck is
// the closed one.
func TestDuckReadRaisesIfNotOpen(t *testing.T) {
	path := duckFile(t, "x")
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	duckClose(t, s)
	_, err := s.Read(make([]byte, 1))
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrClosed) || !errors.As(err, &pe) || pe.Path != path {
		t.Fatalf("Read after Close: %v, want a *fs.PathError for %s matching fs.ErrClosed", err, path)
	}
}

// Duck converts a stream to its async class and keeps the hooks. A Go
// Stream has no async class: the hooks stay with it whatever goroutine
// uses it.
func TestDuckToAsyncPreservesHooks(t *testing.T) {
	path := duckFile(t, "convert")
	var mu sync.Mutex
	var log []int
	s := duckOpen(t, path, os.O_RDONLY, dirstore.NewCache(1<<20))
	s.Hook(dirstore.OnRead, func(_ *dirstore.Stream, _ []byte, n int) { mu.Lock(); log = append(log, n); mu.Unlock() })
	s.HookAsync(dirstore.OnRead, func(_ *dirstore.Stream, _ []byte, n int) { mu.Lock(); log = append(log, -n); mu.Unlock() })
	async(func() { duckRead(t, s, fullRead) })
	duckClose(t, s)
	if !slices.Equal(log, []int{7, -7}) {
		t.Fatalf("hook calls %v", log)
	}
}

// Duck's cache holds 3 keys; this one holds 12 bytes, three 4-byte reads.
func TestDuckLRUEviction(t *testing.T) {
	c := dirstore.NewCache(12)
	path := duckFile(t, "aaaabbbbccccdddd")
	s := duckOpen(t, path, os.O_RDONLY, c)
	readAt := func(off int64) {
		duckSeek(t, s, off)
		duckRead(t, s, 4)
	}
	readAt(0)  // a
	readAt(4)  // b
	readAt(8)  // c
	readAt(0)  // a becomes the most recently used
	readAt(12) // d: b is the least recently used and goes
	wantNotCached(t, s, 4, 4)
	wantCached(t, s, 0, 4, "aaaa")
	wantCached(t, s, 8, 4, "cccc")
	wantCached(t, s, 12, 4, "dddd")
	if st := c.Stats(); st.Evictions != 1 || st.Entries != 3 || st.Bytes != 12 {
		t.Fatalf("stats %+v", st)
	}
}

// Duck's async context manager is defer Close here.
func TestDuckAsyncContextManager(t *testing.T) {
	path := duckFile(t, "ctx manager")
	var s *dirstore.Stream
	var data string
	async(func() {
		var err error
		s, err = dirstore.OpenStream(path, os.O_RDONLY, 0, &dirstore.StreamOptions{Cache: dirstore.NewCache(1 << 20)})
		if err != nil {
			t.Error(err)
			return
		}
		defer s.Close()
		data = duckRead(t, s, fullRead)
	})
	if data != "ctx manager" {
		t.Fatalf("read %q", data)
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Read after the deferred Close: %v", err)
	}
}
