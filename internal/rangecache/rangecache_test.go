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
	m, ok, _ := c.Get(id, snap, off, p)
	return string(p[:m]), ok
}

func TestCacheGetPut(t *testing.T) {
	c := New(1<<10, AdmitAll)
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
	c := New(1<<10, AdmitAll)
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
	c := New(1<<10, AdmitAll)
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
	c := New(10, AdmitAll)
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
	c := New(1<<10, AdmitAll)
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
	New(1<<10, AdmitAll).Put(Acquire(k2), Snapshot{}, 0, 0, 1, []byte("a"))
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
			c := New(1<<10, AdmitAll)
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
	c := New(1<<10, AdmitAll)
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
// and checks every hit against the model. Misses Put what the cache admits.
func TestCacheModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6} {
		a := []Admission{AdmitReused, AdmitAll}[seed%2]
		t.Run(fmt.Sprintf("seed=%d,admit=%d", seed, a), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			c := New(int64(rng.IntN(512)+16), a)
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
					if rng.IntN(2) == 0 { // a range read over and over
						off, n = int64(rng.IntN(4))*8, 8
					}
					p := make([]byte, n)
					s := snap()
					if m, ok, admit := c.Get(id, s, off, p); ok {
						if want := read(off, n); !bytes.Equal(p[:m], want) {
							t.Fatalf("op %d: Get(%d, %d) = %q, want %q", i, off, n, p[:m], want)
						}
					} else if admit {
						c.Put(id, s, id.Gen(), off, n, read(off, n))
					}
				}
				if st := c.Stats(); st.Bytes > st.MaxBytes {
					t.Fatalf("op %d: %d bytes held, budget %d", i, st.Bytes, st.MaxBytes)
				}
			}
			if st := c.Stats(); st.Hits == 0 || st.Admitted == 0 {
				t.Fatalf("the cache was not exercised: %+v", st)
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
	c := New(4*size, AdmitReused) // ghosts too, under -race
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
				switch rng.IntN(5) {
				case 0:
					c.Put(id, Snapshot{}, id.Gen(), off, size, bytes.Repeat([]byte{byte(i)}, size))
				case 4:
					// A miss that stores: the buffer Lookup gives may be an
					// evicted entry's, which no reader may still be copying.
					gen := id.Gen()
					if n, ok, buf := c.Lookup(id, Snapshot{}, off, p); ok && (n != size || !uniform(p)) {
						t.Errorf("torn read at %d: %d bytes", off, n)
						return
					} else if buf != nil {
						for j := range buf {
							buf[j] = byte(i)
						}
						c.PutBuffer(id, Snapshot{}, gen, off, size, buf)
					}
				case 1:
					// Replaces every byte of the entries it covers: they stay uniform.
					c.Write(id, Snapshot{}, Snapshot{}, id.Bump(), off, bytes.Repeat([]byte{byte(i)}, size), rng.IntN(2) == 0)
				default:
					if n, ok, _ := c.Get(id, Snapshot{}, off, p); ok && (n != size || !uniform(p)) {
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
	c := New(1<<10, AdmitAll)
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

// miss is what a reader does: Get, and Put the result if admitted. It
// returns whether the Get hit and whether it admitted.
func miss(c *Cache, id *Ident, off int64, data string) (hit, admit bool) {
	p := make([]byte, len(data))
	_, hit, admit = c.Get(id, Snapshot{}, off, p)
	if !hit && admit {
		c.Put(id, Snapshot{}, id.Gen(), off, len(data), []byte(data))
	}
	return hit, admit
}

// TestCacheAdmission: under AdmitReused a range's first miss is only
// remembered, its second is stored, its third hits; under AdmitAll the
// first is stored and no ghost is kept.
func TestCacheAdmission(t *testing.T) {
	c := New(1<<10, AdmitReused)
	id := newIdent(t)
	for i, want := range []struct{ hit, admit bool }{{false, false}, {false, true}, {true, false}} {
		if hit, admit := miss(c, id, 0, "abcd"); hit != want.hit || admit != want.admit {
			t.Fatalf("read %d: hit %v, admit %v; want %v, %v", i+1, hit, admit, want.hit, want.admit)
		}
		if i == 0 {
			if !c.Ghosted(id, 0, 4) {
				t.Fatal("no ghost after the first miss")
			}
			if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 || st.Admitted != 0 {
				t.Fatalf("after the first miss: %+v", st)
			}
		}
	}
	if st := c.Stats(); st.Hits != 1 || st.Misses != 2 || st.Admitted != 1 || st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Another length at the same offset is another range.
	if _, admit := miss(c, id, 0, "abc"); admit {
		t.Fatal("a first read of another length was admitted")
	}

	all := New(1<<10, AdmitAll)
	if hit, admit := miss(all, id, 0, "abcd"); hit || !admit {
		t.Fatalf("AdmitAll, first read: hit %v, admit %v", hit, admit)
	}
	if hit, _ := miss(all, id, 0, "abcd"); !hit {
		t.Fatal("AdmitAll, second read missed")
	}
	all.Purge()
	miss(all, id, 0, "abcd")
	all.Purge()
	if all.Ghosted(id, 0, 4) || all.ghosts.table != nil {
		t.Fatal("AdmitAll keeps ghosts")
	}
}

// TestCacheGhostsForgotten: ghosts go oldest first once the ranges they
// stand for add up to more than the budget; a range larger than the budget
// leaves none; Purge forgets them all.
func TestCacheGhostsForgotten(t *testing.T) {
	c := New(16, AdmitReused)
	id := newIdent(t)
	for off := range int64(4) { // 4 ghosts of 4 bytes: the budget
		miss(c, id, off*4, "abcd")
	}
	for off := range int64(4) {
		if !c.Ghosted(id, off*4, 4) {
			t.Fatalf("ghost %d forgotten within the budget", off)
		}
	}
	miss(c, id, 16, "abcd") // the oldest goes
	if c.Ghosted(id, 0, 4) || !c.Ghosted(id, 4, 4) || !c.Ghosted(id, 16, 4) {
		t.Fatal("not the oldest ghost forgotten")
	}
	if _, admit := miss(c, id, 0, "abcd"); admit {
		t.Fatal("a range read again after a budget's worth of misses was admitted")
	}
	if _, admit := miss(c, id, 16, "abcd"); !admit {
		t.Fatal("a range read again soon was not admitted")
	}
	miss(c, id, 100, "0123456789abcdefg") // 17 bytes > budget
	if c.Ghosted(id, 100, 17) {
		t.Fatal("a ghost for a range larger than the budget")
	}
	c.Purge()
	if _, admit := miss(c, id, 8, "abcd"); admit {
		t.Fatal("a ghost survived Purge")
	}

	// The memory is bounded too: many small ranges in a large budget fill
	// the table, and the oldest go first.
	big := New(1<<30, AdmitReused)
	const many = 1 << 20
	for off := range int64(many) {
		miss(big, id, off, "a")
	}
	if n := len(big.ghosts.table); n != 2*big.ghosts.maxCount {
		t.Fatalf("a table of %d ghosts for %d", n, big.ghosts.maxCount)
	}
	if big.Ghosted(id, 0, 1) {
		t.Fatal("the oldest of many small ghosts is remembered")
	}
	for off := int64(many - 64); off < many; off++ {
		if !big.Ghosted(id, off, 1) {
			t.Fatalf("ghost %d of the 64 most recent forgotten", off)
		}
	}
}

// TestCacheLeavingLeavesGhost: an entry evicted, or dropped as stale, is
// admitted again at its next miss.
func TestCacheLeavingLeavesGhost(t *testing.T) {
	c := New(8, AdmitReused)
	id := newIdent(t)
	for _, off := range []int64{0, 4, 0, 4} { // both stored
		miss(c, id, off, "abcd")
	}
	for _, off := range []int64{8, 8} { // stored, evicting 0
		miss(c, id, off, "ijkl")
	}
	if _, ok := c.Peek(id, 0, 4); ok {
		t.Fatal("not evicted")
	}
	if hit, admit := miss(c, id, 0, "abcd"); hit || !admit {
		t.Fatalf("an evicted range's next miss: hit %v, admit %v", hit, admit)
	}

	// Stale: a lookup under another snapshot drops the file's entries.
	s := New(1<<10, AdmitReused)
	p := make([]byte, 4)
	for range 2 {
		if _, _, admit := s.Get(id, Snapshot{Size: 8, Mtime: 1}, 0, p); admit {
			s.Put(id, Snapshot{Size: 8, Mtime: 1}, id.Gen(), 0, 4, []byte("abcd"))
		}
	}
	s.Put(id, Snapshot{Size: 8, Mtime: 1}, id.Gen(), 4, 4, []byte("efgh"))
	if _, hit, admit := s.Get(id, Snapshot{Size: 8, Mtime: 2}, 0, p); hit || !admit {
		t.Fatalf("a stale hit: hit %v, admit %v", hit, admit)
	}
	if _, hit, admit := s.Get(id, Snapshot{Size: 8, Mtime: 2}, 4, p); hit || !admit {
		t.Fatalf("the next miss of another stale entry: hit %v, admit %v", hit, admit)
	}
}

// TestCacheScanKeepsHot: a scan of ranges read once, many times the
// budget, evicts none of the ranges read over and over.
func TestCacheScanKeepsHot(t *testing.T) {
	c := New(64, AdmitReused)
	id := newIdent(t)
	hot := []int64{0, 4, 8, 12}
	for range 2 {
		for _, off := range hot {
			miss(c, id, off, "abcd")
		}
	}
	for off := int64(1000); off < 1000+100*64; off += 4 {
		if hit, admit := miss(c, id, off, "scan"); hit || admit {
			t.Fatalf("scan read at %d: hit %v, admit %v", off, hit, admit)
		}
	}
	for _, off := range hot {
		if hit, _ := miss(c, id, off, "abcd"); !hit {
			t.Fatalf("hot range %d evicted by a scan", off)
		}
	}
	if st := c.Stats(); st.Evictions != 0 || st.Admitted != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCacheMissAllocs: a miss that is not admitted allocates nothing once
// the ghosts are at their limit.
func TestCacheMissAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	c := New(64<<10, AdmitReused)
	id := newIdent(t)
	p := make([]byte, 4096)
	off := int64(0)
	f := func() {
		if _, hit, admit := c.Get(id, Snapshot{}, off, p); hit || admit {
			t.Fatal("not a first miss")
		}
		off += 4096
	}
	for range 1000 {
		f()
	}
	if n := testing.AllocsPerRun(1000, f); n != 0 {
		t.Fatalf("%v allocations per miss", n)
	}

	// A miss that stores its result in a full cache reuses what it evicts.
	c = New(64<<10, AdmitAll)
	store := func() {
		_, hit, buf := c.Lookup(id, Snapshot{}, off, p)
		if hit || buf == nil {
			t.Fatal("not an admitted miss")
		}
		c.PutBuffer(id, Snapshot{}, id.Gen(), off, len(p), buf)
		off += 4096
	}
	for range 1000 {
		store()
	}
	if n := testing.AllocsPerRun(1000, store); n != 0 {
		t.Fatalf("%v allocations per stored miss", n)
	}
}

// TestGhostsModel runs random ghost operations against a model (the keys
// with their stamps, in a slice) in a table too large for any bucket to
// overflow, and checks every key's membership as it goes.
func TestGhostsModel(t *testing.T) {
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 3))
		g := newGhosts(int64(rng.IntN(2000)+500), 4096)
		type ghost struct {
			k     key
			stamp uint64
		}
		var model []ghost
		clock := uint64(0)
		universe := make([]key, 300)
		for i := range universe {
			universe[i] = key{uint64(rng.IntN(3)), int64(rng.IntN(1 << 20)), int64(rng.IntN(40) + 1)}
		}
		universe = append(universe, key{1, 0, 1 << 20}) // larger than the budget
		inModel := func(k key) bool {
			for _, m := range model {
				if m.k == k && clock-m.stamp <= uint64(g.maxBytes) {
					return true
				}
			}
			return false
		}
		for i := range 20000 {
			k := universe[rng.IntN(len(universe))]
			switch op := rng.IntN(100); {
			case op == 0:
				g.reset()
				model, clock = nil, 0
			default:
				was := inModel(k)
				if op%2 == 0 {
					if got := seenK(&g, k); got != was {
						t.Fatalf("seed %d, op %d: seen(%v) = %v, want %v", seed, i, k, got, was)
					}
				} else {
					addK(&g, k)
				}
				if !was && k.n <= g.maxBytes {
					model = append(model, ghost{k, clock})
					clock += uint64(k.n)
				}
			}
			if i%97 == 0 {
				for _, u := range universe {
					if hasK(&g, u) != inModel(u) {
						t.Fatalf("seed %d, op %d: has(%v) = %v", seed, i, u, hasK(&g, u))
					}
				}
			}
		}
	}
}

