package dirstore

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dirstore/dirstore/internal/manifest"
)

// FS returns a read-only view of the Store as a file system (io/fs), for
// code that reads files: http.FileServer(http.FS(s.FS())), template and
// fs.WalkDir users, fstest. It also implements fs.ReadFileFS, fs.StatFS,
// fs.ReadDirFS and fs.SubFS.
//
// Keys are slash-separated paths: the key "a/b/c" is the file c in the
// directory a/b, and a directory exists wherever some visible key lies
// under it. Not visible through FS are
//
//   - keys that are not valid paths (see fs.ValidPath): the empty key,
//     keys with a leading, trailing or doubled slash, or with "." or ".."
//     elements, and the key "." (the root is a directory);
//   - a key that is also the directory of other keys, as "a" beside "a/b":
//     the directory wins, and "a"'s value is reachable only through the
//     Store itself.
//
// Backslashes and other characters are not separators: the key `a\b` is
// one file, as fs.ValidPath says (testing/fstest.TestFS, stricter, rejects
// such names).
//
// The view is live, not a snapshot: each call sees the Store as it is then
// (a directory's listing is consistent within itself). Directories are
// listed from the manifest's sorted keys, skipping over a subdirectory's
// keys rather than reading them, so listing one directory does not read
// the whole store.
//
// Open of a file returns a *Stream over the key's value (Store.Open), so
// it is an io.ReaderAt and io.Seeker as well, and checks the value's
// checksum when read to the end; the Stream keeps reading the version it
// opened after the key changes. Its Stat, and fs.Stat, report the key's
// base name, the value's size, mode 0444 and, as ModTime, when the value
// was written (for values written by versions of dirstore that did not
// record it, and files adopted from zict, the file's modification time).
// Directories have mode fs.ModeDir|0555 and a zero ModTime.
//
// Errors are *fs.PathError values with the name as given and an error
// matching fs.ErrNotExist, fs.ErrInvalid (bad names, reading a directory),
// fs.ErrClosed (after the Store is closed), or ErrCorrupt.
func (s *Store) FS() fs.FS { return &storeFS{s: s} }

// storeFS is Store.FS's view of the keys under prefix ("" or "dir/").
type storeFS struct {
	s      *Store
	prefix string
}

var (
	_         fs.ReadFileFS  = (*storeFS)(nil)
	_         fs.StatFS      = (*storeFS)(nil)
	_         fs.ReadDirFS   = (*storeFS)(nil)
	_         fs.SubFS       = (*storeFS)(nil)
	_         fs.ReadDirFile = (*fsDir)(nil)
	_         fs.File        = (*Stream)(nil)
	errIsDir  error          = &sentinel{"is a directory", fs.ErrInvalid}
	errNotDir error          = &sentinel{"not a directory", fs.ErrInvalid}
)

// visible reports whether key (a full key) can be a file or directory of
// the view: a valid path other than the root.
func visible(key string) bool { return key != "." && fs.ValidPath(key) }

// fsPathErr turns a Store error into the *fs.PathError of op on name.
func fsPathErr(op, name string, err error) error {
	var ke *KeyError
	if errors.As(err, &ke) {
		err = ke.Err
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// key returns the key of name, a valid path other than ".".
func (f *storeFS) key(name string) string { return f.prefix + name }

func (f *storeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return f.openDir(name), nil
	}
	key := f.key(name)
	isDir, err := f.s.isFSDir(key)
	if err != nil {
		return nil, fsPathErr("open", name, err)
	}
	if isDir {
		return f.openDir(name), nil
	}
	st, e, err := f.s.openStream(key, nil)
	if err != nil {
		return nil, fsPathErr("open", name, err)
	}
	info := &fsInfo{name: path.Base(name), size: e.Size, mode: 0o444, mtime: e.ModTime}
	if info.mtime == 0 {
		// An entry without its write time: the file's modification time.
		fi, err := st.Stat()
		if err != nil {
			st.Close()
			return nil, fsPathErr("open", name, err)
		}
		info.mtime = fi.ModTime().UnixNano()
	}
	st.fsInfo = info
	return st, nil
}

func (f *storeFS) openDir(name string) *fsDir {
	return &fsDir{fsys: f, name: name, info: dirInfo(name)}
}

func dirInfo(name string) *fsInfo {
	return &fsInfo{name: path.Base(name), mode: fs.ModeDir | 0o555}
}

func (f *storeFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return dirInfo(name), nil
	}
	key := f.key(name)
	isDir, err := f.s.isFSDir(key)
	if err != nil {
		return nil, fsPathErr("stat", name, err)
	}
	if isDir {
		return dirInfo(name), nil
	}
	info, err := f.s.fileInfo(key, path.Base(name))
	if err != nil {
		return nil, fsPathErr("stat", name, err)
	}
	return info, nil
}

func (f *storeFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errIsDir}
	}
	key := f.key(name)
	isDir, err := f.s.isFSDir(key)
	if err != nil {
		return nil, fsPathErr("read", name, err)
	}
	if isDir {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errIsDir}
	}
	data, err := f.s.Get(key)
	if err != nil {
		return nil, fsPathErr("read", name, err)
	}
	return data, nil
}

