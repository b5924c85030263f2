package dirstore

import (
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
)

// The entry cache (Store.hot) takes the entry of every key a Set writes,
// but a key that was only read gets in at its second lookup that misses
// the cache while the first is remembered: Gets spread over many more keys
// than the cache holds, each key read once in a long while, would
// otherwise add an entry and evict another at every Get, for no hits, and
// push out the entries of keys that are read often. (At random over
// 200,000 keys on XFS the entry cache made Gets about 8% slower than none;
// admission left that within noise, its lookups cost the rest, and made a
// mix of 90% Gets of hot keys 3% faster.)
//
// entryGhosts remembers the misses: the hashes of the keys looked up in
// the manifest and not taken. It is a table of buckets of four hashes; a
// key's hash goes in the bucket its hash picks, over one of the four
// chosen at random, so a key is forgotten once about as many other misses
// as the table has slots (the entry cache's size) have come after it. Two
// keys with one hash (one chance in 2^64) share a ghost, which only admits
// one of them a lookup early. The slots are atomic: lookups of different
// keys run under different stripes, and a lost race forgets a ghost, which
// only delays an admission.
type entryGhosts struct {
	seed  maphash.Seed
	slots []atomic.Uint64 // 0 is free; a hash is never 0
	mask  uint64          // buckets - 1
}

// ghostWays is the number of hashes in a bucket.
const ghostWays = 4

// newEntryGhosts returns a table of at least n slots.
func newEntryGhosts(n int) *entryGhosts {
	buckets := 1 << bits.Len(uint((max(n, 1)+ghostWays-1)/ghostWays-1))
	return &entryGhosts{seed: maphash.MakeSeed(), slots: make([]atomic.Uint64, buckets*ghostWays), mask: uint64(buckets - 1)}
}

// seen reports whether key missed the entry cache recently (and forgets
// it: it is about to be admitted), or else remembers it and reports false.
func (g *entryGhosts) seen(key string) bool {
	h := maphash.String(g.seed, key) | 1
	i := (h >> 32 & g.mask) * ghostWays
	b := g.slots[i : i+ghostWays : i+ghostWays]
	for j := range b {
		if b[j].Load() == h {
			b[j].Store(0)
			return true
		}
	}
	b[rand.Uint32()%ghostWays].Store(h)
	return false
}
