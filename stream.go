package dirstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore/backends"
	"github.com/dirstore/dirstore/internal/datadir"
	"github.com/dirstore/dirstore/internal/rangecache"

	"github.com/dirstore/dirstore/internal/sysmode"
)

// DefaultChunkSize is the most bytes one Stream Read takes from the file
// unless StreamOptions.ChunkSize says otherwise.
const DefaultChunkSize = 2 << 20

// Event names the operations hooks attach to.
type Event string

const (
	// OnRead hooks run after every read: Read and ReadAt on a Stream, cache
	// hits included; Get, View and Stream reads on a Store.
	OnRead Event = "on_read"
	// OnWrite hooks run after every write: Write and WriteAt on a Stream;
	// Set, SetBuffers and SetFrom on a Store.
	OnWrite Event = "on_write"
)

const (
	evRead = iota
	evWrite
	numEvents
)

func eventIndex(ev Event) (int, error) {
	switch ev {
	case OnRead:
		return evRead, nil
	case OnWrite:
		return evWrite, nil
	}
	return 0, fmt.Errorf("dirstore: unknown event %q (want %q or %q): %w", string(ev), OnRead, OnWrite, fs.ErrInvalid)
}

// HookFunc is called after a read or a write with the Stream, the bytes read
// or written and their count. A Stream's hooks get n == len(data); a Store's
// write hooks may get nil data with n the value's length (see Store.Hook).
// data belongs to the caller of
// the operation: a hook must not modify it, nor keep it after returning (an
// async hook gets its own copy, shared with the other async hooks of the
// same event, and may keep it). See Store.Hook for what a Store's hooks get.
type HookFunc func(s *Stream, data []byte, n int)

// StreamOptions configure OpenStream and Store.OpenStream. A nil
// *StreamOptions means the defaults.
type StreamOptions struct {
	// ChunkSize is the most bytes one Read takes from the file, and the
	// size of the cache entries a large ReadAt is split into. Default
	// DefaultChunkSize (2 MiB).
	ChunkSize int

	// Cache holds the Stream's read results. Default (nil): DefaultCache(),
	// shared by the whole process, which stores every range read;
	// NewScanResistantCache makes one that stores a range at its second
	// read. NoCache turns caching off.
	Cache *Cache

	// Backend performs the Stream's file I/O. Default backends.Default().
	// Store values on a file system other than the operating system's are
	// read through that file system instead.
	Backend backends.Backend

	// Immutable promises that the file does not change while the Stream is
	// open, in this process or any other: the Stream then takes no fstat
	// per read to check that its cached bytes are still current, so a
	// cache hit costs no system call, and it refuses writes. A broken
	// promise means stale bytes. Streams from Store.Open are always
	// immutable, truly: a Store never changes a value's file. Default
	// false.
	Immutable bool
}

