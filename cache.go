package dirstore

import (
	"sync"

	"github.com/dirstore/dirstore/internal/rangecache"
)

// DefaultCacheBytes is the budget of the process-wide cache that Streams use
// unless StreamOptions.Cache says otherwise.
const DefaultCacheBytes = 64 << 20

// Cache keeps the results of Stream reads in memory, least recently used
// first out, within a budget of bytes. Entries are keyed by (file, offset,
// length): each distinct read has its own slot, and reads at other offsets
// or of other lengths do not share it. A Cache may be shared by any number
// of Streams, over any files; its methods may be called concurrently.
//
// A Cache from NewCache (and DefaultCache) stores the result of every read
// that misses, so the next read of the range is a hit. A Cache from
// NewScanResistantCache stores a range only when it is read again: the
// first read of a range that misses goes from the file straight into the
// caller's buffer, and the Cache keeps only a small record of the miss,
// with no data (a ghost, as 2Q and ARC caches keep). A miss of a range that
// has a ghost, the second read, stores its result; the third is a hit.
// Ghosts are forgotten oldest first, once the ranges they stand for add up
// to more than the budget: a range read again only after as many bytes'
// worth of other misses as the Cache holds is a first read again. (Ranges
// much smaller than 4 KiB are forgotten sooner: the ghosts take 8 bytes
// each, two per 4 KiB of the budget, outside it.) So a one-pass scan of a
// large file costs what reading the file costs, without a copy of every
// block into the Cache, and evicts none of the ranges that are read over
// and over. An entry that leaves such a Cache (evicted, or dropped because
// its file changed) leaves a ghost: its range is stored again at its next
// miss.
//
// A write through a Stream patches the entries of its file instead of
// dropping them: an entry wholly inside the written range is replaced from
// the written bytes, a write wholly inside an entry is spliced into it, an
// entry that overlaps the write only partly is dropped, and the others stay
// valid. The written slice becomes an entry of its own (if it is at most
// ChunkSize bytes). Entries of a file that changed in any other way are
// dropped when a Stream finds out (see Stream).
//
// The budget counts the cached bytes themselves, not the bookkeeping, nor
// the recycled buffers (at most an eighth of the budget, or 256 KiB) kept so
// that a miss in steady state reuses the buffer of the entry it evicts
// instead of allocating. A read result larger than the budget is not
// cached.
type Cache struct {
	c *rangecache.Cache // nil for NoCache
}

// NoCache, as StreamOptions.Cache, makes a Stream read and write the file
// directly: nothing is cached, and the file is not stat'ed between reads.
var NoCache = &Cache{}

// NewCache returns an empty Cache holding at most maxBytes bytes, which
// stores the result of every read that misses, as a plain LRU cache does:
// the next read of the range is a hit. It suits files whose ranges are read
// again soon after the first time; each miss pays for a copy into the
// Cache, and a scan of a large file replaces the Cache's content with the
// scan's (see NewScanResistantCache).
func NewCache(maxBytes int64) *Cache {
	return &Cache{c: rangecache.New(maxBytes, rangecache.AdmitAll)}
}

// NewScanResistantCache returns an empty Cache holding at most maxBytes
// bytes, which stores a range at its second read (see Cache): a miss costs
// about what reading the file costs, and one-pass scans leave the Cache's
// content alone.
func NewScanResistantCache(maxBytes int64) *Cache {
	return &Cache{c: rangecache.New(maxBytes, rangecache.AdmitReused)}
}

var defaultCache = sync.OnceValue(func() *Cache { return NewCache(DefaultCacheBytes) })

// DefaultCache returns the process-wide Cache (DefaultCacheBytes), which
// Streams use when StreamOptions.Cache is nil.
func DefaultCache() *Cache { return defaultCache() }

// CacheStats counts a Cache's activity since it was made.
type CacheStats struct {
	Hits      int64 // reads served from the cache
	Misses    int64 // reads that went to the file (stale entries included)
	Admitted  int64 // misses whose result was stored (see Cache)
	Evictions int64 // entries removed to stay within the budget
	Stale     int64 // entries dropped because their file changed under them
	Entries   int64 // entries held now
	Bytes     int64 // bytes held now; never more than MaxBytes
	MaxBytes  int64 // the budget
}

// Stats returns the Cache's counters. NoCache's are all zero.
func (c *Cache) Stats() CacheStats {
	if c == nil || c.c == nil {
		return CacheStats{}
	}
	s := c.c.Stats()
	return CacheStats{
		Hits:      s.Hits,
		Misses:    s.Misses,
		Admitted:  s.Admitted,
		Evictions: s.Evictions,
		Stale:     s.Stale,
		Entries:   s.Entries,
		Bytes:     s.Bytes,
		MaxBytes:  s.MaxBytes,
	}
}

// Purge empties the Cache and forgets its ghosts: every range is read for
// the first time again. The counters keep counting.
func (c *Cache) Purge() {
	if c != nil && c.c != nil {
		c.c.Purge()
	}
}
