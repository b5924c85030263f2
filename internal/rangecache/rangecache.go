// Package rangecache is the byte-budgeted LRU cache behind dirstore's
// Streams: it keeps the results of reads, keyed by (file, offset, length),
// and knows when they stop being true.
//
// # Freshness
//
// Every entry belongs to a per-file record that holds the Snapshot (size and
// modification time) and the Ident generation under which its entries were
// read. A lookup passes the Snapshot its caller just took (one fstat per
// read call, however many entries it touches) and the record must match it
// and the Ident's current generation, or the file's entries are all dropped:
// stale bytes are never returned. Files that never change pass the zero
// Snapshot and need no fstat at all.
//
// A read that misses loads the generation and takes its Snapshot before it
// reads the file; Put stores the result only if neither changed meanwhile,
// so a read racing with a write cannot put the old bytes back.
//
// # Writes
//
// Write patches the file's entries from the written bytes: an entry wholly
// inside the written range is replaced, a write wholly inside an entry is
// spliced into it, an entry overlapping only partly is dropped, and the
// others stay valid. The written slice becomes an entry of its own.
//
// # Admission
//
// A cache that stores every miss pays for a copy on every miss, and lets a
// single pass over a large file (a scan) push out everything else. Under
// AdmitReused, a Get that misses a range not asked for recently only
// records its key as a ghost and tells its caller not to store the result:
// the caller reads straight into its own buffer, and a miss costs about
// the read. A range asked for again while its ghost is remembered is
// admitted: the miss tells the caller to Put the result. Ghosts carry no
// data (8 bytes each, in a table of two per 4 KiB of the budget); they are
// forgotten oldest first, once the ranges they stand for add up to more
// than the budget, or earlier when ranges much smaller than 4 KiB fill the
// table: a range must come back within about one budget's worth of other
// misses to be admitted. An entry that leaves the cache (evicted to
// make room, or dropped because its file changed) leaves a ghost, so a
// range that was in the cache is admitted again at its next miss. Under
// AdmitAll every miss is admitted and no ghost is kept.
//
// # Budget
//
// The cache never holds more than its budget of bytes (entries' data; the
// bookkeeping, ghosts included, is not counted). A result larger than the
// budget is not cached; empty results are not cached.
//
// # Memory
//
// All methods are safe for concurrent use. The buffer of an entry that goes
// serves the next entry of the same length, so that in steady state (each
// miss evicting an entry) a miss allocates nothing: no page faults, no
// zeroing, no garbage. Entries of at most SmallEntry bytes are copied in
// and out under the lock. Larger ones are copied outside it, so that a long
// copy does not hold up other lookups: a lookup counts itself as a reader
// of the entry meanwhile, and a buffer with readers is neither recycled nor
// modified (patches build new slices).
package rangecache

import (
	"math"
	"math/rand/v2"
	"sync"
)

// Snapshot is what one fstat says about a file's content: size and
// modification time in nanoseconds. The zero Snapshot stands for a file that
// never changes.
type Snapshot struct {
	Size  int64
	Mtime int64
}

// key names a cached range: the Ident's number, the offset, and the length
// asked for (the data is shorter when the file ended first).
type key struct {
	id  uint64
	off int64
	n   int64
}

type entry struct {
	key        key
	hash       uint64 // key.hash(the Cache's seed)
	data       []byte // a large entry's is never modified once stored
	rec        *fileRec
	prev, next *entry // in rec's list
	// newer and older link the cache's entries in order of use (lru.go):
	// kept in the entries themselves, a miss that evicts one and adds
	// another allocates nothing and reaches no separate list node.
	newer, older *entry
	slot         int  // index in rec.buckets[key.off>>bucketShift]
	readers      int  // lookups copying a large entry's data outside the lock
	gone         bool // removed while it had readers: the last one recycles
}

// eof reports whether the file ended inside the entry's range when it was
// read: then writes past its end change it too (they fill the gap with
// zeros).
func (e *entry) eof() bool { return int64(len(e.data)) < e.key.n }

