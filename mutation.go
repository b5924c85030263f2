package dirstore

import "sync/atomic"

// mutation seeds one of the bugs the crash tests must catch. Only tests set
// it (export_test.go); it is always mutNone otherwise.
var mutation atomic.Int32

const (
	mutNone              = iota
	mutNoFileSync        // value files are not fsynced
	mutNoDirSync         // the directory is not fsynced before the commit
	mutDirSyncNotAwaited // a durable Set is acknowledged without waiting for the directory's fsync
	mutNoManifestSync    // the manifest commit is not synced
	mutRemoveTooEarly    // the replaced file is removed before the manifest commit
	mutSplitBatch        // recovery rolls back part of a batch of buffered writes
	mutAloneIgnored      // recovery ignores the undo records of durable Sets in flight
	mutNoRevert          // a durable Set whose file's fsync failed keeps its new entry

	// Seeded bugs of the hardening against hostile conditions, which
	// their own tests must catch (seeded_test.go).
	mutNoFormatCheck   // a store of a newer format is opened as if known
	mutPlantedIsIO     // a non-regular file under a value's name is an I/O error
	mutNoSharedLock    // ReadOnly never falls back to a shared lock
	mutNoPanicGuard    // a Buffer's callback panic escapes its flight
	mutReserveKept     // the emergency reserve is never released
	mutReserveFixed    // the emergency reserve does not grow with the manifest
	mutReleaseOnce     // only the first write to meet a full disk retries
	mutNoReserve       // a bounded store's write checks for room but does not reserve it
	mutReadsForgotten  // reads do not note their keys' recency
	mutPinsIgnored     // eviction does not skip pinned keys
	mutRemovePinned    // a superseded file is removed while a reader pins it
	mutRecencyKept     // a rolled-back Set of a new key leaves its recency records
	mutRecencyMarkKept // an Open without a budget leaves the mark of up-to-date recency records

	// Seeded bugs of the handling of a file system that turns read-only
	// under an open store (EROFS), which TestReadOnlyWhileOpen must catch.
	mutReadOnlyNotPermission // EROFS does not match fs.ErrPermission
	mutReadOnlyNotFailed     // a value file's EROFS does not fail the store

	// mutStatUnchecked, which TestStreamStatAfterClose must catch: a
	// checked Stream's read takes its fstat, made without mu, without
	// checking that the Stream was not closed under it.
	mutStatUnchecked
)

func mutated(m int32) bool { return mutation.Load() == m }
