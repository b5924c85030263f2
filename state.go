package dirstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dirstore/dirstore/internal/manifest"
)

// formatVersion is the version of the store's on-disk format that this
// code writes: the naming of value files, the encodings of the manifest's
// entries, undo records and metadata, and the pebble format of the
// manifest (manifest.FormatMajorVersion). Any change to one of them raises
// it, keeps a reader of the older versions, and adds a fixture written by
// the new version under testdata/ (format_test.go says how).
//
// Version 1: the store's first format (stores without a format record
// have it too).
// Version 2: an entry may record its write time (the ModTime flag); an
// undo record may be marked Alone (a durable Set whose file was fsynced
// while its entry committed); the manifest holds each key's recency
// records (cache mode: when it was last used, and the access-order index)
// and pins. Version 1 stores read as they are (their recency records are
// made at the first writable Open).
const formatVersion = 2

// Metadata records in the manifest.
const (
	metaFormat = "format" // formatVersion, written with every state record
	metaState  = "state"  // storeState
	metaLease  = "lease"  // versions below it may have been handed out
	metaCkpt   = "ckpt"   // undo records below it are obsolete
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

// setState records st in b, with the format version of the code that
// writes it: the first change of a session and every clean Close record
// both, so the manifest names the format of what it holds.
func setState(b *manifest.Batch, st storeState) {
	b.SetMeta(metaFormat, binary.AppendUvarint(nil, formatVersion))
	b.SetMeta(metaState, st.encode())
}

// checkFormat refuses a store written in a format newer than this code
// reads, before anything else is read or written.
func (s *Store) checkFormat() error {
	v, err := s.metaUint(metaFormat)
	if err != nil {
		return err
	}
	if v > formatVersion && !mutated(mutNoFormatCheck) {
		return fmt.Errorf("dirstore: open %s: the store has format version %d, newer than this code reads (%d): %w",
			s.dir, v, formatVersion, errors.ErrUnsupported)
	}
	return nil
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
	setState(b, storeState{clean: true, count: s.count.Load(), bytes: s.bytes.Load(), next: next})
	return b.Commit(true)
}
