package dirstore

import "sync/atomic"

// mutation seeds one of the bugs the crash tests must catch. Only tests set
// it (export_test.go); it is always mutNone otherwise.
var mutation atomic.Int32

const (
	mutNone           = iota
	mutNoFileSync     // value files are not fsynced
	mutNoDirSync      // the directory is not fsynced before the commit
	mutNoManifestSync // the manifest commit is not synced
	mutRemoveTooEarly // the replaced file is removed before the manifest commit
	mutSplitBatch     // recovery rolls back part of a batch of buffered writes
	mutNoReserve      // a bounded store's write checks for room but does not reserve it
	mutReadsForgotten // reads do not note their keys' recency
	mutPinsIgnored    // eviction does not skip pinned keys
)

func mutated(m int32) bool { return mutation.Load() == m }
