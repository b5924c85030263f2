package dirstore

import (
	"encoding/binary"
	"sync"
)

// versionSource hands out file versions that never repeat: before a version
// at or above the durable lease is used, a larger lease is committed with
// sync, so a crash can only skip versions.
//
// It also keeps the store's clean-shutdown record honest: the first change
// of a session records the store as open (unclean) in the same commit as
// its lease, so that a crash from then on makes the next Open recover, and
// a session that changes nothing commits nothing to the manifest (its Open
// and Close leave no log for the next Open to replay and flush).
type versionSource struct {
	mu    sync.Mutex
	next  uint64
	limit uint64
	dirty bool // the manifest records the store as open (unclean)
}

// init prepares a source after Open; v.next must already be past every
// version in use. dirty says whether the manifest records the store as
// unclean already (a recovering or adopting Open).
func (v *versionSource) init(dirty bool) {
	v.limit, v.dirty = v.next, dirty
}

// leaseLocked commits a new lease, and the unclean record if the session
// has not written it yet. v.mu is held.
func (v *versionSource) leaseLocked(s *Store) error {
	limit := v.next + leaseChunk
	b := s.man.NewBatch()
	b.SetMeta(metaLease, binary.AppendUvarint(nil, limit))
	if !v.dirty {
		setState(b, storeState{next: v.next})
	}
	if err := b.Commit(true); err != nil {
		return s.fail(err)
	}
	v.limit, v.dirty = limit, true
	return nil
}

// take hands out a version for a new file.
func (v *versionSource) take(s *Store) (uint64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.next >= v.limit || !v.dirty {
		if err := v.leaseLocked(s); err != nil {
			return 0, err
		}
	}
	n := v.next
	v.next++
	return n, nil
}

// touch makes sure the manifest records the store as unclean before a
// change that takes no version (a Delete).
func (v *versionSource) touch(s *Store) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.dirty {
		return nil
	}
	return v.leaseLocked(s)
}

func (v *versionSource) isDirty() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dirty
}
