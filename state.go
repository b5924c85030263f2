package dirstore

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/dirstore/dirstore/manifest"
)

// Metadata records in the manifest.
const (
	metaState = "state" // storeState
	metaLease = "lease" // versions below it may have been handed out
	metaCkpt  = "ckpt"  // NoSync: undo records below it are obsolete
)

// leaseChunk is how many versions one durable lease reserves.
const leaseChunk = 1 << 16

// storeState is what a clean Close records, so that the next Open needs no
// recovery scan.
type storeState struct {
	clean bool
	count int64
	bytes int64
	next  uint64 // the next version to hand out
}

func (st storeState) encode() []byte {
	b := []byte{0}
	if st.clean {
		b[0] = 1
	}
	b = binary.AppendUvarint(b, uint64(st.count))
	b = binary.AppendUvarint(b, uint64(st.bytes))
	return binary.AppendUvarint(b, st.next)
}

func (s *Store) readState() (st storeState, ok bool, err error) {
	b, ok, err := s.man.Meta(metaState)
	if err != nil || !ok {
		return st, ok, s.metaErr(err)
	}
	if len(b) < 1 || b[0] > 1 {
		return st, false, s.metaErr(manifest.ErrCorrupt)
	}
	st.clean = b[0] == 1
	b = b[1:]
	var vals [3]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return st, false, s.metaErr(manifest.ErrCorrupt)
		}
		vals[i], b = v, b[n:]
	}
	st.count, st.bytes, st.next = int64(vals[0]), int64(vals[1]), vals[2]
	return st, true, nil
}

// metaUint reads a number from the manifest's metadata (0 if unset).
func (s *Store) metaUint(name string) (uint64, error) {
	b, ok, err := s.man.Meta(name)
	if err != nil || !ok {
		return 0, s.metaErr(err)
	}
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, s.metaErr(manifest.ErrCorrupt)
	}
	return v, nil
}

func (s *Store) metaErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("dirstore: open %s: manifest: %w", s.dir, err)
}

// writeCleanState records a clean shutdown after flushing the manifest.
func (s *Store) writeCleanState() error {
	if err := s.man.Flush(1 << 20); err != nil {
		return err
	}
	s.versions.mu.Lock()
	next := s.versions.next
	s.versions.mu.Unlock()
	b := s.man.NewBatch()
	b.SetMeta(metaState, storeState{clean: true, count: s.count.Load(), bytes: s.bytes.Load(), next: next}.encode())
	return b.Commit(true)
}

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
		b.SetMeta(metaState, storeState{next: v.next}.encode())
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
