package dirstore

import (
	"sync/atomic"
	"unsafe"
)

// memSeq lets ReadAt of a block on the Go heap run without the MemFile's
// lock: a sequence lock. The lock's two atomic operations cost about a
// quarter of copying 4 KiB out of the processor's cache; the loads here
// cost nothing measurable.
//
// Every change to the block (a write, a truncation, a move to a mapping,
// Close) runs under the write lock between begin, which makes the count
// odd, and end, which publishes where the block is and how long, then
// makes the count even again. A reader (MemFile.readAt) loads the count,
// the block and its length, and the count again: unchanged and even, the
// block holds that many bytes. It copies; if the count has moved on by the
// time the copy ended, a change overlapped the read, which it then makes
// again under the read lock: so a read still sees all of a write or none
// of it.
// A torn copy is never returned, only redone (io.ReaderAt allows p to be
// used as scratch space).
//
// The copy may come from a block that a change has just replaced: the
// reader's pointer keeps it alive, so it is memory, only stale. A block
// outside the Go heap (an anonymous mapping, which mremap may move and
// munmap removes, or a memfd's) is never published: its readers lock.
//
// The race detector would see the copy racing with writes, which the
// count then rejects; race builds lock every read instead (memSeqReads).
type memSeq struct {
	n    atomic.Uint64 // odd while a change is under way
	base atomic.Pointer[byte]
	size atomic.Int64 // bytes at base; 0 when base is nil
}

// begin marks the start of a change; the caller holds the write lock.
func (s *memSeq) begin() { s.n.Add(1) }

// end publishes data, or nothing if readers are to lock (heap is false,
// or data is empty), and marks the end of the change.
func (s *memSeq) end(data []byte, heap bool) {
	if heap && len(data) > 0 {
		s.base.Store(unsafe.SliceData(data))
		s.size.Store(int64(len(data)))
	} else {
		s.base.Store(nil)
		s.size.Store(0)
	}
	s.n.Add(1)
}

// mutMemSeqUnchecked is a seeded bug for the MemFile tests (see
// mutation.go): a lock-free read returns its copy without checking that no
// change overlapped it.
const mutMemSeqUnchecked = 101
