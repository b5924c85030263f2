package rangecache

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

func newIdent(t *testing.T) *Ident {
	t.Helper()
	return Acquire(IdentKey{Space: NewSpace(), Name: t.Name()})
}

func get(c *Cache, id *Ident, snap Snapshot, off int64, n int) (string, bool) {
	p := make([]byte, n)
	m, ok := c.Get(id, snap, off, p)
	return string(p[:m]), ok
}

func TestCacheGetPut(t *testing.T) {
	c := New(1 << 10)
	id := newIdent(t)
	snap := Snapshot{Size: 8, Mtime: 1}
	if _, ok := get(c, id, snap, 0, 4); ok {
		t.Fatal("hit in an empty cache")
	}
	c.Put(id, snap, id.Gen(), 0, 4, []byte("abcd"))
	c.Put(id, snap, id.Gen(), 4, 16, []byte("efgh")) // the file ended
	if got, ok := get(c, id, snap, 0, 4); !ok || got != "abcd" {
		t.Fatalf("Get = %q, %v", got, ok)
	}
	if got, ok := get(c, id, snap, 4, 16); !ok || got != "efgh" {
		t.Fatalf("Get of a short entry = %q, %v", got, ok)
	}
	if _, ok := get(c, id, snap, 0, 5); ok {
		t.Fatal("another length hit")
	}
	st := c.Stats()
	if st.Hits != 2 || st.Misses != 2 || st.Entries != 2 || st.Bytes != 8 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCacheStaleDropped(t *testing.T) {
	c := New(1 << 10)
	id := newIdent(t)
	snap := Snapshot{Size: 8, Mtime: 1}
	c.Put(id, snap, id.Gen(), 0, 4, []byte("abcd"))
	c.Put(id, snap, id.Gen(), 4, 4, []byte("efgh"))
	if _, ok := get(c, id, Snapshot{Size: 8, Mtime: 2}, 0, 4); ok {
		t.Fatal("hit under another mtime")
	}
	if st := c.Stats(); st.Entries != 0 || st.Stale != 2 {
		t.Fatalf("the file's entries were not all dropped: %+v", st)
	}

	c.Put(id, snap, id.Gen(), 0, 4, []byte("abcd"))
	id.Bump()
	if _, ok := get(c, id, snap, 0, 4); ok {
		t.Fatal("hit after the generation moved")
	}
}

func TestCachePutAfterWriteDiscarded(t *testing.T) {
	c := New(1 << 10)
	id := newIdent(t)
	snap := Snapshot{Size: 4}
	gen := id.Gen() // a reader loads the generation, then reads...
	id.Bump()       // ...while a write lands
	c.Put(id, snap, gen, 0, 4, []byte("old!"))
	if c.Stats().Entries != 0 {
		t.Fatal("a read older than a write was cached")
	}
}

func TestCacheBudget(t *testing.T) {
	c := New(10)
	id := newIdent(t)
	snap := Snapshot{Size: 100}
	c.Put(id, snap, 0, 0, 11, bytes.Repeat([]byte("x"), 11))
	if c.Stats().Entries != 0 {
		t.Fatal("a value larger than the budget was cached")
	}
	for i := range 5 {
		c.Put(id, snap, 0, int64(i*4), 4, []byte("abcd"))
		if b := c.Stats().Bytes; b > 10 {
			t.Fatalf("holding %d bytes, budget 10", b)
		}
	}
	st := c.Stats()
	if st.Entries != 2 || st.Evictions != 3 {
		t.Fatalf("stats %+v", st)
	}
	// The two most recent remain.
	for _, off := range []int64{12, 16} {
		if _, ok := c.Peek(id, off, 4); !ok {
			t.Fatalf("entry at %d evicted", off)
		}
	}
}

// collected waits for the Ident of k to be collected and forgotten.
func collected(t *testing.T, k IdentKey) {
	t.Helper()
	for range 100 {
		runtime.GC()
		registry.mu.Lock()
		_, ok := registry.m[k]
		registry.mu.Unlock()
		if !ok {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("the Ident of %v was never forgotten", k)
}

func TestCacheIdentLifetime(t *testing.T) {
	k := IdentKey{Space: NewSpace(), Name: "x"}
	id := Acquire(k)
	if Acquire(k) != id {
		t.Fatal("two Idents for one key")
	}
	num := id.id
	c := New(1 << 10)
	c.Put(id, Snapshot{}, 0, 0, 1, []byte("a"))
	id = nil
	runtime.GC()
	runtime.GC()
	if !Registered(k) {
		t.Fatal("Ident forgotten while a cache holds entries of it")
	}
	c.Purge()
	collected(t, k)
	if Acquire(k).id == num {
		t.Fatal("a forgotten Ident came back")
	}

	// A cache dropped without Purge does not keep its files registered.
	k2 := IdentKey{Space: NewSpace(), Name: "y"}
	New(1<<10).Put(Acquire(k2), Snapshot{}, 0, 0, 1, []byte("a"))
	collected(t, k2)
}

// TestCacheWriteRules checks the patch rules one by one on an 8-byte file.
func TestCacheWriteRules(t *testing.T) {
	type ent struct {
		off int64
		n   int
		d   string
	}
	cases := []struct {
		name  string
		ents  []ent
		w     int64
		data  string
		after map[ent]string // "" = dropped
	}{
		{"inside write", []ent{{2, 2, "cd"}}, 0, "XXXXXX", map[ent]string{{2, 2, "cd"}: "XX"}},
		{"write inside", []ent{{0, 8, "abcdefgh"}}, 2, "XY", map[ent]string{{0, 8, "abcdefgh"}: "abXYefgh"}},
		{"partial", []ent{{2, 4, "cdef"}}, 0, "XXXX", map[ent]string{{2, 4, "cdef"}: ""}},
		{"before", []ent{{4, 4, "efgh"}}, 0, "XXXX", map[ent]string{{4, 4, "efgh"}: "efgh"}},
		{"after", []ent{{0, 4, "abcd"}}, 4, "XXXX", map[ent]string{{0, 4, "abcd"}: "abcd"}},
		{"extends short entry", []ent{{4, 16, "efgh"}}, 6, "XYZW", map[ent]string{{4, 16, "efgh"}: "efXYZW"}},
		{"gap in short entry", []ent{{4, 16, "efgh"}}, 10, "Z", map[ent]string{{4, 16, "efgh"}: "efgh\x00\x00Z"}},
		{"past short entry", []ent{{4, 6, "efgh"}}, 20, "Z", map[ent]string{{4, 6, "efgh"}: ""}},
		{"before short entry", []ent{{4, 16, "efgh"}}, 0, "AB", map[ent]string{{4, 16, "efgh"}: "efgh"}},
		{"covers short entry", []ent{{4, 6, "efgh"}}, 0, "0123456789AB", map[ent]string{{4, 6, "efgh"}: "456789"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := New(1 << 10)
			id := newIdent(t)
			pre, post := Snapshot{Size: 8, Mtime: 1}, Snapshot{Size: 99, Mtime: 2}
			for _, e := range tc.ents {
				c.Put(id, pre, id.Gen(), e.off, e.n, []byte(e.d))
			}
			gen := id.Bump()
			c.Write(id, pre, post, gen, tc.w, []byte(tc.data), true)
			for e, want := range tc.after {
				got, ok := get(c, id, post, e.off, e.n)
				if want == "" {
					if ok {
						t.Fatalf("entry %v = %q, want dropped", e, got)
					}
					continue
				}
				if !ok || got != want {
					t.Fatalf("entry %v = %q, %v, want %q", e, got, ok, want)
				}
			}
			if got, ok := get(c, id, post, tc.w, len(tc.data)); !ok || got != tc.data {
				t.Fatalf("written slice = %q, %v", got, ok)
			}
		})
	}
}

func TestCacheWriteOnStaleRecordDrops(t *testing.T) {
	c := New(1 << 10)
	id := newIdent(t)
	old := Snapshot{Size: 8, Mtime: 1}
	c.Put(id, old, id.Gen(), 0, 8, []byte("abcdefgh"))
	// Another process changed the file before this write: pre differs.
	pre, post := Snapshot{Size: 8, Mtime: 5}, Snapshot{Size: 8, Mtime: 6}
	c.Write(id, pre, post, id.Bump(), 2, []byte("XY"), false)
	if _, ok := get(c, id, post, 0, 8); ok {
		t.Fatal("an entry older than an external change was patched into looking fresh")
	}
}

// TestCacheModel runs random reads and writes of a file model through the cache
// and checks every hit against the model.
func TestCacheModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			c := New(int64(rng.IntN(512) + 16))
			id := newIdent(t)
			file := []byte{}
			mtime := int64(0)
			snap := func() Snapshot { return Snapshot{Size: int64(len(file)), Mtime: mtime} }
			read := func(off int64, n int) []byte {
				if off >= int64(len(file)) {
					return nil
				}
				return file[off:min(int64(len(file)), off+int64(n))]
			}
			for i := range 5000 {
				off := int64(rng.IntN(300))
				n := rng.IntN(64) + 1
				switch rng.IntN(10) {
				case 0, 1, 2: // write
					data := make([]byte, n)
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
					pre := snap()
					if end := off + int64(n); end > int64(len(file)) {
						file = append(file, make([]byte, end-int64(len(file)))...)
					}
					copy(file[off:], data)
					mtime++
					c.Write(id, pre, snap(), id.Bump(), off, data, rng.IntN(2) == 0)
				case 3: // an external change
					if len(file) > 0 {
						file[rng.IntN(len(file))]++
						mtime++
					}
				default:
					p := make([]byte, n)
					s := snap()
					if m, ok := c.Get(id, s, off, p); ok {
						if want := read(off, n); !bytes.Equal(p[:m], want) {
							t.Fatalf("op %d: Get(%d, %d) = %q, want %q", i, off, n, p[:m], want)
						}
					} else {
						c.Put(id, s, id.Gen(), off, n, read(off, n))
					}
				}
				if st := c.Stats(); st.Bytes > st.MaxBytes {
					t.Fatalf("op %d: %d bytes held, budget %d", i, st.Bytes, st.MaxBytes)
				}
			}
			c.Purge()
		})
	}
}

