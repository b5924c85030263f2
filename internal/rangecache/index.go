package rangecache

// entryIndex finds entries by key: an open-addressed hash table with linear
// probing, whose slots hold each entry's hash beside a pointer to it.
//
// It replaces a Go map[key]*entry, for the cost of a miss, whose lookup
// finds nothing and which then removes one entry and adds another: on cold
// memory each of those map operations touched a group's control word and
// its slots, and hashed and compared a 24-byte key through the generic
// path. Here a lookup that finds nothing usually reads one cache line of
// slots and no entry (a slot's hash must match before its entry's key is
// read), and removal shifts the run after the slot back instead of leaving
// a tombstone, so runs stay short without rebuilding the table.
//
// The hashes are seeded per Cache (key.hash), so offsets a remote client
// chooses cannot be picked to fall into one run.
type entryIndex struct {
	slots []slot // len(slots) is a power of two, or 0
	count int
}

type slot struct {
	hash uint64
	e    *entry // nil: free
}

// minSlots is the smallest table made. The table grows past a quarter full
// and shrinks below a sixteenth: removal scans the run after the slot it
// frees, and at half full (twice the slots per entry) the runs made a miss
// of BenchmarkMissStore cost 104 ns against 74 at a quarter.
const minSlots = 64

// Len returns the number of entries.
func (x *entryIndex) Len() int { return x.count }

// get returns the entry of k, whose hash is h.
func (x *entryIndex) get(k key, h uint64) *entry {
	if x.count == 0 {
		return nil
	}
	mask := uint64(len(x.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.e == nil {
			return nil
		}
		if s.hash == h && s.e.key == k {
			return s.e
		}
	}
}

// put adds e under e.key (hash e.hash) and returns the entry it replaced
// under that key, if any.
func (x *entryIndex) put(e *entry) (replaced *entry) {
	if 4*(x.count+1) > len(x.slots) {
		x.resize(max(minSlots, 2*len(x.slots)))
	}
	mask := uint64(len(x.slots) - 1)
	for i := e.hash & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.e == nil {
			*s = slot{e.hash, e}
			x.count++
			return nil
		}
		if s.hash == e.hash && s.e.key == e.key {
			replaced, s.e = s.e, e
			return replaced
		}
	}
}

// remove removes e, if it is the entry indexed under its key.
func (x *entryIndex) remove(e *entry) {
	if x.count == 0 {
		return
	}
	mask := uint64(len(x.slots) - 1)
	i := e.hash & mask
	for ; x.slots[i].e != e; i = (i + 1) & mask {
		if x.slots[i].e == nil {
			return
		}
	}
	// Shift back every later slot of the run that may move to the hole: one
	// whose home (the slot its hash picks) is not between the hole and it.
	for j := i; ; {
		j = (j + 1) & mask
		s := x.slots[j]
		if s.e == nil {
			break
		}
		if home := s.hash & mask; (j-home)&mask >= (j-i)&mask {
			x.slots[i] = s
			i = j
		}
	}
	x.slots[i] = slot{}
	x.count--
	if x.count*16 < len(x.slots) && len(x.slots) > minSlots {
		x.resize(len(x.slots) / 2)
	}
}

// reset empties the index and frees its table.
func (x *entryIndex) reset() { *x = entryIndex{} }

// resize rebuilds the table with n slots.
func (x *entryIndex) resize(n int) {
	old := x.slots
	x.slots = make([]slot, n)
	mask := uint64(n - 1)
	for _, s := range old {
		if s.e == nil {
			continue
		}
		i := s.hash & mask
		for x.slots[i].e != nil {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}
