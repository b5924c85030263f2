package datadir

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"
)

// fastDir works on a descriptor of the directory with openat and friends:
// names are resolved inside the directory only, and O_NOFOLLOW keeps a
// symbolic link planted under a value's name from being followed.
type fastDir struct {
	dir  string
	fd   int
	perm uint32
	// atime is set once the kernel refused O_NOATIME (a file of another
	// owner, without CAP_FOWNER): readers then open without it.
	atime atomic.Bool
}

func openFast(dir string, perm fs.FileMode) (Dir, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathErr("open", dir, err)
	}
	return &fastDir{dir: dir, fd: fd, perm: uint32(perm.Perm())}, nil
}

func (d *fastDir) Path(name string) string { return filepath.Join(d.dir, name) }

// openat opens name in the directory, never following a symbolic link.
// Readers add O_NONBLOCK, which regular files ignore, so that a FIFO or
// device planted under a value's name cannot block them (reading it then
// fails instead).
func (d *fastDir) openat(name string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Openat(d.fd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// openRead opens name for reading with O_NOATIME: a read then does not
// update the file's access time, which on a relatime mount costs a
// metadata update of the first read of each value after its write (on XFS,
// about a third of a small read's time). The store keeps its own record
// of use. The kernel allows the flag only to the file's owner or with
// CAP_FOWNER; refused, it is dropped for good.
func (d *fastDir) openRead(name string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_NONBLOCK
	if !d.atime.Load() {
		fd, err := d.openat(name, flags|unix.O_NOATIME, 0)
		if err != unix.EPERM {
			return fd, err
		}
		fd, err = d.openat(name, flags, 0)
		if err == nil {
			d.atime.Store(true)
		}
		return fd, err
	}
	return d.openat(name, flags, 0)
}

func (d *fastDir) create(name string) (int, error) {
	fd, err := d.openat(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, d.perm)
	if err != nil {
		return -1, pathErr("create", d.Path(name), err)
	}
	return fd, nil
}

// finish syncs and closes fd, and removes name if anything failed.
func (d *fastDir) finish(name string, fd int, sync bool, err error) error {
	if err == nil && sync {
		if e := unix.Fsync(fd); e != nil {
			err = pathErr("sync", d.Path(name), e)
		}
	}
	if e := unix.Close(fd); err == nil && e != nil {
		err = pathErr("close", d.Path(name), e)
	}
	if err != nil {
		_ = unix.Unlinkat(d.fd, name, 0)
	}
	return err
}

// open returns a descriptor of name open for writing: reuse renamed to
// name if it can be, else a new file.
func (d *fastDir) open(name, reuse string) (fd int, reused bool, err error) {
	// Only a plain file of ours is reused: something planted under the
	// spare's name (a link to a file elsewhere, a FIFO, a directory) is
	// left alone, and a fresh file is created instead.
	var st unix.Stat_t
	if reuse != "" && unix.Fstatat(d.fd, reuse, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && plain(&st) {
		// RENAME_NOREPLACE: a recycled file never replaces anything.
		if err := unix.Renameat2(d.fd, reuse, d.fd, name, unix.RENAME_NOREPLACE); err != nil {
			// The spare is not to outlive this call.
			if err := unix.Unlinkat(d.fd, reuse, 0); err != nil && err != unix.ENOENT {
				return -1, false, pathErr("remove", d.Path(reuse), err)
			}
			fd, err = d.create(name)
			return fd, false, err
		}
		fd, err := d.openat(name, unix.O_WRONLY|unix.O_NONBLOCK, 0)
		if err == nil && unix.Fstat(fd, &st) == nil && plain(&st) {
			return fd, true, nil
		}
		if err == nil {
			unix.Close(fd)
		}
		// Swapped between the checks: put it back where it was.
		if unix.Renameat2(d.fd, name, d.fd, reuse, unix.RENAME_NOREPLACE) != nil {
			return -1, false, pathErr("create", d.Path(name), unix.EEXIST)
		}
	}
	fd, err = d.create(name)
	return fd, false, err
}

// plain reports whether st is a regular file with no other name.
func plain(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1
}

// trim cuts a reused file to the size just written.
func (d *fastDir) trim(name string, fd int, reused bool, size int64, err error) error {
	if err == nil && reused {
		if e := unix.Ftruncate(fd, size); e != nil {
			err = pathErr("truncate", d.Path(name), e)
		}
	}
	return err
}

func (d *fastDir) Write(name, reuse string, bufs [][]byte, sync bool) error {
	fd, reused, err := d.open(name, reuse)
	if err != nil {
		return err
	}
	var size int64
	for _, b := range bufs {
		size += int64(len(b))
	}
	err = d.trim(name, fd, reused, size, d.writeAll(name, fd, bufs))
	return d.finish(name, fd, sync, err)
}

// writeAll writes bufs in order, with one writev where there are several.
func (d *fastDir) writeAll(name string, fd int, bufs [][]byte) error {
	for len(bufs) > 0 {
		if len(bufs[0]) == 0 {
			bufs = bufs[1:]
			continue
		}
		var n int
		var err error
		if len(bufs) == 1 {
			n, err = unix.Write(fd, bufs[0])
		} else {
			n, err = unix.Writev(fd, bufs[:min(len(bufs), 1024)])
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return pathErr("write", d.Path(name), err)
		}
		if n == 0 {
			return pathErr("write", d.Path(name), io.ErrShortWrite)
		}
		for n > 0 {
			if n < len(bufs[0]) {
				bufs = append([][]byte{bufs[0][n:]}, bufs[1:]...)
				break
			}
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
	}
	return nil
}

func (d *fastDir) WriteFrom(name, reuse string, r io.Reader, sync bool) (int64, uint32, error) {
	fd, reused, err := d.open(name, reuse)
	if err != nil {
		return 0, 0, err
	}
	finished := false
	defer func() {
		if !finished {
			// r panicked: leave no file behind (the panic goes on).
			unix.Close(fd)
			_ = unix.Unlinkat(d.fd, name, 0)
		}
	}()
	var one [1][]byte
	n, crc, err := copyCRC(r, func(b []byte) error {
		one[0] = b
		return d.writeAll(name, fd, one[:])
	})
	finished = true
	return n, crc, d.finish(name, fd, sync, d.trim(name, fd, reused, n, err))
}

func (d *fastDir) Read(name string, size int64, buf []byte) ([]byte, error) {
	fd, err := d.openRead(name)
	if err != nil {
		return nil, d.notRegular("open", name, err)
	}
	defer unix.Close(fd)
	// One byte more than expected, to see a file that grew. A read of a
	// regular file comes back short only at its end, so one that stops
	// at size needs no second read to find the end: a syscall less on
	// every small value. (Where a file system returned short reads before
	// the end, a longer file could pass as its first size bytes, which
	// the caller's checksum still checks.) A large value, which Go
	// allocates in whole 8 KiB pages, gets exactly its size instead, and a
	// second read of one byte past it: a 64 KiB value would otherwise take
	// a 72 KiB allocation, and its zeroing and collection.
	var past [1]byte
	exact := int64(cap(buf)) < size+1 && size >= largeValue
	if exact {
		buf = make([]byte, size)
	} else if int64(cap(buf)) < size+1 {
		buf = make([]byte, size+1)
	}
	if !exact {
		buf = buf[:size+1]
	}
	off := 0
	for off < len(buf) {
		n, err := unix.Pread(fd, buf[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, d.notRegular("read", name, err)
		}
		if n == 0 {
			break
		}
		off += n
		if int64(off) == size {
			break
		}
	}
	if exact && int64(off) == size {
		for {
			n, err := unix.Pread(fd, past[:], size)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return nil, d.notRegular("read", name, err)
			}
			off += n
			break
		}
	}
	if int64(off) != size {
		return nil, pathErr("read", d.Path(name), fmt.Errorf("%w: %d bytes or more, want %d", ErrSize, off, size))
	}
	return buf[:off], nil
}

// largeValue is the size from which Read allocates a value's exact size:
// past it Go allocates whole pages (32 KiB is its largest size class).
const largeValue = 32 << 10

// OpenRead opens name with openat and O_NOFOLLOW.
func (d *fastDir) OpenRead(name string) (ReadFile, error) {
	fd, err := d.openRead(name)
	if err != nil {
		return nil, d.notRegular("open", name, err)
	}
	f := &fdFile{fd: fd, path: d.Path(name)}
	if err := unix.Fstat(fd, &f.st); err != nil {
		unix.Close(fd)
		return nil, pathErr("stat", f.path, err)
	}
	if err := regularStat("open", f.path, &f.st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return f, nil
}

// notRegular returns err, the failure to open or read name, as an error
// wrapping ErrNotRegular if name is not a regular file. A read of one does
// not otherwise say so: a symbolic link fails to open (ELOOP, O_NOFOLLOW),
// a socket too (ENXIO), a FIFO opens but fails to read (ESPIPE), a
// directory too (EISDIR). Only failures pay for the check.
func (d *fastDir) notRegular(op, name string, err error) error {
	var st unix.Stat_t
	if err != unix.ENOENT && unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		if rerr := regularStat(op, d.Path(name), &st); rerr != nil {
			return rerr
		}
	}
	return pathErr(op, d.Path(name), err)
}

// regularStat returns an error wrapping ErrNotRegular unless st is a
// regular file's.
func regularStat(op, path string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		return nil
	}
	kind := "a device"
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		kind = "a symbolic link"
	case unix.S_IFIFO:
		kind = "a FIFO"
	case unix.S_IFDIR:
		kind = "a directory"
	case unix.S_IFSOCK:
		kind = "a socket"
	}
	return pathErr(op, path, fmt.Errorf("%w: %s", ErrNotRegular, kind))
}

// fdFile is fastDir's ReadFile: a bare descriptor.
type fdFile struct {
	fd   int
	path string
	st   unix.Stat_t
}

func (f *fdFile) Fd() int      { return f.fd }
func (f *fdFile) Size() int64  { return f.st.Size }
func (f *fdFile) Close() error { return unix.Close(f.fd) }

func (f *fdFile) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pread(f.fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, pathErr("read", f.path, err)
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

func (d *fastDir) Map(name string, size int64) ([]byte, func() error, bool, error) {
	fd, err := d.openRead(name)
	if err != nil {
		return nil, nil, true, d.notRegular("open", name, err)
	}
	f := os.NewFile(uintptr(fd), d.Path(name))
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, nil, true, pathErr("stat", d.Path(name), err)
	}
	if err := regularStat("mmap", d.Path(name), &st); err != nil {
		return nil, nil, true, err
	}
	if st.Size != size {
		return nil, nil, true, pathErr("mmap", d.Path(name), fmt.Errorf("%w: %d bytes, want %d", ErrSize, st.Size, size))
	}
	if size == 0 {
		return []byte{}, func() error { return nil }, true, nil
	}
	m, err := mmap.MapRegion(f, int(size), mmap.RDONLY, 0, 0)
	if err != nil {
		return nil, nil, true, pathErr("mmap", d.Path(name), err)
	}
	return m, m.Unmap, true, nil
}

func (d *fastDir) Remove(name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return pathErr("remove", d.Path(name), err)
	}
	return nil
}

func (d *fastDir) ModTime(name string) (time.Time, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return time.Time{}, pathErr("stat", d.Path(name), err)
	}
	return time.Unix(st.Mtim.Unix()), nil
}

func (d *fastDir) SyncFiles(names []string) error {
	if len(names) > 64 {
		// One syncfs is far cheaper than hundreds of fsyncs.
		if err := unix.Syncfs(d.fd); err != nil {
			return pathErr("syncfs", d.dir, err)
		}
		return nil
	}
	for _, name := range names {
		fd, err := d.openat(name, unix.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return pathErr("open", d.Path(name), err)
		}
		err = unix.Fsync(fd)
		unix.Close(fd)
		if err != nil {
			return pathErr("sync", d.Path(name), err)
		}
	}
	return nil
}

func (d *fastDir) SyncDir() error {
	if err := unix.Fsync(d.fd); err != nil {
		return pathErr("sync", d.dir, err)
	}
	return nil
}

func (d *fastDir) List() ([]string, error) {
	f, err := os.Open(d.dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, pathErr("readdir", d.dir, err)
	}
	return names, nil
}

func (d *fastDir) Close() error { return unix.Close(d.fd) }