func (o *StreamOptions) withDefaults() (StreamOptions, error) {
	var c StreamOptions
	if o != nil {
		c = *o
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.Cache == nil {
		c.Cache = DefaultCache()
	}
	if c.Backend == nil {
		c.Backend = backends.Default()
	}
	if c.ChunkSize < 0 {
		return c, fmt.Errorf("dirstore: invalid stream options: ChunkSize %d is negative: %w", c.ChunkSize, fs.ErrInvalid)
	}
	return c, nil
}

var (
	errStreamOffset   = errors.New("negative offset")
	errStreamAppendAt = errors.New("dirstore: invalid use of WriteAt on stream opened with O_APPEND")
	// errImmutable refuses writes to an immutable Stream. It matches
	// fs.ErrPermission.
	errImmutable error = &sentinel{"dirstore: stream is immutable", fs.ErrPermission}
)

// Stream is a file opened for streaming I/O, with *os.File's semantics for
// Read, ReadAt, Write, WriteAt, Seek, Stat, Sync and Close, plus a shared
// read cache and hooks.
//
// Reads are served from the Stream's Cache when it holds the same range of
// the same file (by device and inode, so every Stream of a file shares its
// entries) and the file has not changed since. A read that misses reads the
// file, and the Cache stores the result if it admits the range: by default
// always; a scan-resistant Cache at the range's second read, so that a
// one-pass scan neither pays for copies into the Cache nor evicts what is
// read over and over (see Cache).
// Before each Read or ReadAt the Stream takes one fstat and compares size
// and modification time with those under which the entries were read, and
// a write through any Stream of the file in this process bumps a generation
// that invalidates them too. Changed files' entries are dropped, never
// returned. Writes patch the cache instead of invalidating it (see Cache).
// Streams opened Immutable, and all Streams from Store.Open, skip the
// fstat: their cache hits make no system call. A Stream with NoCache reads
// and writes the file directly.
//
// Changes by another process are seen through the fstat: on Linux since
// 6.13, a file whose times were read gets a distinct modification time at
// its next change, so even a same-size rewrite within one clock tick is
// caught. Not caught: a change whose modification time was set back
// (utimes), and a write by another process racing with a write through a
// Stream here.
//
// ReadAt and WriteAt may be called concurrently, with each other and with
// the other methods. Read, Write and Seek use the Stream's position (its
// own: the descriptor's offset is never used) and must not be called
// concurrently, as with any io.ReadWriteSeeker.
//
// Hooks (Hook, HookAsync) run after every read and write; see Hook.
//
// Close must be called. It waits for the calls using the file and for the
// async hooks of the calls that ended before it; later calls return errors
// matching fs.ErrClosed. File-level errors are *fs.PathError values with the
// Stream's name.
type Stream struct {
	name      string
	fd        int              // >= 0: I/O through eng on fd
	rf        datadir.ReadFile // a Store value's file; does the I/O if fd < 0
	eng       backends.Backend
	flags     backends.Flags
	append    bool
	immutable bool
	fixed     rangecache.Snapshot // immutable: the file as opened
	quickStat bool                // mutable, and fstat of fd never blocks: rawFstat
	dev, ino  uint64
	chunk     int
	cache     *rangecache.Cache // nil: NoCache
	id        *rangecache.Ident

	pos int64 // Read, Write and Seek only

	// mu is held for reading by every call that uses the descriptor, and
	// for writing by Close, which must not close it under a call. A cache
	// hit takes no mu: an immutable Stream's makes no system call and only
	// checks closed; a mutable Stream's fstat is vouched for by a check of
	// closed after it (freshSnapshot).
	mu     sync.RWMutex
	closed atomic.Bool // set with mu held

	hooks [numEvents]hookList
	store *storeStreams // the Store's hooks, for Streams from Store.Open
	async asyncQueue

	base    atomic.Pointer[baseline] // for IsModified
	verify  *verifier                // Store values: sequential checksum
	cleanup runtime.Cleanup

	fsInfo fs.FileInfo // Stat's answer for a Stream from Store.FS (fs.go)
}

var (
	_ io.ReadWriteSeeker = (*Stream)(nil)
	_ io.ReaderAt        = (*Stream)(nil)
	_ io.WriterAt        = (*Stream)(nil)
	_ io.Closer          = (*Stream)(nil)
)

// baseline is what the Stream last saw of its file.
type baseline struct {
	snap rangecache.Snapshot
	gen  uint64
}

// streamRes is what a Stream's cleanup releases if Close is never called.
type streamRes struct {
	fd int
	rf datadir.ReadFile
}

func (r streamRes) release() error {
	if r.rf != nil {
		return r.rf.Close()
	}
	return ignoringEINTR(func() error { return unix.Close(r.fd) })
}

// OpenStream opens the named file with os.OpenFile's flag and perm.
func OpenStream(name string, flag int, perm fs.FileMode, opts *StreamOptions) (*Stream, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.Immutable && flag&(unix.O_WRONLY|unix.O_RDWR|unix.O_TRUNC) != 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: an immutable stream cannot be opened for writing", fs.ErrInvalid)}
	}
	var fd int
	err = ignoringEINTR(func() (err error) {
		fd, err = unix.Open(name, flag|unix.O_CLOEXEC, sysmode.Of(perm))
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	s := &Stream{
		name:      name,
		fd:        fd,
		eng:       o.Backend,
		append:    flag&unix.O_APPEND != 0,
		immutable: o.Immutable,
		dev:       uint64(st.Dev),
		ino:       st.Ino,
		chunk:     o.ChunkSize,
		cache:     o.Cache.c,
		id:        rangecache.Acquire(rangecache.IdentKey{Dev: uint64(st.Dev), Ino: st.Ino}),
	}
	if oDirect != 0 && flag&oDirect != 0 {
		s.flags |= backends.Direct
	}
	if s.immutable {
		s.fixed = snapshotOf(&st)
	} else {
		s.quickStat = statNeverBlocks(fd)
	}
	if flag&unix.O_TRUNC != 0 {
		// Opening truncated the file: a change other Streams must see.
		s.id.Bump()
	}
	s.cleanup = runtime.AddCleanup(s, func(r streamRes) { r.release() }, streamRes{fd: fd})
	return s, nil
}

func snapshotOf(st *unix.Stat_t) rangecache.Snapshot {
	return rangecache.Snapshot{Size: st.Size, Mtime: st.Mtim.Nano()}
}

// Name returns the name the Stream was opened with (for Store.Open, the
// value file's path).
func (s *Stream) Name() string { return s.name }

func (s *Stream) pathErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: op, Path: s.name, Err: err}
}