// SmallEntry is the largest entry copied under the lock and recycled.
const SmallEntry = 16 << 10

// minFree is the least a Cache may keep of recycled buffers (outside its
// budget, for the next entries); the most is an eighth of the budget.
const minFree = 256 << 10

// bucketShift sets the span of offsets one bucket of a fileRec indexes.
const bucketShift = 16

// fileRec holds one Cache's entries of one file.
type fileRec struct {
	id    *Ident
	snap  Snapshot
	gen   uint64
	head  *entry // the entries, in a list
	count int

	// The index, built at the first write to the file (files only read,
	// like a Store's values, never pay for it): buckets hold the entries by
	// offset, so that a write visits only those that may overlap it; eofs
	// are the entries that reached the end of the file, which any write at
	// or past their offset affects.
	indexed bool
	buckets map[int64][]*entry
	eofs    map[*entry]struct{}
	maxLen  int64 // longest key.n ever indexed
}

// Admission says which misses a Cache admits: whose results Get asks its
// caller to Put.
type Admission uint8

const (
	// AdmitReused admits a range at its second miss within the ghosts'
	// memory (see the package comment).
	AdmitReused Admission = iota
	// AdmitAll admits every miss.
	AdmitAll
)

// Stats counts a Cache's activity since it was made.
type Stats struct {
	Hits      int64 // lookups served
	Misses    int64 // lookups not served, stale ones included
	Admitted  int64 // results stored by Put
	Evictions int64 // entries removed to keep within the budget
	Stale     int64 // entries dropped because their file changed
	Entries   int64 // entries held now
	Bytes     int64 // bytes of data held now
	MaxBytes  int64 // the budget
}

// Cache is an LRU cache of file ranges with a budget in bytes.
type Cache struct {
	max   int64
	admit Admission
	seed  uint64 // of the keys' hashes (index.go)

	mu    sync.Mutex
	lru   lruList
	files map[*Ident]*fileRec
	bytes int64
	stats Stats

	free      map[int][][]byte // recycled buffers, by length
	freeBytes int
	maxFree   int
	spare     []*entry // recycled entries

	ghosts  ghosts
	lastRec *fileRec // see recLocked
}

// New returns a Cache that holds at most maxBytes bytes of data and admits
// misses as a says.
func New(maxBytes int64, a Admission) *Cache {
	c := &Cache{max: max(maxBytes, 0), admit: a, seed: rand.Uint64(), files: make(map[*Ident]*fileRec), free: make(map[int][][]byte)}
	c.maxFree = int(max(minFree, min(c.max/8, math.MaxInt32)))
	c.ghosts = newGhosts(c.max, int(min(max(c.max/ghostPer, minGhosts), maxGhosts)))
	return c
}

// MaxBytes returns the budget.
func (c *Cache) MaxBytes() int64 { return c.max }

// Get copies the cached result of reading len(p) bytes at off into p and
// returns its length, which is short only where the file ended. hit is
// false on a miss; then admit says whether the caller should Put the
// result of its read (see Admission). snap is the file's
// Snapshot taken for this read call (zero for files that never change); if
// the file's record does not match it and the Ident's generation, every
// entry of the file is dropped.
func (c *Cache) Get(id *Ident, snap Snapshot, off int64, p []byte) (n int, hit, admit bool) {
	n, hit, admit, _ = c.get(id, snap, off, p, false)
	return n, hit, admit
}

// Lookup is Get that, on a miss it admits, also returns a buffer of
// len(p) bytes for the caller to read the range into and hand to
// PutBuffer (or Release). It makes room for the entry first, and in steady
// state the buffer is that of the entry it evicted, memory the processor
// has long forgotten: the kernel's copy of a read into such memory, then a
// copy from there into p, costs less than a read into p and a Go copy
// into the cold buffer (BenchmarkStreamMissFloor: 1.17 against 1.50 us).
func (c *Cache) Lookup(id *Ident, snap Snapshot, off int64, p []byte) (n int, hit bool, buf []byte) {
	n, hit, _, buf = c.get(id, snap, off, p, true)
	return n, hit, buf
}