// TestGhostsBucketOverflow: a bucket holds 8 ghosts; a ninth takes a
// forgotten ghost's slot if there is one, or else the oldest ghost's.
func TestGhostsBucketOverflow(t *testing.T) {
	g := newGhosts(16, minGhosts)
	seenK(&g, key{0, 0, 1}) // makes the table; clock 1
	buckets := uint64(len(g.table) / ways)
	home := (key{0, 0, 1}).hash(0) % buckets
	var same, others []key // keys of that bucket, and of others
	for off := int64(0); len(same) < ways+2 || len(others) < 2; off++ {
		if k := (key{0, off, 1}); k.hash(0)%buckets == home {
			same = append(same, k)
		} else {
			others = append(others, k)
		}
	}
	seenK(&g, key{others[0].id, others[0].off, 8}) // clock 9
	for _, k := range same[1:ways] {               // slots 1 to 7; clock 16
		seenK(&g, k)
	}
	for _, k := range same[:ways] {
		if !hasK(&g, k) {
			t.Fatalf("a full bucket lost ghost %v", k)
		}
	}
	seenK(&g, others[1]) // clock 17: same[0] is forgotten
	if hasK(&g, same[0]) {
		t.Fatal("a ghost outlived the budget")
	}
	seenK(&g, same[ways]) // into slot 0, the forgotten ghost's
	for _, k := range same[1 : ways+1] {
		if !hasK(&g, k) {
			t.Fatalf("ghost %v lost", k)
		}
	}
	seenK(&g, same[ways+1]) // the bucket is full: takes same[1]'s slot, 1
	if hasK(&g, same[1]) {
		t.Fatal("the oldest ghost of an overflowing bucket is remembered")
	}
	for _, k := range same[2:] {
		if !hasK(&g, k) {
			t.Fatalf("ghost %v lost, not the oldest", k)
		}
	}
}