func (f *storeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	return f.readDir(name)
}

// readDir lists the directory name, which must exist.
func (f *storeFS) readDir(name string) ([]fs.DirEntry, error) {
	dir := f.prefix
	if name != "." {
		dir = f.key(name) + "/"
	}
	list, err := f.s.listFSDir(dir, nil)
	if err != nil {
		return nil, fsPathErr("readdir", name, err)
	}
	if len(list) == 0 && name != "." {
		// No visible key lies under it: not a directory.
		if ok, err := f.s.Has(f.key(name)); err != nil || ok {
			if err == nil {
				err = errNotDir
			}
			return nil, fsPathErr("readdir", name, err)
		}
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	return list, nil
}

func (f *storeFS) Sub(dir string) (fs.FS, error) {
	if !fs.ValidPath(dir) {
		return nil, &fs.PathError{Op: "sub", Path: dir, Err: fs.ErrInvalid}
	}
	if dir == "." {
		return f, nil
	}
	return &storeFS{s: f.s, prefix: f.key(dir) + "/"}, nil
}

// fsInfo is the fs.FileInfo of a file or directory of a Store's FS.
type fsInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime int64 // Unix nanoseconds; 0 for directories
}

func (i *fsInfo) Name() string               { return i.name }
func (i *fsInfo) Size() int64                { return i.size }
func (i *fsInfo) Mode() fs.FileMode          { return i.mode }
func (i *fsInfo) IsDir() bool                { return i.mode.IsDir() }
func (i *fsInfo) Sys() any                   { return nil }
func (i *fsInfo) String() string             { return fs.FormatFileInfo(i) }
func (i *fsInfo) Type() fs.FileMode          { return i.mode.Type() }
func (i *fsInfo) Info() (fs.FileInfo, error) { return i, nil }
func (i *fsInfo) ModTime() time.Time {
	if i.mtime == 0 {
		return time.Time{}
	}
	return time.Unix(0, i.mtime)
}

// fsFileEntry is a file's fs.DirEntry whose manifest entry has no write
// time: Info reads the file's modification time.
type fsFileEntry struct {
	fsInfo
	s   *Store
	key string
	e   manifest.Entry
}

func (d *fsFileEntry) Info() (fs.FileInfo, error) {
	info := d.fsInfo
	mtime, err := d.s.fileModTime(d.key, d.e)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.name, Err: err}
	}
	info.mtime = mtime
	return &info, nil
}

func (d *fsFileEntry) String() string { return fs.FormatDirEntry(d) }

// fileModTime returns the modification time of the file of key's entry e.
func (s *Store) fileModTime(key string, e manifest.Entry) (int64, error) {
	fi, err := s.opts.FS.Stat(s.files.Path(fileName(key, e)))
	if err != nil {
		return 0, err
	}
	return fi.ModTime().UnixNano(), nil
}

// fileInfo returns the FileInfo, named name, of key's value.
func (s *Store) fileInfo(key, name string) (*fsInfo, error) {
	if err := s.begin("stat", key, false); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	if p, ok := s.wb.get(key); ok {
		if p.del {
			return nil, keyErr("stat", key, ErrNotFound)
		}
		return &fsInfo{name: name, size: int64(len(p.value)), mode: 0o444, mtime: p.modTime}, nil
	}
	// The file of an entry without its write time may be superseded
	// meanwhile: resolve retries with the key's new entry.
	var info *fsInfo
	err := s.resolve("stat", key, false, func(_ string, e manifest.Entry) error {
		info = &fsInfo{name: name, size: e.Size, mode: 0o444, mtime: e.ModTime}
		if e.ModTime != 0 {
			return nil
		}
		var err error
		info.mtime, err = s.fileModTime(key, e)
		return err
	})
	return info, err
}

// fsScan walks the keys under a directory, the manifest's merged with the
// write buffer's, in key order, skipping over subdirectories on request.
type fsScan struct {
	man      *manifest.Scanner
	manOK    bool
	buffered []applied
}

func (s *Store) newFSScan(dir string) (*fsScan, error) {
	// Taken before the manifest's snapshot, buffered operations are never
	// older than it (as in KeysWithPrefix).
	sc := &fsScan{buffered: s.wb.bufferedKeys(dir)}
	var err error
	if sc.man, err = s.man.Scan(dir); err != nil {
		return nil, err
	}
	sc.manOK = sc.man.Next()
	return sc, nil
}

// next returns the next key that has a value, with its entry (op is set
// instead for a buffered value), or ok false at the end. It does not move:
// call advance or seek after it.
func (sc *fsScan) next() (key string, e manifest.Entry, op *pendingOp, ok bool, err error) {
	for {
		hasBuf := len(sc.buffered) > 0
		if !sc.manOK && !hasBuf {
			return "", e, nil, false, sc.man.Err()
		}
		var mk string
		if sc.manOK {
			mk = sc.man.Key()
		}
		if hasBuf && (!sc.manOK || sc.buffered[0].key <= mk) {
			a := &sc.buffered[0]
			if sc.manOK && a.key == mk {
				sc.manOK = sc.man.Next() // the buffered operation wins
			}
			if a.op.del {
				sc.buffered = sc.buffered[1:]
				continue
			}
			return a.key, e, &a.op, true, nil
		}
		e, err = sc.man.Entry()
		return mk, e, nil, err == nil, err
	}
}