func (c *Cache) get(id *Ident, snap Snapshot, off int64, p []byte, wantBuf bool) (n int, hit, admit bool, buf []byte) {
	k := key{id.id, off, int64(len(p))}
	h := k.hash(c.seed)
	c.mu.Lock()
	e := c.lru.Get(k, h)
	if e == nil {
		c.stats.Misses++
		admit = c.admit == AdmitAll || c.ghosts.seen(k, h)
		if admit && wantBuf && int64(len(p)) <= c.max {
			buf = c.roomLocked(len(p))
		}
		c.mu.Unlock()
		return 0, false, admit, buf
	}
	if r := e.rec; r.snap != snap || r.gen != id.gen.Load() {
		c.dropRecLocked(r)
		c.stats.Misses++
		if wantBuf && int64(len(p)) <= c.max {
			buf = c.roomLocked(len(p))
		}
		c.mu.Unlock()
		return 0, false, true, buf // it was in the cache: reused
	}
	c.stats.Hits++
	data := e.data
	if len(data) <= SmallEntry {
		n = copy(p, data)
		c.mu.Unlock()
		return n, true, false, nil
	}
	e.readers++
	c.mu.Unlock()
	n = copy(p, data)
	c.mu.Lock()
	if e.readers--; e.readers == 0 && e.gone {
		c.recycleLocked(e.data)
		c.spareLocked(e)
	}
	c.mu.Unlock()
	return n, true, false, nil
}

// Put stores data, the result of reading n bytes at off (shorter than n if
// the file ended). snap and gen must have been taken before the read; if the
// Ident's generation has moved since, the result is discarded. data is
// copied.
func (c *Cache) Put(id *Ident, snap Snapshot, gen uint64, off int64, n int, data []byte) {
	c.put(id, snap, gen, off, n, data, false)
}

// PutBuffer is Put of data read into a buffer that Lookup returned (data is
// a prefix of it). The cache keeps the buffer, or recycles it, instead of
// copying data; the caller must not use it afterwards.
func (c *Cache) PutBuffer(id *Ident, snap Snapshot, gen uint64, off int64, n int, data []byte) {
	c.put(id, snap, gen, off, n, data, true)
}

// Release gives back a buffer that Lookup returned and that is not to be
// stored.
func (c *Cache) Release(buf []byte) {
	c.mu.Lock()
	c.recycleLocked(buf)
	c.mu.Unlock()
}