// Lookup hands out a buffer for an admitted miss only; PutBuffer keeps it
// as the entry, without a copy; a buffer whose result is discarded or
// released goes back to the cache for the next miss; and nothing of the
// budget leaks along the way.
func TestCacheLookupBuffer(t *testing.T) {
	c := New(1<<10, AdmitAll)
	id := newIdent(t)
	snap := Snapshot{Size: 10, Mtime: 1}
	p := make([]byte, 4)
	n, hit, buf := c.Lookup(id, snap, 0, p)
	if n != 0 || hit || len(buf) != 4 {
		t.Fatalf("Lookup of a miss = %d, %v, %d-byte buffer", n, hit, len(buf))
	}
	copy(buf, "abcd")
	c.PutBuffer(id, snap, id.Gen(), 0, 4, buf)
	if e := c.lru.Peek(key{id.id, 0, 4}, key{id.id, 0, 4}.hash(c.seed)); e == nil || &e.data[0] != &buf[0] {
		t.Fatal("PutBuffer copied the buffer instead of keeping it")
	}
	if got, ok := get(c, id, snap, 0, 4); !ok || got != "abcd" {
		t.Fatalf("Get = %q, %v", got, ok)
	}
	if n, hit, buf := c.Lookup(id, snap, 0, p); n != 4 || !hit || buf != nil || string(p) != "abcd" {
		t.Fatalf("Lookup of a hit = %d, %v, %q, buffer %v", n, hit, p, buf != nil)
	}

	// The file ends inside the range: the short result is an entry.
	_, _, buf = c.Lookup(id, snap, 8, make([]byte, 4))
	copy(buf, "ij")
	c.PutBuffer(id, snap, id.Gen(), 8, 4, buf[:2])
	if got, ok := get(c, id, snap, 8, 4); !ok || got != "ij" {
		t.Fatalf("Get of a short entry = %q, %v", got, ok)
	}

	// A result read across a write is discarded, and its buffer reused.
	gen := id.Gen()
	_, _, buf = c.Lookup(id, snap, 4, p)
	id.Bump()
	c.PutBuffer(id, snap, gen, 4, 4, buf)
	if _, ok := get(c, id, snap, 4, 4); ok {
		t.Fatal("a result read across a write was stored")
	}
	if _, _, again := c.Lookup(id, snap, 4, make([]byte, 4)); &again[0] != &buf[0] {
		t.Error("the discarded buffer was not reused")
	} else {
		c.Release(again)
	}
	if _, _, again := c.Lookup(id, snap, 4, make([]byte, 4)); &again[0] != &buf[0] {
		t.Error("the released buffer was not reused")
	}

	// Not admitted (a first read under AdmitReused): no buffer.
	r := New(1<<10, AdmitReused)
	if _, hit, buf := r.Lookup(id, snap, 0, p); hit || buf != nil {
		t.Fatalf("Lookup of a first read = %v, buffer %v", hit, buf != nil)
	}
	if st := c.Stats(); st.Bytes != 6 || st.Entries != 2 {
		t.Fatalf("stats %+v, want 2 entries of 6 bytes", st)
	}

	// In a full cache, a miss's buffer is that of the entry it evicts.
	full := New(8, AdmitAll)
	for off := int64(0); off < 8; off += 4 {
		_, _, b := full.Lookup(id, snap, off, p)
		copy(b, "wxyz")
		full.PutBuffer(id, snap, id.Gen(), off, 4, b)
	}
	evicted := full.lru.oldest.data
	_, _, b3 := full.Lookup(id, snap, 8, p)
	if &b3[0] != &evicted[0] {
		t.Error("a miss in a full cache did not take the evicted entry's buffer")
	}
}

// seenK, hasK and addK call the ghosts' methods with k's unseeded hash.
func seenK(g *ghosts, k key) bool { return g.seen(k, k.hash(0)) }
func hasK(g *ghosts, k key) bool  { return g.has(k.hash(0)) }
func addK(g *ghosts, k key)       { g.add(k, k.hash(0)) }
