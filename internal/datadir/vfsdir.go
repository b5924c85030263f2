package datadir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// vfsDir is a Dir over a pebble vfs.FS.
type vfsDir struct {
	fs  vfs.FS
	dir string
	// osBacked is set when the FS is, under its wrappers, the operating
	// system's, whose Open follows symbolic links and blocks on FIFOs.
	osBacked bool
}

// regular fails unless p is a regular file (checked with Lstat where the FS
// is the operating system's), so that a link, FIFO or directory planted
// under a value's name is neither followed nor read.
func (d *vfsDir) regular(op, p string) error {
	var mode fs.FileMode
	if d.osBacked {
		fi, err := os.Lstat(p)
		if err != nil {
			return pathErr(op, p, err)
		}
		mode = fi.Mode()
	} else {
		fi, err := d.fs.Stat(p)
		if err != nil {
			return pathErr(op, p, err)
		}
		mode = fi.Mode()
	}
	if !mode.IsRegular() {
		return pathErr(op, p, fmt.Errorf("%w: %v", ErrNotRegular, mode.Type()))
	}
	return nil
}

func (d *vfsDir) Path(name string) string { return d.fs.PathJoin(d.dir, name) }

// create creates name, from reuse renamed if it can (a vfs.File cannot be
// truncated, so the reused file is then created anew under its new name:
// the renaming is what the crash tests see).
func (d *vfsDir) create(name, reuse string) (vfs.File, error) {
	p := d.Path(name)
	if _, err := d.fs.Stat(p); err == nil {
		return nil, pathErr("create", p, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, pathErr("create", p, err)
	}
	if reuse != "" {
		if err := d.fs.Rename(d.Path(reuse), p); err != nil {
			// The spare is not to outlive this call.
			if err := d.fs.Remove(d.Path(reuse)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, pathErr("remove", d.Path(reuse), err)
			}
		} else {
			f, err := d.fs.Create(p, vfs.WriteCategoryUnspecified)
			if err != nil {
				_ = d.fs.Remove(p)
				return nil, pathErr("create", p, err)
			}
			return f, nil
		}
	}
	f, err := d.fs.Create(p, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, pathErr("create", p, err)
	}
	return f, nil
}

func (d *vfsDir) finish(name string, f vfs.File, sync bool, err error) error {
	p := d.Path(name)
	if err == nil && sync {
		if err = f.Sync(); err != nil {
			err = pathErr("sync", p, err)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = pathErr("close", p, cerr)
	}
	if err != nil {
		_ = d.fs.Remove(p)
	}
	return err
}

func (d *vfsDir) Write(name, reuse string, bufs [][]byte, sync bool) error {
	f, err := d.create(name, reuse)
	if err != nil {
		return err
	}
	// vfs.File.Write may modify its argument (pebble's MemFS does, in
	// race and invariants builds): write copies, never the caller's bytes.
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	for _, b := range bufs {
		for len(b) > 0 && err == nil {
			n := copy(*bp, b)
			if _, err = f.Write((*bp)[:n]); err != nil {
				err = pathErr("write", d.Path(name), err)
			}
			b = b[n:]
		}
	}
	return d.finish(name, f, sync, err)
}

func (d *vfsDir) WriteFrom(name, reuse string, r io.Reader, sync bool) (int64, uint32, error) {
	f, err := d.create(name, reuse)
	if err != nil {
		return 0, 0, err
	}
	finished := false
	defer func() {
		if !finished {
			// r panicked: leave no file behind (the panic goes on).
			f.Close()
			_ = d.fs.Remove(d.Path(name))
		}
	}()
	n, crc, err := copyCRC(r, func(b []byte) error {
		if _, err := f.Write(b); err != nil {
			return pathErr("write", d.Path(name), err)
		}
		return nil
	})
	finished = true
	return n, crc, d.finish(name, f, sync, err)
}

func (d *vfsDir) Read(name string, size int64, buf []byte) ([]byte, error) {
	p := d.Path(name)
	if err := d.regular("open", p); err != nil {
		return nil, err
	}
	f, err := d.fs.Open(p)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	defer f.Close()
	if int64(cap(buf)) < size+1 {
		buf = make([]byte, size+1)
	}
	buf = buf[:size+1]
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return nil, pathErr("read", p, err)
	}
	if int64(n) != size {
		return nil, pathErr("read", p, fmt.Errorf("%w: %d bytes, want %d", ErrSize, n, size))
	}
	return buf[:n], nil
}

func (d *vfsDir) OpenRead(name string) (ReadFile, error) {
	p := d.Path(name)
	if err := d.regular("open", p); err != nil {
		return nil, err
	}
	f, err := d.fs.Open(p)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, pathErr("stat", p, err)
	}
	return &vfsFile{f: f, path: p, info: info}, nil
}

// vfsFile is vfsDir's ReadFile. It keeps the vfs.File unexported so that
// its descriptor, if any, is not used behind the FS's back.
type vfsFile struct {
	f    vfs.File
	path string
	info fs.FileInfo
}

func (f *vfsFile) Fd() int                    { return -1 }
func (f *vfsFile) Size() int64                { return f.info.Size() }
func (f *vfsFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *vfsFile) Close() error               { return f.f.Close() }

func (f *vfsFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = pathErr("read", f.path, err)
	}
	return n, err
}

func (d *vfsDir) Map(string, int64) ([]byte, func() error, bool, error) {
	return nil, nil, false, nil
}

func (d *vfsDir) Remove(name string) error {
	if err := d.fs.Remove(d.Path(name)); err != nil {
		return pathErr("remove", d.Path(name), err)
	}
	return nil
}

func (d *vfsDir) ModTime(name string) (time.Time, error) {
	info, err := d.fs.Stat(d.Path(name))
	if err != nil {
		return time.Time{}, pathErr("stat", d.Path(name), err)
	}
	return info.ModTime(), nil
}

func (d *vfsDir) SyncFiles(names []string) error {
	for _, name := range names {
		// OpenReadWrite creates a missing file: a file to sync must exist.
		if _, err := d.fs.Stat(d.Path(name)); err != nil {
			return pathErr("open", d.Path(name), err)
		}
		f, err := d.fs.OpenReadWrite(d.Path(name), vfs.WriteCategoryUnspecified)
		if err != nil {
			return pathErr("open", d.Path(name), err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return pathErr("sync", d.Path(name), err)
		}
	}
	return nil
}

func (d *vfsDir) SyncDir() error {
	f, err := d.fs.OpenDir(d.dir)
	if err != nil {
		return pathErr("open", d.dir, err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return pathErr("sync", d.dir, err)
	}
	return nil
}

func (d *vfsDir) List() ([]string, error) {
	names, err := d.fs.List(d.dir)
	if err != nil {
		return nil, pathErr("readdir", d.dir, err)
	}
	return names, nil
}

func (d *vfsDir) Close() error { return nil }
