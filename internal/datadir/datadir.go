// Package datadir reads and writes a store's value files. Two
// implementations share one interface: a fast one on a directory descriptor
// (unix, the default file system: three syscalls to read a small value,
// symbolic links never followed) and one over any pebble vfs.FS, which is how
// tests put crash-simulating and fault-injecting file systems under a store.
package datadir

import (
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Castagnoli is the CRC-32C table used for value checksums.
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrSize reports a file whose length is not the one the caller expected.
var ErrSize = errors.New("file size does not match")

// ErrNotRegular reports something other than a regular file (a symbolic
// link, a FIFO, a directory, a device, a socket) where a value's file
// should be.
var ErrNotRegular = errors.New("not a regular file")

// Dir is a directory of value files. Its methods are safe for concurrent use.
// File-level errors are *fs.PathError.
type Dir interface {
	// Write creates name, which must not exist, and writes bufs to it, then
	// fsyncs it if sync is set. On error the file is removed. If reuse is
	// not empty, it names a superseded file that nobody reads any more:
	// Write renames it to name and writes over it instead of creating a
	// file (on ext4 without a journal, creating inodes while many were
	// recently deleted is slow), falling back to creating if reuse is gone
	// or cannot be renamed (it is then removed). Unless Write fails, reuse
	// does not exist afterwards.
	Write(name, reuse string, bufs [][]byte, sync bool) error
	// WriteFrom is Write with the value read from r; it returns the length
	// and CRC-32C of what it wrote.
	WriteFrom(name, reuse string, r io.Reader, sync bool) (int64, uint32, error)
	// Read returns the contents of name, which must be size bytes long: a
	// different length is an error wrapping ErrSize. buf is used if large
	// enough.
	Read(name string, size int64, buf []byte) ([]byte, error)
	// Map returns a read-only memory map of name, which must be size bytes
	// long, and the function that unmaps it. ok is false where mapping is not
	// possible (the caller reads instead).
	Map(name string, size int64) (data []byte, unmap func() error, ok bool, err error)
	// OpenRead opens name for reading (for Store.Open's streams).
	OpenRead(name string) (ReadFile, error)
	// Remove removes name.
	Remove(name string) error
	// ModTime returns name's modification time: when its value was
	// written.
	ModTime(name string) (time.Time, error)
	// SyncFiles makes the named files' contents durable.
	SyncFiles(names []string) error
	// SyncDir makes the directory's entries durable.
	SyncDir() error
	// List returns the names in the directory.
	List() ([]string, error)
	// Path returns the path of name, for messages.
	Path(name string) string
	Close() error
}

// ReadFile is a value file open for reading (Dir.OpenRead). Value files are
// never written once complete, so its size is fixed. ReadAt follows
// io.ReaderAt and may be called concurrently; file-level errors are
// *fs.PathError.
type ReadFile interface {
	io.ReaderAt
	io.Closer
	// Size returns the file's length, taken when it was opened.
	Size() int64
	// Fd returns the descriptor, for engines doing positional I/O on it,
	// or -1 where there is none (files of a vfs.FS, whose I/O must go
	// through the FS; they have Stat() (fs.FileInfo, error) instead). It
	// is valid until Close.
	Fd() int
}

// Open returns the Dir for dir on fsys, creating files with perm. The fast
// implementation is used where fsys is the default file system and the
// platform has one.
func Open(fsys vfs.FS, dir string, perm fs.FileMode) (Dir, error) {
	if fsys == nil || fsys == vfs.Default {
		if d, err := openFast(dir, perm); d != nil || err != nil {
			return d, err
		}
		fsys = vfs.Default
	}
	return &vfsDir{fs: fsys, dir: dir, osBacked: osBacked(fsys, dir)}, nil
}

// osBacked reports whether fsys shows the operating system's files (a
// wrapper of vfs.Default need not say so through Unwrap): dir is the same
// directory to both.
func osBacked(fsys vfs.FS, dir string) bool {
	if vfs.Root(fsys) == vfs.Default {
		return true
	}
	a, err1 := os.Stat(dir)
	b, err2 := fsys.Stat(dir)
	return err1 == nil && err2 == nil && a.IsDir() && b.IsDir() && a.ModTime().Equal(b.ModTime())
}

// copyBufPool holds the buffers WriteFrom copies through.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyCRC reads r to its end through a pooled buffer, handing each chunk to
// write, and returns how many bytes write took and their CRC-32C. It stops
// at the first error of either.
func copyCRC(r io.Reader, write func([]byte) error) (n int64, crc uint32, err error) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	for {
		m, rerr := r.Read(*bp)
		if m > 0 {
			crc = crc32.Update(crc, Castagnoli, (*bp)[:m])
			if err := write((*bp)[:m]); err != nil {
				return n, crc, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, crc, nil
		}
		if rerr != nil {
			return n, crc, rerr
		}
	}
}

func pathErr(op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	if le := (*os.LinkError)(nil); errors.As(err, &le) {
		return err
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}
