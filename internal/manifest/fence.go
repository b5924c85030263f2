package manifest

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

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
	// onFull, if set, is called when a change fails with ENOSPC: it
	// reports whether it freed space (the store's reserve), and then the
	// change is tried once more before it fences the FS.
	onFull func() bool

	fenced atomic.Bool
	mu     sync.Mutex
	tables []string        // tables created on the real file system
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

// retry reports whether a change that failed with err should be tried
// again: it failed for want of space, and onFull freed some.
func (f *fenceFS) retry(err error) bool {
	return err != nil && f.onFull != nil && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) && f.onFull()
}

// tryDisk runs a change on the disk, unless the store is fenced, and once
// more (again, or op if again is nil) if it failed for want of space and
// room was freed. It reports whether the outcome stands (the change was
// made, or failed without fencing the store); if not, the caller makes the
// change in memory.
func (f *fenceFS) tryDisk(op, again func() error) (stands bool, err error) {
	if f.fenced.Load() {
		return false, nil
	}
	err = op()
	if f.retry(err) {
		if again == nil {
			again = op
		}
		err = again()
	}
	return !f.trip(err), err
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
func (f *fenceFS) wrap(name string, file vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &fencedFile{File: file, fs: f, name: name}, nil
}

func (f *fenceFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	var file vfs.File
	create := func() (err error) {
		file, err = f.FS.Create(name, c)
		if err == nil && strings.HasSuffix(name, ".sst") {
			f.mu.Lock()
			f.tables = append(f.tables, name)
			f.mu.Unlock()
		}
		return err
	}
	if stands, err := f.tryDisk(create, nil); stands {
		return f.wrap(name, file, err)
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
	if stands, err := f.tryDisk(func() error { return f.FS.Link(oldname, newname) }, nil); stands {
		return err
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
	var file vfs.File
	open := func() (err error) {
		file, err = f.FS.OpenReadWrite(name, c, opts...)
		return err
	}
	if stands, err := f.tryDisk(open, nil); stands {
		return f.wrap(name, file, err)
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
			// A directory's syncs are dropped once fenced; it has no
			// bytes to keep.
			return f.wrap("", file, err)
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
	if stands, err := f.tryDisk(func() error { return f.FS.Rename(oldname, newname) }, nil); stands {
		return err
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
	var file vfs.File
	reuse := func() (err error) {
		file, err = f.FS.ReuseForWrite(oldname, newname, c)
		return err
	}
	create := func() (err error) {
		file, err = f.FS.Create(newname, c)
		return err
	}
	if stands, err := f.tryDisk(reuse, create); stands {
		return f.wrap(newname, file, err)
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
	if stands, err := f.tryDisk(func() error { return f.FS.MkdirAll(dir, perm) }, nil); stands {
		return err
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

// removeEmptyTables removes the tables the fence left empty on the real
// file system (a flush that failed at its first write): no MANIFEST names
// them, and a failed Open would otherwise leave one behind each time.
func (f *fenceFS) removeEmptyTables() {
	f.mu.Lock()
	tables := f.tables
	f.mu.Unlock()
	for _, name := range tables {
		if info, err := f.FS.Stat(name); err == nil && info.Size() == 0 {
			_ = f.FS.Remove(name)
		}
	}
}

// fencedFile is a writable file of the real file system. A failed change
// fences the FS; from then on the file lives in memory: what was written to
// it so far is copied from the real file, and every later write (the one
// that failed included) goes to the copy, which the fenced FS serves to
// readers. Pebble thus reads back whole what it believes it wrote (a table
// whose flush failed half way is installed in its in-memory version, and
// reads of it must not meet the partial file on disk), while the real file
// stays as a crash at the fence would have left it.
type fencedFile struct {
	vfs.File
	fs   *fenceFS
	name string

	mu   sync.Mutex
	off  int64    // where the next Write goes
	size int64    // the end of what was written
	mem  vfs.File // the in-memory copy, once fenced
}

// memLocked returns the in-memory copy, making it if the FS is fenced, or
// nil while it is not. f.mu is held.
func (f *fencedFile) memLocked() vfs.File {
	if f.mem != nil || !f.fs.fenced.Load() {
		return f.mem
	}
	if f.name == "" {
		f.mem = nopFile{}
		return f.mem
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.mem.MkdirAll(f.fs.FS.PathDir(f.name), 0o755); err != nil {
		panic(err) // MemFS's MkdirAll does not fail on a fresh path
	}
	dst, err := f.fs.mem.Create(f.name, vfs.WriteCategoryUnspecified)
	if err != nil {
		panic(err)
	}
	if mutated(mutFenceDropsWrites) {
		f.mem = dst
		return dst
	}
	// The bytes written before the fence are in the real file (in the page
	// cache at least), up to where pebble's writes reached.
	if f.size > 0 {
		if src, err := f.fs.FS.Open(f.name); err == nil {
			_, _ = io.Copy(dst, io.LimitReader(src, f.size))
			src.Close()
		}
	}
	f.fs.inMem[f.name] = true
	f.mem = dst
	return dst
}

// write runs op on the real file unless the FS is fenced, fences it if op
// fails, and then does what op did on the in-memory copy instead.
func (f *fencedFile) write(op func(vfs.File) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.memLocked(); m != nil {
		_ = op(m)
		return
	}
	if !f.fs.trip(op(f.File)) {
		return
	}
	_ = op(f.memLocked())
}

func (f *fencedFile) Write(p []byte) (int, error) {
	f.write(func(file vfs.File) (err error) {
		if file == f.File {
			var n int
			n, err = file.Write(p)
			if f.fs.retry(err) {
				_, err = file.Write(p[n:])
			}
		} else {
			_, err = file.WriteAt(p, f.off)
		}
		return err
	})
	f.mu.Lock()
	f.off += int64(len(p))
	f.size = max(f.size, f.off)
	f.mu.Unlock()
	return len(p), nil
}

func (f *fencedFile) WriteAt(p []byte, off int64) (int, error) {
	f.write(func(file vfs.File) error {
		n, err := file.WriteAt(p, off)
		if file == f.File && f.fs.retry(err) {
			_, err = file.WriteAt(p[n:], off+int64(n))
		}
		return err
	})
	f.mu.Lock()
	f.size = max(f.size, off+int64(len(p)))
	f.mu.Unlock()
	return len(p), nil
}

// Preallocate only helps: a failure (no space for the whole extent) is not
// one of the file's writes failing, and does not fence. Pebble preallocates
// each new log for a whole memtable (4.4 MiB), space that the log seldom
// fills and that a small or nearly full disk cannot spare: at most
// maxPreallocate is asked for.
func (f *fencedFile) Preallocate(off, n int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.memLocked() == nil {
		_ = f.File.Preallocate(off, min(n, maxPreallocate))
	}
	return nil
}

// maxPreallocate bounds what a file of the manifest preallocates.
const maxPreallocate = 256 << 10

func (f *fencedFile) Sync() error {
	f.write(func(file vfs.File) error { return file.Sync() })
	return nil
}

func (f *fencedFile) SyncData() error {
	f.write(func(file vfs.File) error { return file.SyncData() })
	return nil
}

func (f *fencedFile) SyncTo(n int64) (bool, error) {
	full := true
	f.write(func(file vfs.File) (err error) {
		if file == f.File {
			full, err = file.SyncTo(n)
		}
		return err
	})
	return full, nil
}

func (f *fencedFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	m := f.mem
	f.mu.Unlock()
	if m != nil && f.name != "" {
		return m.ReadAt(p, off)
	}
	return f.File.ReadAt(p, off)
}

func (f *fencedFile) Stat() (vfs.FileInfo, error) {
	f.mu.Lock()
	m := f.mem
	f.mu.Unlock()
	if m != nil && f.name != "" {
		return m.Stat()
	}
	return f.File.Stat()
}

// nopFile stands for a fenced directory: its syncs are dropped.
type nopFile struct{ vfs.File }

func (nopFile) Sync() error                        { return nil }
func (nopFile) SyncData() error                    { return nil }
func (nopFile) SyncTo(int64) (bool, error)         { return true, nil }
func (nopFile) Close() error                       { return nil }
func (nopFile) WriteAt([]byte, int64) (int, error) { return 0, nil }
func (nopFile) Write(p []byte) (int, error)        { return len(p), nil }

func (f *fencedFile) Close() error {
	f.mu.Lock()
	m := f.mem
	f.mu.Unlock()
	if m != nil {
		_ = m.Close()
	}
	if err := f.File.Close(); err != nil && !f.fs.fenced.Load() {
		f.fs.trip(err)
	}
	return nil
}
