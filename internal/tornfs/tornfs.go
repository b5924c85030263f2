// Package tornfs is a file system for crash tests that remembers which
// byte ranges of each file were written and not yet synced, so that a crash
// clone can have them come back as garbage: the torn-write model, harsher
// than pebble's MemFS, which returns unsynced blocks either intact or as
// they were before.
package tornfs

import (
	"math/rand/v2"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FS wraps a file system and notes the unsynced ranges of the files
// written through it.
type FS struct {
	vfs.FS
	mu    sync.Mutex
	dirty map[string][][2]int64
	torn  int // ranges torn so far
}

// New returns an FS over fs.
func New(fs vfs.FS) *FS { return &FS{FS: fs, dirty: map[string][][2]int64{}} }

// Torn returns how many ranges Tear has torn so far.
func (t *FS) Torn() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.torn
}

func (t *FS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := t.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.dirty[name] = nil
	t.mu.Unlock()
	return &file{File: f, fs: t, name: name}, nil
}

func (t *FS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := t.FS.ReuseForWrite(oldname, newname, c)
	if err != nil {
		return nil, err
	}
	t.moved(oldname, newname)
	return &file{File: f, fs: t, name: newname}, nil
}

func (t *FS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := t.FS.OpenReadWrite(name, c, opts...)
	if err != nil {
		return nil, err
	}
	return &file{File: f, fs: t, name: name}, nil
}

func (t *FS) Rename(oldname, newname string) error {
	if err := t.FS.Rename(oldname, newname); err != nil {
		return err
	}
	t.moved(oldname, newname)
	return nil
}

func (t *FS) Remove(name string) error {
	if err := t.FS.Remove(name); err != nil {
		return err
	}
	t.mu.Lock()
	delete(t.dirty, name)
	t.mu.Unlock()
	return nil
}

func (t *FS) moved(oldname, newname string) {
	t.mu.Lock()
	t.dirty[newname] = t.dirty[oldname]
	delete(t.dirty, oldname)
	t.mu.Unlock()
}

// Tear overwrites about half of the unsynced ranges in clone with garbage.
// Ranges are noted after the write and forgotten before the sync, so a
// clone taken concurrently never has synced bytes torn.
func (t *FS) Tear(clone *vfs.MemFS, rng *rand.Rand) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, ranges := range t.dirty {
		if len(ranges) == 0 {
			continue
		}
		f, err := clone.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			continue // the clone lost the file, or never had it
		}
		st, err := f.Stat()
		if err == nil {
			for _, r := range ranges {
				end := min(r[1], st.Size())
				if r[0] >= end || rng.IntN(2) == 0 {
					continue
				}
				junk := make([]byte, end-r[0])
				for i := range junk {
					junk[i] = byte(rng.Uint32())
				}
				if _, err := f.WriteAt(junk, r[0]); err == nil {
					t.torn++
				}
			}
		}
		f.Close()
	}
}

type file struct {
	vfs.File
	fs   *FS
	name string
	off  int64
}

func (f *file) note(off, n int64) {
	f.fs.mu.Lock()
	f.fs.dirty[f.name] = append(f.fs.dirty[f.name], [2]int64{off, off + n})
	f.fs.mu.Unlock()
}

func (f *file) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.note(f.off, int64(n))
	f.off += int64(n)
	return n, err
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.note(off, int64(n))
	return n, err
}

func (f *file) forget() {
	f.fs.mu.Lock()
	if _, ok := f.fs.dirty[f.name]; ok {
		f.fs.dirty[f.name] = nil
	}
	f.fs.mu.Unlock()
}

func (f *file) Sync() error {
	f.forget()
	return f.File.Sync()
}

func (f *file) SyncData() error {
	f.forget()
	return f.File.SyncData()
}

// SyncTo on MemFS syncs nothing (it says so), so it forgets nothing.
