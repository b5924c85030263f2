package rangecache

// The ghosts' table has room for two ghosts per ghostPer bytes of the
// budget, and for at least 2*minGhosts, at most 2*maxGhosts (8 bytes each).
const (
	ghostPer  = 4 << 10
	minGhosts = 256
	maxGhosts = 1 << 20
)

// ways is the number of ghosts in a bucket: 8 words, one cache line.
const ways = 8

// A ghost is a word: the key's tag (24 bits of its hash, never 0) over
// the clock, in units, when it was remembered (40 bits).
const (
	stampBits = 40
	stampMask = 1<<stampBits - 1
)

// ghosts remembers ranges without data, oldest first out: those of misses
// that were not admitted, and of entries that left the cache. A ghost is
// forgotten once the ranges remembered with and after it add up to more
// than maxBytes.
//
// Every miss asks here, so this is what a miss costs beyond its read, and
// it touches memory that the read has just pushed out of the processor's
// caches. A FIFO ring of keys with a set over it touches three places per
// miss (the set for the new key, the set for the oldest, the ring): at 4
// KiB, 0.17x the cost of a pread, against 0.06x for this. This is a
// set-associative table, in buckets of one cache line: the ghost of a key
// goes in the bucket its hash picks, and a lookup, an insertion and the
// forgetting of old ghosts all happen in that line. A ghost's age is the
// clock (the bytes of ranges remembered so far) minus its stamp, so
// forgetting costs nothing; an insertion takes a free or forgotten slot,
// or else the bucket's oldest ghost's. The table has room for twice the
// ghosts a budget of maxBytes holds of ranges of ghostPer bytes, so few
// are forgotten early; ranges smaller than that are, bucket by bucket,
// which bounds the memory.
//
// Two keys with one tag in one bucket (about one chance in 2^24 per
// lookup and ghost in the bucket) share a ghost, and a stamp left alone
// for 2^40 units (a terabyte of misses) may look young again: either
// admits a range one read early, which is harmless.
type ghosts struct {
	table    []uint64 // len(table)/ways is a power of two; 0 is a free slot
	clock    uint64   // bytes of ranges remembered, ever
	unit     uint64   // bytes per unit of stamp: maxBytes is at most 2^24 units
	window   uint64   // maxBytes in units
	maxCount int      // the table holds 2*maxCount ghosts
	maxBytes int64
}

func newGhosts(maxBytes int64, maxCount int) ghosts {
	unit := uint64(maxBytes)>>24 + 1
	return ghosts{unit: unit, window: uint64(maxBytes) / unit, maxCount: maxCount, maxBytes: maxBytes}
}

// hash returns k's hash under a Cache's seed.
func (k key) hash(seed uint64) uint64 {
	h := k.id*0x9e3779b97f4a7c15 ^ uint64(k.off)*0xc2b2ae3d27d4eb4f ^ uint64(k.n)*0x165667b19e3779f9 ^ seed
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return h
}

// lookup returns the bucket of the key whose hash is h (nil before the
// table is made), its tag, and whether it is a ghost; now is the clock in
// units.
func (g *ghosts) lookup(h, now uint64) (b []uint64, tag uint64, ok bool) {
	tag = (h>>40 | 1) << stampBits
	if g.table == nil {
		return nil, tag, false
	}
	i := int(h&uint64(len(g.table)/ways-1)) * ways
	b = g.table[i : i+ways : i+ways]
	for _, w := range b {
		if w&^stampMask == tag && (now-w)&stampMask <= g.window {
			return b, tag, true
		}
	}
	return b, tag, false
}

// seen reports whether k, whose hash is h, is a ghost, and makes it one if
// it is not. A range larger than the budget, which is never cached, is not
// remembered.
func (g *ghosts) seen(k key, h uint64) bool {
	if k.n > g.maxBytes {
		return false
	}
	now := g.clock / g.unit
	b, tag, ok := g.lookup(h, now)
	if ok {
		return true
	}
	if b == nil {
		buckets := 1
		for buckets*ways < 2*g.maxCount {
			buckets *= 2
		}
		g.table = make([]uint64, buckets*ways)
		b, _, _ = g.lookup(h, now)
	}
	victim, oldest := 0, uint64(0)
	for i, w := range b {
		age := (now - w) & stampMask
		if w == 0 || age > g.window {
			victim = i
			break
		}
		if age >= oldest {
			victim, oldest = i, age
		}
	}
	b[victim] = tag | now&stampMask
	g.clock += uint64(k.n)
	return false
}

// has reports whether the key whose hash is h is a ghost.
func (g *ghosts) has(h uint64) bool {
	_, _, ok := g.lookup(h, g.clock/g.unit)
	return ok
}

// add makes k, whose hash is h, a ghost, if it is not one.
func (g *ghosts) add(k key, h uint64) { g.seen(k, h) }

// reset forgets every ghost.
func (g *ghosts) reset() {
	g.table = nil
	g.clock = 0
}
