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
type versionSource struct {
	mu    sync.Mutex
	next  uint64
	limit uint64
}

// init marks the store open (unclean) and takes the first lease. v.next
// must already be past every version in use.
func (v *versionSource) init(s *Store) error {
	v.limit = v.next + leaseChunk
	b := s.man.NewBatch()
	b.SetMeta(metaLease, binary.AppendUvarint(nil, v.limit))
	b.SetMeta(metaState, storeState{next: v.next}.encode())
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("dirstore: open %s: manifest: %w", s.dir, err)
	}
	return nil
}

func (v *versionSource) take(s *Store) (uint64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.next >= v.limit {
		limit := v.next + leaseChunk
		b := s.man.NewBatch()
		b.SetMeta(metaLease, binary.AppendUvarint(nil, limit))
		if err := b.Commit(true); err != nil {
			return 0, s.fail(err)
		}
		v.limit = limit
	}
	n := v.next
	v.next++
	return n, nil
}
