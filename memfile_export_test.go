package dirstore

// MemFileInMapping reports whether m's block lives in an anonymous mapping
// of its own, and whether this build ever puts one there.
func MemFileInMapping(m *MemFile) (inMapping, supported bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.mu.anon != nil, memAnonMin < 1<<62
}

// MemAnonMin is the capacity from which a MemFile's block leaves the heap,
// or 4 MiB in builds where it never does.
var MemAnonMin = int(min(memAnonMin, 4<<20))

// MutMemStaleTail is the seeded bug: growth into a new mapping keeps the
// bytes a Truncate left past the end.
const MutMemStaleTail = mutMemStaleTail

// MutMemSeqUnchecked is the seeded bug TestMemFileStress must catch without
// the race detector: a lock-free read returns a copy that a write tore.
const MutMemSeqUnchecked = mutMemSeqUnchecked
