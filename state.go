package dirstore

import (
	"encoding/binary"
	"fmt"

	"github.com/dirstore/dirstore/internal/manifest"
)

// Metadata records in the manifest.
const (
	metaState = "state" // storeState
	metaLease = "lease" // versions below it may have been handed out
	metaCkpt  = "ckpt"  // undo records below it are obsolete
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

// metaErr is an error of Open from the manifest (nil stays nil).
func (s *Store) metaErr(err error) error {
	if err == nil {
		return nil
	}
	return s.openErr(fmt.Errorf("manifest: %w", err))
}

// openErr is an error of Open, naming the store's directory.
func (s *Store) openErr(err error) error {
	return fmt.Errorf("dirstore: open %s: %w", s.dir, err)
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
	if !s.opts.NoSync {
		// Every Set is acknowledged and durable: their undo records
		// (installDurable) are obsolete.
		seq := s.nextUndo()
		b.DeleteUndos(seq)
		b.SetMeta(metaCkpt, binary.AppendUvarint(nil, seq))
	}
	b.SetMeta(metaState, storeState{clean: true, count: s.count.Load(), bytes: s.bytes.Load(), next: next}.encode())
	return b.Commit(true)
}
