//go:build !linux

package backends

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// oDirect is O_DIRECT where the system has it.
const oDirect = 0

// fdatasync falls back to fsync where fdatasync(2) is missing.
func fdatasync(fd int) error { return unix.Fsync(fd) }

// fstat asks os, whose Stat knows each system's stat layout, about a
// duplicate of fd.
func fstat(fd int, name string) (fs.FileInfo, error) {
	dup, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), name)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return fi, nil
}
