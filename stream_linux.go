package dirstore

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// oDirect is O_DIRECT where the system has it (and Streams use it).
const oDirect = unix.O_DIRECT

// fstat fills fi from the open file fd.
func fstat(fd int, fi *fileInfo) error {
	if err := syscall.Fstat(fd, &fi.sys); err != nil {
		return err
	}
	fi.mtime = time.Unix(fi.sys.Mtim.Unix())
	return nil
}
