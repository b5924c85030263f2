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

// statNeverBlocks reports whether fstat of fd answers from the inode in
// memory, without I/O or a round trip to a server or daemon: true for the
// local file systems ext4, XFS, btrfs and tmpfs, false for the others and
// on error. Checked Streams on them fstat without the scheduler
// (rawFstat).
func statNeverBlocks(fd int) bool {
	var sf unix.Statfs_t
	if err := unix.Fstatfs(fd, &sf); err != nil {
		return false
	}
	switch uint32(sf.Type) { // int32 on 32-bit systems
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC:
		return true
	}
	return false
}
