// Package flock takes the lock files that keep a store, and its manifest,
// open in one Store at a time.
//
// A writer takes the lock file exclusively (pebble's vfs.FS Lock: an fcntl
// write lock on the file opened for writing). A reader does too where it
// can; where the lock file cannot be opened for writing (a read-only file
// system, another user's store) it takes a shared lock on the file opened
// for reading instead, which a writer's lock excludes and which excludes a
// writer, so that a store on read-only media or of another user opens for
// reading.
package flock

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrHeld means that another holder, in this process or another, has the
// lock.
var ErrHeld = errors.New("lock is held")

// Lock takes the lock file at path on fsys, creating it with permissions
// perm (less the umask) if it is missing. With shared, a lock file that
// cannot be opened for writing is locked shared instead, where fsys is the
// operating system's (Linux only). An error wrapping ErrHeld means that
// another holder has the lock; any other error is the file's, and a file
// system mounted read-only matches fs.ErrPermission.
func Lock(fsys vfs.FS, path string, shared bool, perm fs.FileMode) (io.Closer, error) {
	_, statErr := fsys.Stat(path)
	c, err := fsys.Lock(path)
	if err == nil {
		if errors.Is(statErr, fs.ErrNotExist) {
			ChmodCreated(fsys, path, perm)
		}
		return c, nil
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		// Opening the file worked: the lock itself was refused (an fcntl
		// EAGAIN or EACCES, or pebble's record of the locks this process
		// holds).
		return nil, fmt.Errorf("%w: %s: %w", ErrHeld, path, err)
	}
	err = Perm(err)
	if shared && errors.Is(err, fs.ErrPermission) && vfs.Root(fsys) == vfs.Default {
		if c, serr := lockShared(path); serr == nil || errors.Is(serr, ErrHeld) {
			return c, serr
		}
	}
	return nil, err
}

// Perm returns err so that it matches fs.ErrPermission if it is a failure
// to write to a file system mounted read-only (EROFS, which
// syscall.Errno does not count as a permission error).
func Perm(err error) error {
	if err == nil || !errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
		return err
	}
	return &permError{err}
}

type permError struct{ err error }

func (e *permError) Error() string        { return e.err.Error() }
func (e *permError) Unwrap() error        { return e.err }
func (e *permError) Is(target error) bool { return target == fs.ErrPermission }

// ChmodCreated gives the file at path, which was just created with mode
// 0666 less the umask (pebble's vfs creates files so), permissions perm
// less the same umask, as os.OpenFile(path, ..., perm) would have. It does
// so only on the operating system's file system; a failure leaves the
// mode as it is.
func ChmodCreated(fsys vfs.FS, path string, perm fs.FileMode) {
	if vfs.Root(fsys) != vfs.Default {
		return
	}
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	if want := perm.Perm() & fi.Mode().Perm(); want != fi.Mode().Perm() {
		_ = os.Chmod(path, want)
	}
}

// closer hides an *os.File's methods but Close.
type closer struct{ f *os.File }

func (c closer) Close() error { return c.f.Close() }