// TestCacheLargeEntriesRecycled hammers large entries (copied outside the
// lock) with lookups while others evict, replace and patch them: a buffer
// recycled under a lookup would show as torn data, or as a race.
func TestCacheLargeEntriesRecycled(t *testing.T) {
	const size = SmallEntry + 1000
	c := New(4 * size)
	id := Acquire(IdentKey{Space: NewSpace(), Name: t.Name()})
	uniform := func(b []byte) bool { return bytes.Count(b, b[:1]) == len(b) }
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			p := make([]byte, size)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				off := int64(rng.IntN(8)) * size
				switch rng.IntN(4) {
				case 0:
					c.Put(id, Snapshot{}, id.Gen(), off, size, bytes.Repeat([]byte{byte(i)}, size))
				case 1:
					// Replaces every byte of the entries it covers: they stay uniform.
					c.Write(id, Snapshot{}, Snapshot{}, id.Bump(), off, bytes.Repeat([]byte{byte(i)}, size), rng.IntN(2) == 0)
				default:
					if n, ok := c.Get(id, Snapshot{}, off, p); ok && (n != size || !uniform(p)) {
						t.Errorf("torn read at %d: %d bytes", off, n)
						return
					}
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if st := c.Stats(); st.Bytes > st.MaxBytes {
		t.Fatalf("stats %+v", st)
	}
}

// TestCachePutTwice: two Puts of one key (two readers that missed at once)
// leave one entry, counted once.
func TestCachePutTwice(t *testing.T) {
	c := New(1 << 10)
	id := Acquire(IdentKey{Space: NewSpace(), Name: t.Name()})
	c.Put(id, Snapshot{}, 0, 0, 4, []byte("abcd"))
	c.Put(id, Snapshot{}, 0, 0, 4, []byte("abcd"))
	c.Put(id, Snapshot{}, 0, 4, 4, []byte("efgh"))
	if st := c.Stats(); st.Entries != 2 || st.Bytes != 8 {
		t.Fatalf("stats %+v", st)
	}
	c.Purge()
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 || len(c.files) != 0 {
		t.Fatalf("after Purge: %+v, %d files", st, len(c.files))
	}
}
