package manifest

import (
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// fenceFS is the file system a manifest gives pebble. It passes everything
// through until a change to the real file system fails (a create, write,
// sync, rename or removal); then it is fenced: the failure is reported to
// the manifest (onFail), which refuses every later change, and from that
// moment nothing reaches the real file system, whose files stay as a crash
// at that moment would have left them (pebble recovers from them at the
// next Open). Pebble itself never sees the failure and goes on in memory
// until it is closed; whatever it writes meanwhile (a flush, a compaction)
// takes memory, so a failed manifest is for closing, not for long use.
//
// Pebble cannot go on from a failed log or MANIFEST write (it calls
// Logger.Fatalf), retries a failed flush at once and forever (and its Open
// waits for one), and leaks background work when its Open fails: letting a
// write error through would hang or crash the process.
type fenceFS struct {
	vfs.FS // the real one
	onFail func(error)

	fenced atomic.Bool
	mu     sync.Mutex
	mem    *vfs.MemFS      // what pebble wrote after the fence
	inMem  map[string]bool // paths that live in mem
	gone   map[string]bool // real paths removed or renamed away after the fence
}

// trip fences f if err is the failure of a change, and reports whether it
// did; the caller then redoes the change on the fenced side. A missing file
// is not a failure: it is reported as it is.
func (f *fenceFS) trip(err error) bool {
	if err == nil || os.IsNotExist(err) {
		return false
	}
	f.onFail(err)
	return true
}

func (f *fenceFS) fence() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.fenced.Load() {
		f.mem, f.inMem, f.gone = vfs.NewMem(), map[string]bool{}, map[string]bool{}
		f.fenced.Store(true)
	}
}

// isGone reports whether p or a directory above it was removed after the
// fence. f.mu is held.
func (f *fenceFS) isGone(p string) bool {
	for {
		if f.gone[p] {
			return true
		}
		d := f.FS.PathDir(p)
		if d == p {
			return false
		}
		p = d
	}
}

// onDisk reports whether the real file system still shows p. f.mu is held.
func (f *fenceFS) onDisk(p string) bool {
	if f.isGone(p) {
		return false
	}
	// A file that cannot even be stat'ed is taken to be there: pebble's
	// removals of it must not fail.
	_, err := f.FS.Stat(p)
	return !os.IsNotExist(err)
}