func (s *Stream) closedErr(op string) error {
	return &fs.PathError{Op: op, Path: s.name, Err: fs.ErrClosed}
}

// snapshotLocked returns the file's Snapshot: the one taken at open for an
// immutable Stream, else a fresh fstat. The caller holds mu for reading, or
// checks closed after it (freshSnapshot).
func (s *Stream) snapshotLocked() (rangecache.Snapshot, error) {
	if s.immutable {
		return s.fixed, nil
	}
	var st unix.Stat_t
	var err error
	if s.quickStat {
		err = rawFstat(s.fd, &st)
	} else {
		err = ignoringEINTR(func() error { return unix.Fstat(s.fd, &st) })
	}
	if err != nil {
		return rangecache.Snapshot{}, s.pathErr("stat", err)
	}
	return snapshotOf(&st), nil
}

// freshSnapshot is a mutable Stream's fstat for a read through the cache,
// and notes it for IsModified. A hit does not use the descriptor after it,
// so the fstat goes without mu: closed, loaded after it, says whether it
// saw the Stream's file. Close sets closed before it closes the
// descriptor, and fstat had returned before the load; so if closed is
// still false, the descriptor was not yet closed, nor its number reused
// for another file, when fstat ran.
func (s *Stream) freshSnapshot() (rangecache.Snapshot, error) {
	snap, err := s.snapshotLocked()
	if s.closed.Load() && !mutated(mutStatUnchecked) {
		return rangecache.Snapshot{}, s.closedErr("read")
	}
	if err != nil {
		return rangecache.Snapshot{}, err
	}
	s.note(snap, s.id.Gen())
	return snap, nil
}

// note records what the Stream saw of the file, for IsModified.
func (s *Stream) note(snap rangecache.Snapshot, gen uint64) {
	if b := s.base.Load(); b == nil || b.snap != snap || b.gen != gen {
		s.base.Store(&baseline{snap, gen})
	}
}

func (s *Stream) pread(p []byte, off int64) (int, error) {
	if s.fd >= 0 {
		return s.eng.ReadAt(s.fd, p, off, s.flags)
	}
	return s.rf.ReadAt(p, off)
}

// readAt fills p from off through the cache, in entries of at most chunk
// bytes, with one freshness check for the whole call. It takes mu only if
// it must read the file.
func (s *Stream) readAt(p []byte, off int64) (n int, err error) {
	if s.closed.Load() {
		return 0, s.closedErr("read")
	}
	if len(p) == 0 {
		return 0, nil
	}
	locked := false
	defer func() {
		if locked {
			s.mu.RUnlock()
		}
	}()
	lock := func() bool {
		s.mu.RLock()
		locked = true
		return !s.closed.Load()
	}
	if s.cache == nil {
		if s.immutable && off >= s.fixed.Size {
			return 0, io.EOF
		}
		if !lock() {
			return 0, s.closedErr("read")
		}
		n, err := s.pread(p, off)
		return n, s.pathErr("read", err)
	}
	snap := s.fixed
	if !s.immutable {
		if snap, err = s.freshSnapshot(); err != nil {
			return 0, err
		}
	}
	for n < len(p) {
		at := off + int64(n)
		if at >= snap.Size {
			// The file ended when the snapshot was taken.
			return n, io.EOF
		}
		q := p[n:min(len(p), n+s.chunk)]
		m, hit, buf := s.cache.Lookup(s.id, snap, at, q)
		if hit {
			n += m
			if m < len(q) {
				return n, io.EOF
			}
			continue
		}
		if !locked && !lock() {
			if buf != nil {
				s.cache.Release(buf)
			}
			return n, s.closedErr("read")
		}
		// A range not admitted (its first read) goes straight into q: no
		// copy for the cache. An admitted one is read into the buffer the
		// cache gave for it, copied into q from there, and stored.
		gen := s.id.Gen() // before the read: see rangecache.Cache.Put
		var err error
		if buf == nil {
			m, err = s.pread(q, at)
		} else {
			m, err = s.pread(buf, at)
			copy(q, buf[:m])
			if err == nil || err == io.EOF {
				s.cache.PutBuffer(s.id, snap, gen, at, len(q), buf[:m])
			} else {
				s.cache.Release(buf)
			}
		}
		n += m
		if err != nil {
			return n, s.pathErr("read", err)
		}
	}
	return n, nil
}