func (c *Cache) put(id *Ident, snap Snapshot, gen uint64, off int64, n int, data []byte, owned bool) {
	if len(data) == 0 || int64(len(data)) > c.max || len(data) > n {
		if owned && cap(data) > 0 {
			c.Release(data[:cap(data)])
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if id.gen.Load() != gen {
		if owned {
			c.recycleLocked(data[:cap(data)])
		}
		return
	}
	c.makeRoomLocked(len(data), false)
	var buf []byte
	switch {
	case owned:
		buf = data[:len(data):len(data)]
	case len(data) <= SmallEntry:
		buf = c.bufLocked(len(data))
		copy(buf, data)
	default:
		buf = c.bufLocked(len(data))
		c.mu.Unlock()
		copy(buf, data) // a long copy, outside the lock
		c.mu.Lock()
		if id.gen.Load() != gen {
			c.recycleLocked(buf)
			return
		}
	}
	r := c.recLocked(id)
	if r != nil && (r.snap != snap || r.gen != gen) {
		// One of the two snapshots is out of date; the next Get, with a
		// fresh one, sorts out which.
		c.dropRecLocked(r)
		r = nil
	}
	if r == nil {
		r = c.newRecLocked(id, snap, gen)
	}
	k := key{id.id, off, int64(n)}
	c.addLocked(r, k, k.hash(c.seed), buf)
	c.stats.Admitted++
	c.evictLocked()
}

// Write brings the cache up to date after data was written at off. pre and
// post are the file's Snapshots taken just before and just after the write,
// gen the generation Bump returned for it; the caller holds the Ident's
// lock. If the file's entries were not current before the write (pre or the
// generation differ), they are dropped rather than patched. keep stores the
// written slice as an entry of its own.
func (c *Cache) Write(id *Ident, pre, post Snapshot, gen uint64, off int64, data []byte, keep bool) {
	keep = keep && len(data) > 0 && int64(len(data)) <= c.max
	var buf []byte
	if keep && len(data) > SmallEntry {
		buf = append([]byte(nil), data...) // outside the lock
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.recLocked(id); r != nil {
		if r.snap != pre || r.gen != gen-1 {
			c.dropRecLocked(r)
		} else {
			r.snap, r.gen = post, gen
			c.patchLocked(r, off, data)
		}
	}
	if keep {
		if buf == nil {
			buf = c.bufLocked(len(data))
			copy(buf, data)
		}
		r := c.recLocked(id)
		if r == nil {
			r = c.newRecLocked(id, post, gen)
		}
		c.storeLocked(r, key{id.id, off, int64(len(buf))}, buf)
	}
	c.evictLocked()
}

// Invalidate drops every entry of the file.
func (c *Cache) Invalidate(id *Ident) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.recLocked(id); r != nil {
		c.dropRecLocked(r)
	}
}

// Peek returns a copy of the entry for (off, n) of the file as stored,
// without checking freshness or touching its recency. It is for tests.
func (c *Cache) Peek(id *Ident, off int64, n int) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := key{id.id, off, int64(n)}
	e := c.lru.Peek(k, k.hash(c.seed))
	if e == nil {
		return nil, false
	}
	return append([]byte{}, e.data...), true // a large entry's data is never modified: safe
}

// Purge drops every entry, and forgets every ghost.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.files {
		c.dropRecLocked(r)
	}
	c.ghosts.reset()
}

// Ghosted reports whether the cache remembers a miss of (off, n) of the
// file as a ghost. It is for tests.
func (c *Cache) Ghosted(id *Ident, off int64, n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ghosts.has(key{id.id, off, int64(n)}.hash(c.seed))
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = int64(c.lru.Len())
	s.Bytes = c.bytes
	s.MaxBytes = c.max
	return s
}

func (c *Cache) newRecLocked(id *Ident, snap Snapshot, gen uint64) *fileRec {
	r := &fileRec{id: id, snap: snap, gen: gen}
	c.files[id] = r
	c.lastRec = r
	return r
}

// recLocked returns id's record, or nil. The record of the last file
// stored or looked up is kept beside the map, as misses come mostly in runs
// on one file: with 4 KiB copied from a 64 MiB buffer between misses (the
// read's effect on the processor's caches), BenchmarkMissStore measured a
// miss at 115 ns with it and 340 ns going to the map each time.
func (c *Cache) recLocked(id *Ident) *fileRec {
	if r := c.lastRec; r != nil && r.id == id {
		return r
	}
	r := c.files[id]
	if r != nil {
		c.lastRec = r
	}
	return r
}

// forgetRecLocked removes r from the map of records.
func (c *Cache) forgetRecLocked(r *fileRec) {
	delete(c.files, r.id)
	if c.lastRec == r {
		c.lastRec = nil
	}
}

// indexLocked builds r's index.
func (c *Cache) indexLocked(r *fileRec) {
	if r.indexed {
		return
	}
	r.indexed = true
	r.buckets = make(map[int64][]*entry)
	r.eofs = make(map[*entry]struct{})
	for e := r.head; e != nil; e = e.next {
		r.indexAdd(e)
	}
}

