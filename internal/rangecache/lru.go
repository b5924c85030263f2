package rangecache

// lruList is the cache's entries in order of use, indexed by key (index.go):
// a list threaded through the entries themselves (entry.newer,
// entry.older). golang-lru's LRU, used before, allocates a list node for
// each entry it adds and reaches the entry through it: on a miss, which
// evicts an entry and adds one, that was an allocation and two more lines
// of cold memory.
type lruList struct {
	index          entryIndex
	newest, oldest *entry
}

// Len returns the number of entries.
func (l *lruList) Len() int { return l.index.Len() }

// Peek returns k's entry (h is k's hash), leaving the order alone.
func (l *lruList) Peek(k key, h uint64) *entry { return l.index.get(k, h) }

// Get returns k's entry (h is k's hash) and makes it the most recently
// used.
func (l *lruList) Get(k key, h uint64) *entry {
	e := l.index.get(k, h)
	if e != nil && e != l.newest {
		l.unlink(e)
		l.pushNewest(e)
	}
	return e
}

// Add makes e, under e.key and e.hash, the most recently used entry, and
// returns the entry it replaced under that key (already out of the list),
// if any.
func (l *lruList) Add(e *entry) (replaced *entry) {
	if replaced = l.index.put(e); replaced != nil {
		l.unlink(replaced)
	}
	l.pushNewest(e)
	return replaced
}

// Remove removes e.
func (l *lruList) Remove(e *entry) {
	l.unlink(e)
	l.index.remove(e)
}

// RemoveOldest removes the least recently used entry and returns it, or
// nil if there is none.
func (l *lruList) RemoveOldest() *entry {
	e := l.oldest
	if e != nil {
		l.Remove(e)
	}
	return e
}

func (l *lruList) pushNewest(e *entry) {
	e.older, e.newer = l.newest, nil
	if l.newest != nil {
		l.newest.newer = e
	} else {
		l.oldest = e
	}
	l.newest = e
}

func (l *lruList) unlink(e *entry) {
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		l.newest = e.older
	}
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		l.oldest = e.newer
	}
	e.newer, e.older = nil, nil
}