// Read reads up to len(p) bytes, at most ChunkSize, at the Stream's
// position and advances it (io.Reader). At the end of the file it returns
// 0, io.EOF. A Stream from Store.Open that is read from the start to the
// end checks the value's checksum and returns an error matching ErrCorrupt
// instead of io.EOF if it does not match.
func (s *Stream) Read(p []byte) (int, error) {
	if len(p) > s.chunk {
		p = p[:s.chunk]
	}
	off := s.pos
	n, err := s.readAt(p, off)
	s.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	if s.verify != nil && (err == nil || err == io.EOF) {
		err = s.verify.sequential(s, off, p[:n], err)
	}
	if n > 0 {
		s.fire(evRead, p[:n])
	}
	return n, err
}

// ReadAt reads len(p) bytes at offset off (io.ReaderAt): when n < len(p) it
// returns an error, io.EOF at the end of the file. It does not use or move
// the Stream's position, and may be called concurrently.
func (s *Stream) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: s.name, Err: errStreamOffset}
	}
	n, err := s.readAt(p, off)
	if s.verify != nil && off == 0 && int64(n) == s.fixed.Size && (err == nil || err == io.EOF) {
		if verr := s.verify.whole(s, p[:n]); verr != nil {
			err = verr
		}
	}
	if n > 0 {
		s.fire(evRead, p[:n])
	}
	return n, err
}

// writeAt writes p at off and brings the caches up to date. It returns the
// position after the write (the end of the file for O_APPEND).
func (s *Stream) writeAt(p []byte, off int64) (n int, end int64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return 0, off, s.closedErr("write")
	}
	if s.immutable {
		return 0, off, &fs.PathError{Op: "write", Path: s.name, Err: errImmutable}
	}
	if len(p) == 0 {
		return 0, off, nil
	}
	if s.cache == nil {
		n, err = s.eng.WriteAt(s.fd, p, off, s.flags)
		end = off + int64(n)
		if n > 0 {
			gen := s.id.Bump()
			if snap, serr := s.snapshotLocked(); serr == nil {
				s.note(snap, gen)
				if s.append {
					end = snap.Size
				}
			}
		}
		return n, end, s.pathErr("write", err)
	}
	s.id.Lock()
	defer s.id.Unlock()
	pre, err := s.snapshotLocked()
	if err != nil {
		return 0, off, err
	}
	n, err = s.eng.WriteAt(s.fd, p, off, s.flags)
	end = off + int64(n)
	if n == 0 {
		return 0, end, s.pathErr("write", err)
	}
	post, serr := s.snapshotLocked()
	gen := s.id.Bump()
	if err != nil || serr != nil || s.append {
		// Where the bytes went, or what the file is now, is unsure.
		s.cache.Invalidate(s.id)
	} else {
		s.cache.Write(s.id, pre, post, gen, off, p[:n], n <= s.chunk)
	}
	if serr == nil {
		s.note(post, gen)
		if s.append {
			end = post.Size
		}
	}
	return n, end, s.pathErr("write", err)
}

// Write writes all of p at the Stream's position (at the end of the file
// for O_APPEND) and advances it (io.Writer).
func (s *Stream) Write(p []byte) (int, error) {
	n, end, err := s.writeAt(p, s.pos)
	s.pos = end
	if n > 0 {
		s.fire(evWrite, p[:n])
	}
	return n, err
}

// WriteAt writes all of p at offset off (io.WriterAt), or returns an error.
// Writing past the end extends the file with zeros. It does not use or move
// the Stream's position, and may be called concurrently; concurrent writes
// to one file through Streams with a cache are serialised. A Stream opened
// with O_APPEND refuses WriteAt, as *os.File does.
func (s *Stream) WriteAt(p []byte, off int64) (int, error) {
	if s.append {
		return 0, &fs.PathError{Op: "writeat", Path: s.name, Err: errStreamAppendAt}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "writeat", Path: s.name, Err: errStreamOffset}
	}
	n, _, err := s.writeAt(p, off)
	if n > 0 {
		s.fire(evWrite, p[:n])
	}
	return n, err
}

