//go:build !linux || purego

package dirstore

import (
	"errors"
	"os"
	"time"
)

// memfd stands in for the shared memory of the Linux build: without
// memfd_create, File fails and a MemFile always stays on the Go heap, so
// none of the methods below is ever reached.
type memfd struct{}

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
