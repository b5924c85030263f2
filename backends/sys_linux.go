//go:build linux

package backends

import (
	"io/fs"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// oDirect is O_DIRECT where the system has it.
const oDirect = unix.O_DIRECT

func fdatasync(fd int) error { return unix.Fdatasync(fd) }

// fstat fills a fileStat for fd.
func fstat(fd int, name string) (fs.FileInfo, error) {
	var st fileStat
	if err := ignoringEINTR(func() error { return syscall.Fstat(fd, &st.sys) }); err != nil {
		return nil, err
	}
	st.fill(name, time.Unix(st.sys.Mtim.Unix()))
	return &st, nil
}