func (r *fileRec) indexAdd(e *entry) {
	b := e.key.off >> bucketShift
	e.slot = len(r.buckets[b])
	r.buckets[b] = append(r.buckets[b], e)
	if e.eof() {
		r.eofs[e] = struct{}{}
	}
	r.maxLen = max(r.maxLen, e.key.n)
}

func (r *fileRec) indexRemove(e *entry) {
	b := e.key.off >> bucketShift
	s := r.buckets[b]
	last := s[len(s)-1]
	s[e.slot], last.slot = last, e.slot
	s[len(s)-1] = nil
	if s = s[:len(s)-1]; len(s) == 0 {
		delete(r.buckets, b)
	} else {
		r.buckets[b] = s
	}
	delete(r.eofs, e)
}

// storeLocked adds or replaces the entry for k in r.
func (c *Cache) storeLocked(r *fileRec, k key, data []byte) {
	h := k.hash(c.seed)
	if e := c.lru.Get(k, h); e != nil { // now the most recently used
		c.setDataLocked(e, data)
		return
	}
	c.addLocked(r, k, h, data)
}

// addLocked adds an entry for k, whose hash is h, to r, for a k that is
// most likely new (a miss was just seen): it saves the lookup storeLocked
// makes, and copes with a concurrent Put of the same k, rare, by removing
// the entry it replaces.
func (c *Cache) addLocked(r *fileRec, k key, h uint64, data []byte) {
	var e *entry
	if n := len(c.spare); n > 0 {
		e, c.spare = c.spare[n-1], c.spare[:n-1]
	} else {
		e = new(entry)
	}
	*e = entry{key: k, hash: h, data: data, rec: r, next: r.head}
	if r.head != nil {
		r.head.prev = e
	}
	r.head = e
	if r.indexed {
		r.indexAdd(e)
	}
	r.count++
	c.bytes += int64(len(data))
	if old := c.lru.Add(e); old != nil {
		// k was there (a concurrent Put): its entry goes.
		c.removeLocked(old, false)
	}
}

// setDataLocked replaces e's data (never modifying the old slice, which a
// Get may be copying from).
func (c *Cache) setDataLocked(e *entry, data []byte) {
	c.bytes += int64(len(data) - len(e.data))
	if e.readers == 0 {
		c.recycleLocked(e.data)
	}
	e.data = data
	if !e.rec.indexed {
		return
	}
	if e.eof() {
		e.rec.eofs[e] = struct{}{}
	} else {
		delete(e.rec.eofs, e)
	}
	e.rec.maxLen = max(e.rec.maxLen, e.key.n)
}

// removeLocked removes e from the LRU and from its record, forgets the
// record when it is empty, and leaves a ghost of e (under AdmitReused).
func (c *Cache) removeLocked(e *entry, fromLRU bool) {
	c.recycleLocked(c.detachLocked(e, fromLRU))
}

// detachLocked is removeLocked that returns e's data for reuse instead of
// recycling it, or nil if a lookup is still copying from it (the last one
// recycles it).
func (c *Cache) detachLocked(e *entry, fromLRU bool) (data []byte) {
	if fromLRU {
		c.lru.Remove(e)
	}
	if c.admit == AdmitReused {
		c.ghosts.add(e.key, e.hash)
	}
	r := e.rec
	if r.indexed {
		r.indexRemove(e)
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		r.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	}
	c.bytes -= int64(len(e.data))
	if r.count--; r.count == 0 {
		c.forgetRecLocked(r)
	}
	if e.readers > 0 {
		e.gone = true // the last reader recycles
		e.rec, e.prev, e.next = nil, nil, nil
		return nil
	}
	data = e.data
	c.spareLocked(e)
	return data
}

// dropRecLocked drops every entry of r's file.
func (c *Cache) dropRecLocked(r *fileRec) {
	for r.head != nil {
		c.stats.Stale++
		c.removeLocked(r.head, true)
	}
	if c.files[r.id] == r { // an empty record (none exist, but be safe)
		c.forgetRecLocked(r)
	}
}