// advance moves past key, the one next returned.
func (sc *fsScan) advance(key string) {
	if len(sc.buffered) > 0 && sc.buffered[0].key == key {
		sc.buffered = sc.buffered[1:]
		return
	}
	sc.manOK = sc.man.Next()
}

// seek moves to the first key at or after to.
func (sc *fsScan) seek(to string) {
	for len(sc.buffered) > 0 && sc.buffered[0].key < to {
		sc.buffered = sc.buffered[1:]
	}
	if sc.manOK && sc.man.Key() < to {
		sc.manOK = sc.man.SeekGE(to)
	}
}

func (sc *fsScan) close() { sc.man.Close() }

// isFSDir reports whether key is a directory of Store.FS: whether a
// visible key lies under it.
func (s *Store) isFSDir(key string) (bool, error) {
	dir := key + "/"
	if err := s.begin("stat", dir, false); err != nil {
		return false, err
	}
	defer s.closeMu.RUnlock()
	sc, err := s.newFSScan(dir)
	if err != nil {
		return false, keyErr("stat", key, err)
	}
	defer sc.close()
	for {
		k, _, _, ok, err := sc.next()
		if err != nil {
			return false, keyErr("stat", key, err)
		}
		if !ok {
			return false, nil
		}
		if visible(k) {
			return true, nil
		}
		sc.advance(k)
	}
}

// listFSDir lists the directory of Store.FS whose keys start with dir (""
// or "a/b/"), sorted by name. If visited is not nil, it counts the keys
// the listing looked at (for tests).
func (s *Store) listFSDir(dir string, visited *int) ([]fs.DirEntry, error) {
	if err := s.begin("readdir", dir, false); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	sc, err := s.newFSScan(dir)
	if err != nil {
		return nil, keyErr("readdir", dir, err)
	}
	defer sc.close()
	var list []fs.DirEntry
	dirs := map[string]bool{}
	for {
		k, e, op, ok, err := sc.next()
		if err != nil {
			return nil, keyErr("readdir", dir, err)
		}
		if !ok {
			break
		}
		if visited != nil {
			*visited++
		}
		if !visible(k) {
			sc.advance(k)
			continue
		}
		name := k[len(dir):]
		if i := strings.IndexByte(name, '/'); i >= 0 {
			// A visible key in a subdirectory: list the subdirectory and
			// skip the rest of its keys ('0' follows '/').
			name = name[:i]
			if !dirs[name] {
				dirs[name] = true
				list = append(list, dirInfo(name))
			}
			sc.seek(dir + name + "0")
			continue
		}
		switch {
		case op != nil:
			list = append(list, &fsInfo{name: name, size: int64(len(op.value)), mode: 0o444, mtime: op.modTime})
		case e.ModTime != 0:
			list = append(list, &fsInfo{name: name, size: e.Size, mode: 0o444, mtime: e.ModTime})
		default:
			list = append(list, &fsFileEntry{fsInfo: fsInfo{name: name, size: e.Size, mode: 0o444}, s: s, key: k, e: e})
		}
		sc.advance(k)
	}
	// A file named as a directory is hidden by it.
	list = slices.DeleteFunc(list, func(d fs.DirEntry) bool { return !d.IsDir() && dirs[d.Name()] })
	slices.SortFunc(list, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return list, nil
}

// fsDir is an open directory of a Store's FS. Its listing is read at the
// first ReadDir.
type fsDir struct {
	fsys *storeFS
	name string
	info *fsInfo

	mu     sync.Mutex
	list   []fs.DirEntry
	read   bool // list was read
	closed bool
}

func (d *fsDir) Stat() (fs.FileInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, &fs.PathError{Op: "stat", Path: d.name, Err: fs.ErrClosed}
	}
	return d.info, nil
}

func (d *fsDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errIsDir}
}

func (d *fsDir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return &fs.PathError{Op: "close", Path: d.name, Err: fs.ErrClosed}
	}
	d.closed = true
	return nil
}

// ReadDir follows fs.ReadDirFile: with n > 0 at most n entries, and io.EOF
// at the end; otherwise all the remaining entries.
func (d *fsDir) ReadDir(n int) ([]fs.DirEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, &fs.PathError{Op: "readdir", Path: d.name, Err: fs.ErrClosed}
	}
	if !d.read {
		list, err := d.fsys.readDir(d.name)
		if err != nil {
			return nil, err
		}
		d.list, d.read = list, true
	}
	if n <= 0 {
		out := d.list
		d.list = nil
		return out, nil
	}
	if len(d.list) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.list))
	out := d.list[:n:n]
	d.list = d.list[n:]
	return out, nil
}
