package rangecache

// lruList is the cache's entries in order of use, indexed by key: a map and
// a list threaded through the entries themselves (entry.newer, entry.older).
// golang-lru's LRU, used before, allocates a list node for each entry it
// adds and reaches the entry through it: on a miss, which evicts an entry
// and adds one, that was an allocation and two more lines of cold memory.
type lruList struct {
	index          map[key]*entry
	newest, oldest *entry
}

// Len returns the number of entries.
func (l *lruList) Len() int { return len(l.index) }

// Peek returns k's entry, leaving the order alone.
func (l *lruList) Peek(k key) (*entry, bool) {
	e, ok := l.index[k]
	return e, ok
}

// Get returns k's entry and makes it the most recently used.
func (l *lruList) Get(k key) (*entry, bool) {
	e, ok := l.index[k]
	if ok && e != l.newest {
		l.unlink(e)
		l.pushNewest(e)
	}
	return e, ok
}

// Add makes e, under e.key, the most recently used entry, and returns the
// entry it replaced under that key (already out of the list), if any.
func (l *lruList) Add(e *entry) (replaced *entry) {
	if old, ok := l.index[e.key]; ok {
		l.unlink(old)
		replaced = old
	}
	l.index[e.key] = e
	l.pushNewest(e)
	return replaced
}

// Remove removes k's entry, if there is one.
func (l *lruList) Remove(k key) {
	if e, ok := l.index[k]; ok {
		l.unlink(e)
		delete(l.index, k)
	}
}

// RemoveOldest removes the least recently used entry and returns it, or
// nil if there is none.
func (l *lruList) RemoveOldest() *entry {
	e := l.oldest
	if e != nil {
		l.unlink(e)
		delete(l.index, e.key)
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
