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

// NewCache returns an empty Cache holding at most maxBytes bytes.
func NewCache(maxBytes int64) *Cache {
	return &Cache{c: rangecache.New(maxBytes)}
}

var defaultCache = sync.OnceValue(func() *Cache { return NewCache(DefaultCacheBytes) })

// DefaultCache returns the process-wide Cache (DefaultCacheBytes), which
// Streams use when StreamOptions.Cache is nil.
func DefaultCache() *Cache { return defaultCache() }

// CacheStats counts a Cache's activity since it was made.
type CacheStats struct {
	Hits      int64 // reads served from the cache
	Misses    int64 // reads that went to the file (stale entries included)
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
		Evictions: s.Evictions,
		Stale:     s.Stale,
		Entries:   s.Entries,
		Bytes:     s.Bytes,
		MaxBytes:  s.MaxBytes,
	}
}

// Purge empties the Cache. The counters keep counting.
func (c *Cache) Purge() {
	if c != nil && c.c != nil {
		c.c.Purge()
	}
}