// Seek sets the position for the next Read or Write (io.Seeker). Seeking
// past the end is allowed; a negative position is an error and leaves the
// position as it was.
func (s *Stream) Seek(offset int64, whence int) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return 0, s.closedErr("seek")
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = s.pos
	case io.SeekEnd:
		snap, err := s.snapshotLocked()
		if err != nil {
			return 0, err
		}
		base = snap.Size
	default:
		return 0, &fs.PathError{Op: "seek", Path: s.name, Err: unix.EINVAL}
	}
	pos := base + offset
	if pos < 0 || (offset > 0 && pos < base) {
		return 0, &fs.PathError{Op: "seek", Path: s.name, Err: unix.EINVAL}
	}
	s.pos = pos
	return pos, nil
}

// Stat returns the file's fs.FileInfo. For a file of the operating system,
// Sys returns a *syscall.Stat_t. A Stream opened through Store.FS
// describes the key instead (see Store.FS).
func (s *Stream) Stat() (fs.FileInfo, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return nil, s.closedErr("stat")
	}
	if s.fsInfo != nil {
		return s.fsInfo, nil
	}
	if s.fd < 0 {
		if st, ok := s.rf.(interface{ Stat() (fs.FileInfo, error) }); ok {
			return st.Stat()
		}
		return nil, &fs.PathError{Op: "stat", Path: s.name, Err: errors.ErrUnsupported}
	}
	fi := &fileInfo{name: filepath.Base(s.name)}
	if err := ignoringEINTR(func() error { return fstat(s.fd, fi) }); err != nil {
		return nil, s.pathErr("stat", err)
	}
	return fi, nil
}

// Sync commits the file's content to stable storage (fsync). On a Stream
// from Store.Open it does nothing: the Store made the value durable.
func (s *Stream) Sync() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return s.closedErr("sync")
	}
	if s.fd < 0 || s.rf != nil {
		return nil
	}
	return s.pathErr("sync", s.eng.Fsync(s.fd))
}

// IsModified reports whether the file changed since the Stream last looked
// at it: at its last read or write (a Stream with NoCache, which does not
// stat the file to read it, looks only when it writes). It is false before
// the first look, and always false for an immutable Stream. After Close it
// compares with the file now at the Stream's name.
func (s *Stream) IsModified() bool {
	if s.immutable {
		return false
	}
	b := s.base.Load()
	if b == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var st unix.Stat_t
	var err error
	if s.closed.Load() {
		err = unix.Stat(s.name, &st)
		if err == nil && (uint64(st.Dev) != s.dev || st.Ino != s.ino) {
			return true
		}
	} else {
		if s.id.Gen() != b.gen {
			return true
		}
		err = unix.Fstat(s.fd, &st)
	}
	return err != nil || snapshotOf(&st) != b.snap
}

// Close waits for the calls using the file and for the async hooks, then
// closes the file. A second Close returns an error matching fs.ErrClosed.
// Close must not be called from an async hook of the same Stream (nor from
// a sync hook run by a call an async hook makes): it would wait for itself.
// Hooks of calls that run concurrently with Close may run after it returns.
func (s *Stream) Close() error {
	s.async.wait() // while the Stream is still usable by the hooks
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return s.closedErr("close")
	}
	s.closed.Store(true)
	s.mu.Unlock()
	s.async.wait() // events of calls that ended in the meantime
	s.cleanup.Stop()
	return s.pathErr("close", streamRes{fd: s.fd, rf: s.rf}.release())
}

// Hook registers fn to run after every operation of kind ev (OnRead or
// OnWrite) on this Stream, cache hits included, in the goroutine that made
// the call, after it is done: no lock of the Stream is held, so fn may use
// the Stream. Hooks run in registration order. An unknown ev is an error
// that names it and matches fs.ErrInvalid.
func (s *Stream) Hook(ev Event, fn HookFunc) error { return s.addHook(ev, fn, false) }

// HookAsync is Hook with fn run on another goroutine: the operation does
// not wait for it. A Stream's async hooks run one at a time, in the order
// of the events and, for one event, of registration, each with its own
// copy of the data. None is ever dropped: Close returns after all have run.
func (s *Stream) HookAsync(ev Event, fn HookFunc) error { return s.addHook(ev, fn, true) }

