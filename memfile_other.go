//go:build !linux || purego

package dirstore

import (
	"errors"
	"math"
	"os"
	"time"
)

// memfd stands in for the shared memory of the Linux build: without
// memfd_create, File fails and a MemFile always stays on the Go heap, so
// none of the methods below is ever reached.
type memfd struct{}

// memAnon stands in for the anonymous mapping of the Linux build: here the
// block stays on the Go heap at every size.
type memAnon struct{}

// memAnonMin is never reached.
const memAnonMin = math.MaxInt64

func (m *MemFile) growAnonLocked(size, capacity int64) ([]byte, bool) { return nil, false }

func (m *MemFile) shrinkAnonLocked(size int64) bool { return false }

func (m *MemFile) prefaultAnonLocked(off, end int64) {}

func (m *MemFile) releaseAnonLocked() {}

func (m *MemFile) fileLocked() (*os.File, error) {
	return nil, m.pathError("memfd_create", errors.ErrUnsupported)
}

func (m *MemFile) releaseMappedLocked() { panic("dirstore: MemFile: no shared memory") }

func (m *MemFile) refreshLocked() error { panic("dirstore: MemFile: no shared memory") }

func (m *MemFile) mappedModTimeLocked() time.Time { panic("dirstore: MemFile: no shared memory") }

func (m *MemFile) readMappedRLocked(op string, p []byte, off int64) (int, error) {
	panic("dirstore: MemFile: no shared memory")
}

func (m *MemFile) writeMappedLocked(p []byte, off int64) (int, error) {
	panic("dirstore: MemFile: no shared memory")
}

func (m *MemFile) truncateMappedLocked(size int64) error {
	panic("dirstore: MemFile: no shared memory")
}
