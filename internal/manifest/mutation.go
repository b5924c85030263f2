package manifest

import "sync/atomic"

// Mutation seeds a bug that the tests of the root package must catch. Only
// tests set it; it is always MutNone otherwise.
var Mutation atomic.Int32

const (
	MutNone = iota
	// MutFenceDropsWrites: a fenced file's later writes are dropped, not
	// kept in memory, so pebble reads the partial file it left on disk.
	MutFenceDropsWrites
	// MutLogsRecycled: Options.NoLogRecycling is ignored.
	MutLogsRecycled
)

const (
	mutFenceDropsWrites = MutFenceDropsWrites
	mutLogsRecycled     = MutLogsRecycled
)

func mutated(m int32) bool { return Mutation.Load() == m }
