package remote

import "sync/atomic"

// mutation seeds one of the bugs the tests must catch. Only tests set it
// (export_test.go); it is always mutNone otherwise.
var mutation atomic.Int32

const (
	mutNone          = iota
	mutNoChecksum    // downloads are not checked against the object's CRC-32C
	mutLocalPending  // pending values wait in the local store, their record only in memory
	mutNoFlightWait  // an upload's end does not wait for an older download of the key
	mutNoOutboxBound // Sets take room in the outbox whatever Options.OutboxBytes says
)

func mutated(m int32) bool { return mutation.Load() == m }