// bufLocked returns a buffer of n bytes for a new entry: a recycled one if
// there is one. Its content is garbage.
func (c *Cache) bufLocked(n int) []byte {
	if l := c.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		if l = l[:len(l)-1]; len(l) == 0 && len(c.free) > 64 {
			delete(c.free, n) // many lengths: do not keep empty lists of each
		} else {
			c.free[n] = l // kept when empty: the next entry likely refills it
		}
		c.freeBytes -= n
		return b
	}
	return make([]byte, n)
}

// recycleLocked keeps b, the data of an entry that went or was replaced and
// that no lookup is copying, for the next entry of its length.
func (c *Cache) recycleLocked(b []byte) {
	if n := len(b); n > 0 && c.freeBytes+n <= c.maxFree {
		c.free[n] = append(c.free[n], b[:n:n])
		c.freeBytes += n
	}
}

// spareLocked keeps e, which nothing refers to any more, for the next entry.
func (c *Cache) spareLocked(e *entry) {
	*e = entry{}
	if len(c.spare) < 1024 {
		c.spare = append(c.spare, e)
	}
}

// roomLocked makes room for an entry of n bytes and returns a buffer for
// it: in steady state, where each miss evicts an entry for the next, the
// evicted entry's own buffer, which skips the free lists.
func (c *Cache) roomLocked(n int) []byte {
	if buf := c.makeRoomLocked(n, true); buf != nil {
		return buf
	}
	return c.bufLocked(n)
}

// makeRoomLocked evicts until n more bytes fit in the budget. If want, it
// returns the data of an evicted entry of n bytes, if there was one, instead
// of recycling it.
func (c *Cache) makeRoomLocked(n int, want bool) (buf []byte) {
	for c.bytes+int64(n) > c.max {
		e := c.lru.RemoveOldest()
		if e == nil {
			break
		}
		c.stats.Evictions++
		d := c.detachLocked(e, false)
		if want && buf == nil && len(d) == n {
			buf = d[:n:n]
		} else {
			c.recycleLocked(d)
		}
	}
	return buf
}

// evictLocked evicts until the cache is within its budget.
func (c *Cache) evictLocked() { c.makeRoomLocked(0, false) }

// patchLocked applies a write of data at w to r's entries.
func (c *Cache) patchLocked(r *fileRec, w int64, data []byte) {
	m := int64(len(data))
	if m == 0 {
		return
	}
	wEnd := w + m
	c.indexLocked(r)
	var cand []*entry
	for e := range r.eofs {
		cand = append(cand, e)
	}
	lo, hi := max(w-r.maxLen+1, 0)>>bucketShift, (wEnd-1)>>bucketShift
	add := func(s []*entry) {
		for _, e := range s {
			if !e.eof() && e.key.off < wEnd && e.key.off+e.key.n > w {
				cand = append(cand, e)
			}
		}
	}
	if hi-lo+1 > int64(len(r.buckets)) {
		for _, s := range r.buckets {
			add(s)
		}
	} else {
		for b := lo; b <= hi; b++ {
			add(r.buckets[b])
		}
	}
	for _, e := range cand {
		off, n, d := e.key.off, e.key.n, int64(len(e.data))
		switch {
		case wEnd <= off:
			// Before the entry; an entry that reached the end of the file
			// is not affected either, as the file does not grow past it.
		case w <= off && wEnd >= off+n:
			// The entry lies inside the write.
			c.setDataLocked(e, append([]byte(nil), data[off-w:off-w+n]...))
		case w >= off && wEnd <= off+n:
			// The write lies inside the entry. A write past the end of an
			// entry that reached the end of the file extends it, with zeros
			// in any gap.
			nd := make([]byte, max(d, wEnd-off))
			copy(nd, e.data)
			copy(nd[w-off:], data)
			c.setDataLocked(e, nd)
		default:
			// A partial overlap, or a write past the end of the file that
			// zero-fills part of an entry that ended with it.
			c.stats.Stale++
			c.removeLocked(e, true)
		}
	}
}
