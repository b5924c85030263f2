package flock

import (
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// lockShared takes a shared lock on the existing file path, opened for
// reading. It is an open file description lock: it conflicts with the
// fcntl locks of writers even within this process, where a classic
// process-wide lock would silently turn into the writer's.
func lockShared(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, Perm(err)
	}
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		f.Close()
		if errno, ok := err.(unix.Errno); ok && (errno == unix.EAGAIN || errno == unix.EACCES) {
			return nil, &fs.PathError{Op: "lock", Path: path, Err: errHeld{errno}}
		}
		return nil, &fs.PathError{Op: "lock", Path: path, Err: err}
	}
	return closer{f}, nil
}

// errHeld is an fcntl error that means another holder has the lock.
type errHeld struct{ unix.Errno }

func (e errHeld) Is(target error) bool { return target == ErrHeld }
func (e errHeld) Unwrap() error        { return e.Errno }