func (s *Stream) addHook(ev Event, fn HookFunc, async bool) error {
	i, err := eventIndex(ev)
	if err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("dirstore: nil hook for %q: %w", string(ev), fs.ErrInvalid)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return s.closedErr("hook")
	}
	s.hooks[i].add(hook{fn: fn, async: async})
	return nil
}

// fire runs the hooks of event i: the Stream's, then, for a Stream from
// Store.Open, the Store's.
func (s *Stream) fire(i int, data []byte) {
	own := s.hooks[i].load()
	var store []hook
	if s.store != nil {
		store = s.store.hooks[i].load()
	}
	if len(own) == 0 && len(store) == 0 {
		return
	}
	var copied []byte
	for _, h := range own {
		if !h.async {
			h.fn(s, data, len(data))
			continue
		}
		if copied == nil {
			copied = append(make([]byte, 0, len(data)), data...)
		}
		s.async.push(s, h.fn, copied)
	}
	for _, h := range store {
		h.fn(s, data, len(data))
	}
}

type hook struct {
	fn    HookFunc
	async bool
}

// hookList is a copy-on-write list: firing reads it without a lock.
type hookList struct {
	mu sync.Mutex
	p  atomic.Pointer[[]hook]
}

func (l *hookList) add(h hook) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var hs []hook
	if old := l.p.Load(); old != nil {
		hs = append(hs, *old...)
	}
	hs = append(hs, h)
	l.p.Store(&hs)
}

func (l *hookList) load() []hook {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nil
}

// asyncQueue runs a Stream's async hooks, in order, on a goroutine that
// exists while there is work.
type asyncQueue struct {
	mu      sync.Mutex
	idle    sync.Cond
	q       []asyncCall
	running bool
	pushed  uint64
	done    uint64
}

type asyncCall struct {
	fn   HookFunc
	data []byte
}

func (a *asyncQueue) push(s *Stream, fn HookFunc, data []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.q = append(a.q, asyncCall{fn, data})
	a.pushed++
	if !a.running {
		a.running = true
		go a.run(s)
	}
}

func (a *asyncQueue) run(s *Stream) {
	a.mu.Lock()
	for len(a.q) > 0 {
		c := a.q[0]
		a.q[0] = asyncCall{}
		a.q = a.q[1:]
		a.mu.Unlock()
		c.fn(s, c.data, len(c.data))
		a.mu.Lock()
		a.done++
		if a.idle.L != nil {
			a.idle.Broadcast()
		}
	}
	a.q = nil
	a.running = false
	a.mu.Unlock()
}

// wait returns when every call pushed before it was called has run.
func (a *asyncQueue) wait() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.idle.L == nil {
		a.idle.L = &a.mu
	}
	for target := a.pushed; a.done < target; {
		a.idle.Wait()
	}
}

// verifier checks a Store value's checksum as it is read: sequentially by
// Read from the start, or whole by one ReadAt. Every Stream checks for
// itself: the file may have been damaged since another one read it.
type verifier struct {
	want uint32
	crc  uint32
	next int64
	off  bool // gave up (a Read out of sequence) or done
	bad  bool
}

func (v *verifier) corrupt(s *Stream) error {
	return &fs.PathError{Op: "read", Path: s.name, Err: fmt.Errorf("%w: checksum mismatch", ErrCorrupt)}
}

// sequential takes the bytes a Read returned at off.
func (v *verifier) sequential(s *Stream, off int64, data []byte, err error) error {
	if v.bad {
		return v.corrupt(s)
	}
	if v.off {
		return err
	}
	if off != v.next {
		v.off = true
		return err
	}
	v.crc = crc32.Update(v.crc, datadir.Castagnoli, data)
	v.next += int64(len(data))
	if v.next < s.fixed.Size {
		return err
	}
	v.off = true
	if v.crc != v.want {
		v.bad = true
		return v.corrupt(s)
	}
	return err
}

// whole checks data, the whole value read by one ReadAt.
func (v *verifier) whole(s *Stream, data []byte) error {
	if crc32.Checksum(data, datadir.Castagnoli) != v.want {
		return v.corrupt(s)
	}
	return nil
}

// fileInfo is Stream.Stat's fs.FileInfo, filled as os fills its own.
type fileInfo struct {
	name  string
	sys   syscall.Stat_t
	mtime time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.sys.Size }
func (fi *fileInfo) ModTime() time.Time { return fi.mtime }
func (fi *fileInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *fileInfo) Sys() any           { return &fi.sys }

func (fi *fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.sys.Mode & 0o777)
	switch fi.sys.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if fi.sys.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.sys.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.sys.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