// materialize makes p live in mem, copying the real file's bytes if it has
// one. f.mu is held.
func (f *fenceFS) materialize(p string) error {
	if f.inMem[p] {
		return nil
	}
	if err := f.mem.MkdirAll(f.FS.PathDir(p), 0o755); err != nil {
		return err
	}
	if !f.onDisk(p) {
		return &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	src, err := f.FS.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := f.mem.Create(p, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	f.inMem[p] = true
	return dst.Close()
}

// wrap makes a writable real file drop its writes once fenced.
func (f *fenceFS) wrap(file vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &fencedFile{File: file, fs: f}, nil
}

func (f *fenceFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if !f.fenced.Load() {
		if file, err := f.FS.Create(name, c); !f.trip(err) {
			return f.wrap(file, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.createLocked(name, c)
}

// createLocked creates name in mem. f.mu is held.
func (f *fenceFS) createLocked(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.mem.MkdirAll(f.FS.PathDir(name), 0o755); err != nil {
		return nil, err
	}
	f.inMem[name] = true
	return f.mem.Create(name, c)
}

func (f *fenceFS) Link(oldname, newname string) error {
	if !f.fenced.Load() {
		if err := f.FS.Link(oldname, newname); !f.trip(err) {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.materialize(oldname); err != nil {
		return err
	}
	f.inMem[newname] = true
	return f.mem.Link(oldname, newname)
}

func (f *fenceFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	if f.fenced.Load() {
		f.mu.Lock()
		inMem, gone := f.inMem[name], f.isGone(name)
		f.mu.Unlock()
		switch {
		case inMem:
			return f.mem.Open(name, opts...)
		case gone:
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
	}
	return f.FS.Open(name, opts...)
}

func (f *fenceFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if !f.fenced.Load() {
		if file, err := f.FS.OpenReadWrite(name, c, opts...); !f.trip(err) {
			return f.wrap(file, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.materialize(name); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	f.inMem[name] = true
	return f.mem.OpenReadWrite(name, c, opts...)
}

func (f *fenceFS) OpenDir(name string) (vfs.File, error) {
	if !f.fenced.Load() {
		if file, err := f.FS.OpenDir(name); !f.trip(err) {
			return f.wrap(file, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.mem.MkdirAll(name, 0o755); err != nil {
		return nil, err
	}
	return f.mem.OpenDir(name)
}

func (f *fenceFS) Remove(name string) error {
	if !f.fenced.Load() {
		if err := f.FS.Remove(name); !f.trip(err) {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	found := false
	if f.inMem[name] {
		delete(f.inMem, name)
		found = f.mem.Remove(name) == nil
	}
	if f.onDisk(name) {
		f.gone[name] = true
		found = true
	}
	if !found {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	return nil
}

func (f *fenceFS) RemoveAll(name string) error {
	if !f.fenced.Load() {
		if err := f.FS.RemoveAll(name); !f.trip(err) {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for p := range f.inMem {
		if p == name || strings.HasPrefix(p, name+"/") {
			delete(f.inMem, p)
		}
	}
	f.gone[name] = true
	return f.mem.RemoveAll(name)
}

func (f *fenceFS) Rename(oldname, newname string) error {
	if !f.fenced.Load() {
		if err := f.FS.Rename(oldname, newname); !f.trip(err) {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renameLocked(oldname, newname)
}

func (f *fenceFS) renameLocked(oldname, newname string) error {
	if err := f.materialize(oldname); err != nil {
		return err
	}
	if err := f.mem.MkdirAll(f.FS.PathDir(newname), 0o755); err != nil {
		return err
	}
	if err := f.mem.Rename(oldname, newname); err != nil {
		return err
	}
	delete(f.inMem, oldname)
	f.inMem[newname] = true
	if f.onDisk(oldname) {
		f.gone[oldname] = true
	}
	return nil
}

func (f *fenceFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if !f.fenced.Load() {
		if file, err := f.FS.ReuseForWrite(oldname, newname, c); !f.trip(err) {
			return f.wrap(file, err)
		}
	}
	// The old file's bytes are to be written over: it need not be copied.
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inMem[oldname] {
		delete(f.inMem, oldname)
		_ = f.mem.Remove(oldname)
	}
	if f.onDisk(oldname) {
		f.gone[oldname] = true
	}
	return f.createLocked(newname, c)
}

func (f *fenceFS) MkdirAll(dir string, perm os.FileMode) error {
	if !f.fenced.Load() {
		if err := f.FS.MkdirAll(dir, perm); !f.trip(err) {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mem.MkdirAll(dir, perm)
}

func (f *fenceFS) List(dir string) ([]string, error) {
	if !f.fenced.Load() {
		return f.FS.List(dir)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	if !f.isGone(dir) {
		real, err := f.FS.List(dir)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, n := range real {
			if !f.gone[f.FS.PathJoin(dir, n)] {
				names = append(names, n)
			}
		}
	}
	if mem, err := f.mem.List(dir); err == nil {
		names = append(names, mem...)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func (f *fenceFS) Stat(name string) (vfs.FileInfo, error) {
	if f.fenced.Load() {
		f.mu.Lock()
		inMem, gone := f.inMem[name], f.isGone(name)
		f.mu.Unlock()
		switch {
		case inMem:
			return f.mem.Stat(name)
		case gone:
			return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
		}
	}
	return f.FS.Stat(name)
}

func (f *fenceFS) Unwrap() vfs.FS { return f.FS }

// fencedFile is a writable file of the real file system. A failed change
// fences the FS; once it is fenced, writes and syncs are dropped (reported
// done, as they would be lost in a crash).
type fencedFile struct {
	vfs.File
	fs *fenceFS
}

// do runs op unless the FS is fenced, and fences it if op fails.
func (f *fencedFile) do(op func() error) {
	if !f.fs.fenced.Load() {
		f.fs.trip(op())
	}
}

func (f *fencedFile) Write(p []byte) (int, error) {
	f.do(func() error { _, err := f.File.Write(p); return err })
	return len(p), nil
}

func (f *fencedFile) WriteAt(p []byte, off int64) (int, error) {
	f.do(func() error { _, err := f.File.WriteAt(p, off); return err })
	return len(p), nil
}

func (f *fencedFile) Preallocate(off, n int64) error {
	f.do(func() error { return f.File.Preallocate(off, n) })
	return nil
}

func (f *fencedFile) Sync() error {
	f.do(f.File.Sync)
	return nil
}

func (f *fencedFile) SyncData() error {
	f.do(f.File.SyncData)
	return nil
}

func (f *fencedFile) SyncTo(n int64) (bool, error) {
	full := true
	f.do(func() (err error) { full, err = f.File.SyncTo(n); return err })
	return full, nil
}

func (f *fencedFile) Close() error {
	if err := f.File.Close(); err != nil && !f.fs.fenced.Load() {
		f.fs.trip(err)
	}
	return nil
}
