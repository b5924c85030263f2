//go:build unix && !linux

package dirstore

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// oDirect is O_DIRECT where the system has it (and Streams use it).
const oDirect = 0

// fstat fills fi from the open file fd. The systems name the modification
// time of syscall.Stat_t differently (Mtim, Mtimespec); x/sys/unix names it
// Mtim everywhere, so the time comes from a second fstat through it.
func fstat(fd int, fi *fileInfo) error {
	if err := syscall.Fstat(fd, &fi.sys); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	fi.mtime = time.Unix(st.Mtim.Unix())
	return nil
}

// statNeverBlocks is false: only Linux tells the file system (stream_linux.go).
func statNeverBlocks(fd int) bool { return false }
