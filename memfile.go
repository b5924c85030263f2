package dirstore

import (
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// A MemFile is one block of RAM that many handles can read and write as a
// file, for APIs that expect files but should not touch disk: an encoder
// writing through one handle while a parser reads the same bytes through
// another, an upload client seeking around a third.
//
// The MemFile itself offers positional I/O (ReadAt, WriteAt, Truncate, Size);
// Open and OpenFile return any number of [MemHandle]s, each with its own
// position and its own access mode, that behave like an [*os.File] on Linux.
// File returns a real descriptor on the same bytes for APIs that need one.
//
// # Concurrency
//
// A MemFile and all its handles may be used from many goroutines at once.
// Clients of ReadAt can execute parallel ReadAt calls on the same MemFile (or
// on any of its handles), and these run in parallel: readers of a block on
// the Go heap take no lock (they copy, and copy again under a shared lock
// in the rare case a write overlapped), those of a mapping share a lock,
// and all copy at memory speed. WriteAt, Truncate and every write through a
// handle are atomic with respect to each other and to reads: a read sees
// all of a write or none of it. Writes to disjoint ranges from different goroutines do not
// interfere.
//
// # Errors
//
// Failures are [*fs.PathError]s naming the MemFile. They match, under
// [errors.Is], [fs.ErrClosed] after Close, [fs.ErrPermission] for reading a
// write-only handle or writing a read-only one, and [fs.ErrInvalid] for a
// negative offset, size or position and for WriteAt on an O_APPEND handle.
// End of file is the bare [io.EOF], as the io interfaces require.
//
// # Memory
//
// Until File is called the block grows like a slice (by doubling) and gives
// memory back when it is truncated to less than a quarter of its capacity.
// A small block lives on the Go heap. On Linux, a block that grows past
// 4 MiB moves to an anonymous mapping of its own, which grows by moving
// pages (mremap(2)) instead of copying bytes, and maps in the pages a
// growing write fills with one system call instead of a fault per page; its memory is not part of the Go heap (runtime/metrics and GOGC do
// not count it) and goes back to the system at Close, a Truncate to less
// than a quarter, or some time after the MemFile becomes unreachable. A
// write that would make the block larger than the address space fails; one
// that the machine cannot back crashes the program with "out of memory",
// like any other allocation.
//
// After File the bytes live in shared memory (the kernel counts them as
// Shmem), where ranges never written, such as the gap left by a write past
// the end, take no memory.
//
// Close need not be called: the garbage collector reclaims a MemFile and
// its memory. For a block in a mapping (a large one, or any after File),
// Close releases the memory at once, instead of some time after the
// MemFile becomes unreachable; files returned by File keep the bytes until
// they are closed.
//
// The zero value is an empty MemFile with an empty name, ready to use.
type MemFile struct {
	name string

	// seq lets reads of a block on the Go heap run without mu
	// (memfile_seq.go); every change of data runs under lockWrite.
	seq memSeq

	mu struct {
		sync.RWMutex
		// data holds the bytes: len(data) is the size. On the heap the
		// bytes in data[len:cap] may be stale (left by a Truncate) and are
		// cleared when the block grows over them. After File, data is a
		// prefix of the shared mapping and its length is the size last seen
		// on the descriptor (see File).
		data    []byte
		modTime time.Time
		closed  bool
		mapped  *memfd // nil while the block is on the Go heap
		// anon is the anonymous mapping that holds data once it has
		// outgrown the heap, until File moves it to a memfd; nil otherwise.
		anon *memAnon
	}
}

// A MemHandle is an open handle on a [MemFile], returned by [MemFile.Open]
// and [MemFile.OpenFile]. It behaves like an [*os.File] opened on a regular
// file on Linux: it has its own position, starting at 0, and the access mode
// and O_APPEND flag it was opened with.
//
// A MemHandle may be used from many goroutines at once. ReadAt and WriteAt do
// not use the position and run like [MemFile.ReadAt] and [MemFile.WriteAt].
// Read, Write, Seek, ReadFrom and WriteTo share the position: each Read or
// Write copies its bytes and moves the position as one atomic step, so
// concurrent Reads on one handle return disjoint parts of the file, but which
// goroutine gets which part is not determined.
//
// A handle holds nothing but its own few bytes of memory, so forgetting to
// close it leaks nothing; Close is there for code that expects files, and
// every use of a handle after Close returns an error matching [fs.ErrClosed].
//
// Where it differs from an *os.File: errors are the io/fs sentinels
// described on [MemFile] rather than errnos; a zero-length Read, ReadAt,
// WriteAt or ReadFrom still checks the handle (os.File makes no system call
// for it and returns 0, nil even on a closed or write-only file); Sync does
// nothing; and positions and sizes are bounded by the address space instead
// of the file system.
type MemHandle struct {
	m      *MemFile
	read   bool // opened with O_RDONLY or O_RDWR
	write  bool // opened with O_WRONLY or O_RDWR
	append bool // opened with O_APPEND
	closed atomic.Bool

	mu struct {
		sync.Mutex
		pos int64
	}
}

var (
	_ io.ReaderAt = (*MemFile)(nil)
	_ io.WriterAt = (*MemFile)(nil)
	_ io.Closer   = (*MemFile)(nil)

	_ io.Reader       = (*MemHandle)(nil)
	_ io.Writer       = (*MemHandle)(nil)
	_ io.Seeker       = (*MemHandle)(nil)
	_ io.ReaderAt     = (*MemHandle)(nil)
	_ io.WriterAt     = (*MemHandle)(nil)
	_ io.Closer       = (*MemHandle)(nil)
	_ io.ReaderFrom   = (*MemHandle)(nil)
	_ io.WriterTo     = (*MemHandle)(nil)
	_ io.StringWriter = (*MemHandle)(nil)
	_ fs.File         = (*MemHandle)(nil)
)

// memError is an error with its own message that matches a sentinel of the
// io/fs package under errors.Is.
type memError struct {
	msg string
	is  error
}

func (e *memError) Error() string { return e.msg }
func (e *memError) Unwrap() error { return e.is }

var (
	errMemNegativeOffset = &memError{"negative offset", fs.ErrInvalid}
	errMemNegativeSize   = &memError{"negative size", fs.ErrInvalid}
	errMemSeekRange      = &memError{"position out of range", fs.ErrInvalid}
	errMemWhence         = &memError{"invalid whence", fs.ErrInvalid}
	errMemOpenFlag       = &memError{"invalid access mode", fs.ErrInvalid}
	errMemTooLarge       = &memError{"file too large", fs.ErrInvalid}
	errMemAppendWriteAt  = &memError{"invalid use of WriteAt on a handle opened with O_APPEND", fs.ErrInvalid}
	errMemNotReadable    = &memError{"handle not open for reading", fs.ErrPermission}
	errMemNotWritable    = &memError{"handle not open for writing", fs.ErrPermission}
)

// mutMemStaleTail is a seeded bug for the MemFile tests (see mutation.go):
// a block moving to or growing in its mapping keeps stale bytes.
const mutMemStaleTail = 100

// memMaxSize bounds the size of a MemFile: the block must be addressable.
const memMaxSize = math.MaxInt

// NewMemFile returns an empty MemFile. The name is what Name, Stat and
// errors report; it need not be a path and is never looked up anywhere.
func NewMemFile(name string) *MemFile {
	m := &MemFile{name: name}
	m.mu.modTime = time.Now()
	return m
}

// Name returns the name given to NewMemFile.
func (m *MemFile) Name() string { return m.name }

func (m *MemFile) pathError(op string, err error) error {
	return &fs.PathError{Op: op, Path: m.name, Err: err}
}

// Open returns a new read-only handle on m, positioned at offset 0, like
// [os.Open].
func (m *MemFile) Open() (*MemHandle, error) {
	return m.OpenFile(os.O_RDONLY)
}

// OpenFile returns a new handle on m, positioned at offset 0, like
// [os.OpenFile] on an existing regular file. The flag is one of
// [os.O_RDONLY], [os.O_WRONLY] or [os.O_RDWR], optionally or-ed with:
//   - [os.O_APPEND]: every Write lands at the current end of the file, as one
//     atomic step, whatever other handles do at the same time; WriteAt fails.
//   - [os.O_TRUNC]: the file is emptied for every handle, as on Linux even
//     when the handle is read-only.
//
// O_CREATE and O_SYNC are accepted and have no effect (the file exists; there
// is nothing to sync to); O_CREATE|O_EXCL fails with an error matching
// [fs.ErrExist]. Other flags are ignored, as os.OpenFile ignores flags it does
// not know.
func (m *MemFile) OpenFile(flag int) (*MemHandle, error) {
	h := &MemHandle{m: m, append: flag&os.O_APPEND != 0}
	switch flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR) {
	case os.O_RDONLY:
		h.read = true
	case os.O_WRONLY:
		h.write = true
	case os.O_RDWR:
		h.read, h.write = true, true
	default:
		return nil, m.pathError("open", errMemOpenFlag)
	}
	if flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL {
		return nil, m.pathError("open", fs.ErrExist)
	}
	if flag&os.O_TRUNC != 0 {
		if err := m.truncate("open", 0); err != nil {
			return nil, err
		}
		return h, nil
	}
	m.mu.RLock()
	closed := m.mu.closed
	m.mu.RUnlock()
	if closed {
		return nil, m.pathError("open", fs.ErrClosed)
	}
	return h, nil
}

// ReadAt reads len(p) bytes from m starting at byte offset off, like pread.
// It returns the number of bytes read and, when that is less than len(p),
// [io.EOF] (the file ends first) or another error. ReadAt may be called
// concurrently with any other method, and parallel ReadAt calls run in
// parallel. It does not retain p.
func (m *MemFile) ReadAt(p []byte, off int64) (int, error) {
	return m.readAt("readat", p, off)
}

// WriteAt writes p to m at byte offset off, like pwrite. Writing past the end
// grows the file, and the gap between the old end and off reads as zeros.
// WriteAt may be called concurrently with any other method; each call is
// atomic. It does not retain p.
func (m *MemFile) WriteAt(p []byte, off int64) (int, error) {
	return m.writeAt("writeat", p, off)
}

// Size returns the size of m in bytes. After File it is the size of the
// shared memory as the kernel reports it, which includes growth made through
// the descriptor.
func (m *MemFile) Size() int64 {
	size, _ := m.size("stat")
	return size
}

// Truncate changes the size of m. Shrinking discards the bytes past size;
// growing appends zeros. Handles keep their positions, as with files.
func (m *MemFile) Truncate(size int64) error {
	return m.truncate("truncate", size)
}

// Stat returns the name, size and modification time of m. The name is the
// last element of the MemFile's name, like [os.File.Stat]; the mode is a
// regular file with permissions 0600.
func (m *MemFile) Stat() (fs.FileInfo, error) {
	return m.stat("stat")
}

// Close releases the block. Later calls on m and on its handles return an
// error matching [fs.ErrClosed]; files returned by File stay valid and keep
// the bytes.
func (m *MemFile) Close() error {
	m.lockWrite()
	defer m.unlockWrite()
	if m.mu.closed {
		return m.pathError("close", fs.ErrClosed)
	}
	m.mu.closed = true
	m.mu.data = nil
	m.releaseAnonLocked()
	if m.mu.mapped != nil {
		m.releaseMappedLocked()
	}
	return nil
}

// File returns an [*os.File] that shows the bytes of m, for APIs that need
// a real descriptor or a path such as /proc/self/fd/N (a child process can
// inherit it through [os/exec.Cmd.ExtraFiles]). The file is the caller's to
// close; closing it does not affect m. Each call returns a new file, open for
// reading and writing at offset 0.
//
// On Linux the first call moves the block, copying it once, into a memfd
// (memfd_create(2)) mapped shared into this process; from then on m and its
// handles work on the mapping, so bytes written on either side are seen by
// the other without copying. Where memfd is not available (other systems,
// or builds with the purego tag) File returns an error matching
// [errors.ErrUnsupported].
//
// The descriptor is not coordinated with the MemFile's lock, like a file
// shared by two processes; bytes written through it are visible to the
// MemFile at once. The MemFile reads the size from the descriptor when it
// needs the end of the file: in Size, Stat, Seek with [io.SeekEnd], an
// O_APPEND write, and a read that reaches past the size it last saw, so
// growth through the descriptor is always seen by a read that gets there.
// Writes that extend the file use pwrite(2), which never cuts off what was
// written past them through the descriptor. Shrinking through the descriptor
// is seen the same way, or when an access touches a page the file no longer
// has; until then, reads of the removed range that stay within the file's
// new last page return zeros instead of io.EOF, and writes there are lost.
// Call Size after shrinking the file from outside to make the MemFile see it
// at once.
func (m *MemFile) File() (*os.File, error) {
	m.lockWrite()
	defer m.unlockWrite()
	if m.mu.closed {
		return nil, m.pathError("memfd_create", fs.ErrClosed)
	}
	return m.fileLocked()
}

// lockWrite takes the lock for a change of the block, which readers
// without the lock see coming (memfile_seq.go).
func (m *MemFile) lockWrite() {
	m.mu.Lock()
	m.seq.begin()
}

// unlockWrite publishes the block to readers without the lock, if it is on
// the Go heap, and releases the lock.
func (m *MemFile) unlockWrite() {
	m.seq.end(m.mu.data, m.mu.mapped == nil && m.mu.anon == nil && !m.mu.closed)
	m.mu.Unlock()
}

func (m *MemFile) readAt(op string, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, m.pathError(op, errMemNegativeOffset)
	}
	if memSeqReads {
		// Lock-free, for a block on the Go heap (see memSeq; written out
		// here rather than in a method, to save a call on short reads).
		v := m.seq.n.Load()
		base, size := m.seq.base.Load(), m.seq.size.Load()
		if v&1 == 0 && base != nil && m.seq.n.Load() == v {
			n, err := memReadData(unsafe.Slice(base, size), p, off)
			if m.seq.n.Load() == v || mutated(mutMemSeqUnchecked) {
				return n, err
			}
		}
	}
	m.mu.RLock()
	if m.mu.mapped != nil || m.mu.closed {
		// readSlowRLocked releases the read lock.
		return m.readSlowRLocked(op, p, off)
	}
	n, err := memReadData(m.mu.data, p, off)
	m.mu.RUnlock()
	return n, err
}

// memReadData is pread on data.
func memReadData(data, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off >= int64(len(data)) {
		return 0, io.EOF
	}
	n := copy(p, data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *MemFile) readSlowRLocked(op string, p []byte, off int64) (int, error) {
	if m.mu.closed {
		m.mu.RUnlock()
		return 0, m.pathError(op, fs.ErrClosed)
	}
	// readMappedRLocked releases the read lock.
	return m.readMappedRLocked(op, p, off)
}

func (m *MemFile) writeAt(op string, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, m.pathError(op, errMemNegativeOffset)
	}
	if int64(len(p)) > memMaxSize-off {
		return 0, m.pathError(op, errMemTooLarge)
	}
	m.lockWrite()
	defer m.unlockWrite()
	if m.mu.closed {
		return 0, m.pathError(op, fs.ErrClosed)
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := m.writeLocked(p, off)
	if err != nil {
		err = m.pathError(op, err)
	}
	return n, err
}

// appendWrite writes p at the end of m and returns the new end.
func (m *MemFile) appendWrite(op string, p []byte) (int, int64, error) {
	m.lockWrite()
	defer m.unlockWrite()
	if m.mu.closed {
		return 0, 0, m.pathError(op, fs.ErrClosed)
	}
	if len(p) == 0 {
		return 0, 0, nil
	}
	if m.mu.mapped != nil {
		if err := m.refreshLocked(); err != nil {
			return 0, 0, m.pathError(op, err)
		}
	}
	off := int64(len(m.mu.data))
	if int64(len(p)) > memMaxSize-off {
		return 0, 0, m.pathError(op, errMemTooLarge)
	}
	n, err := m.writeLocked(p, off)
	if err != nil {
		err = m.pathError(op, err)
	}
	return n, off + int64(n), err
}

// writeLocked writes p at off; p is not empty and off+len(p) <= memMaxSize.
func (m *MemFile) writeLocked(p []byte, off int64) (int, error) {
	m.mu.modTime = time.Now()
	if m.mu.mapped != nil {
		return m.writeMappedLocked(p, off)
	}
	if end := off + int64(len(p)); end > int64(len(m.mu.data)) {
		if err := m.growHeapLocked(end, off); err != nil {
			return 0, err
		}
	}
	return copy(m.mu.data[off:], p), nil
}

// growHeapLocked makes the block size bytes long, while it is not in shared
// memory. The new bytes before dirty read as zeros; those from dirty on are
// about to be overwritten by the caller, so they are not cleared first.
//
// A block that outgrows memAnonMin moves out of the Go heap into an anonymous
// mapping of its own (where the system has them, see memfile_linux.go),
// which then grows in place or by moving its pages (mremap(2)) rather than by
// copying its bytes into a block twice the size and leaving the old one to
// the garbage collector.
func (m *MemFile) growHeapLocked(size, dirty int64) error {
	d := m.mu.data
	if size <= int64(cap(d)) {
		if hi := min(size, dirty); hi > int64(len(d)) {
			clear(d[len(d):hi])
		}
		m.mu.data = d[:size]
		m.prefaultAnonLocked(dirty, size)
		return nil
	}
	newCap := int64(cap(d))
	if newCap > memMaxSize/2 {
		newCap = memMaxSize
	} else {
		newCap *= 2
	}
	newCap = max(newCap, size, 512)
	if newCap >= memAnonMin {
		// Bytes a Truncate left past the end are not zero, and the
		// mapping keeps them.
		if hi := min(int64(cap(d)), dirty); hi > int64(len(d)) && !mutated(mutMemStaleTail) {
			clear(d[len(d):hi])
		}
		if nd, ok := m.growAnonLocked(size, newCap); ok {
			m.mu.data = nd
			m.prefaultAnonLocked(dirty, size)
			return nil
		}
		// No mapping to be had: the heap may still have room.
	}
	nd, err := memMakeBlock(int(size), int(newCap))
	if err != nil {
		return err
	}
	copy(nd, d)
	m.mu.data = nd
	m.releaseAnonLocked()
	return nil
}

// memMakeBlock is make([]byte, size, capacity) that reports a size the runtime
// refuses as an error instead of a panic.
func memMakeBlock(size, capacity int) (b []byte, err error) {
	defer func() {
		if recover() != nil {
			b, err = nil, errMemTooLarge
		}
	}()
	return make([]byte, size, capacity), nil
}

func (m *MemFile) truncate(op string, size int64) error {
	if size < 0 {
		return m.pathError(op, errMemNegativeSize)
	}
	m.lockWrite()
	defer m.unlockWrite()
	if m.mu.closed {
		return m.pathError(op, fs.ErrClosed)
	}
	m.mu.modTime = time.Now()
	if m.mu.mapped != nil {
		if err := m.truncateMappedLocked(size); err != nil {
			return m.pathError(op, err)
		}
		return nil
	}
	d := m.mu.data
	switch {
	case size > int64(len(d)):
		if err := m.growHeapLocked(size, size); err != nil {
			return m.pathError(op, err)
		}
	case size < int64(cap(d)/4):
		// Give most of the memory back, as a file system frees blocks.
		if m.shrinkAnonLocked(size) {
			break
		}
		if size == 0 {
			m.mu.data = nil
		} else {
			m.mu.data = append([]byte(nil), d[:size]...)
		}
		m.releaseAnonLocked()
	default:
		m.mu.data = d[:size]
	}
	return nil
}

func (m *MemFile) size(op string) (int64, error) {
	m.mu.RLock()
	if m.mu.mapped == nil {
		size, closed := len(m.mu.data), m.mu.closed
		m.mu.RUnlock()
		if closed {
			return 0, m.pathError(op, fs.ErrClosed)
		}
		return int64(size), nil
	}
	m.mu.RUnlock()

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return 0, m.pathError(op, fs.ErrClosed)
	}
	if m.mu.mapped != nil {
		if err := m.refreshLocked(); err != nil {
			return int64(len(m.mu.data)), m.pathError(op, err)
		}
	}
	return int64(len(m.mu.data)), nil
}

func (m *MemFile) stat(op string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, m.pathError(op, fs.ErrClosed)
	}
	modTime := m.mu.modTime
	if m.mu.mapped != nil {
		if err := m.refreshLocked(); err != nil {
			return nil, m.pathError(op, err)
		}
		if t := m.mappedModTimeLocked(); t.After(modTime) {
			modTime = t
		}
	}
	return &memFileInfo{
		name:    filepath.Base(m.name),
		size:    int64(len(m.mu.data)),
		modTime: modTime,
	}, nil
}

// memFileInfo is what Stat returns.
type memFileInfo struct {
	name    string
	size    int64
	modTime time.Time
}

func (fi *memFileInfo) Name() string       { return fi.name }
func (fi *memFileInfo) Size() int64        { return fi.size }
func (fi *memFileInfo) Mode() fs.FileMode  { return 0o600 }
func (fi *memFileInfo) ModTime() time.Time { return fi.modTime }
func (fi *memFileInfo) IsDir() bool        { return false }
func (fi *memFileInfo) Sys() any           { return nil }

// Name returns the name of the MemFile, like [os.File.Name].
func (h *MemHandle) Name() string { return h.m.name }

// checkOpen returns an error matching [fs.ErrClosed] if m is closed, for
// the handle operations that do not otherwise touch the file.
func (m *MemFile) checkOpen(op string) error {
	m.mu.RLock()
	closed := m.mu.closed
	m.mu.RUnlock()
	if closed {
		return m.pathError(op, fs.ErrClosed)
	}
	return nil
}

// check returns the error for an operation that needs the handle open and,
// if read or write, the matching access mode.
func (h *MemHandle) check(op string, read, write bool) error {
	switch {
	case h.closed.Load():
		return h.m.pathError(op, fs.ErrClosed)
	case read && !h.read:
		return h.m.pathError(op, errMemNotReadable)
	case write && !h.write:
		return h.m.pathError(op, errMemNotWritable)
	}
	return nil
}

// Read reads up to len(p) bytes from the handle's position and moves the
// position past them. At the end of the file it returns 0, [io.EOF].
func (h *MemHandle) Read(p []byte) (int, error) {
	if err := h.check("read", true, false); err != nil {
		return 0, err
	}
	h.mu.Lock()
	n, err := h.m.readAt("read", p, h.mu.pos)
	h.mu.pos += int64(n)
	h.mu.Unlock()
	if n > 0 && err == io.EOF {
		err = nil // as os.File: the next Read reports the end
	}
	return n, err
}

// ReadAt reads len(p) bytes at offset off, like [MemFile.ReadAt]; it does
// not use or move the handle's position. ReadAt may be called concurrently
// with any other method, and parallel ReadAt calls run in parallel.
func (h *MemHandle) ReadAt(p []byte, off int64) (int, error) {
	if err := h.check("read", true, false); err != nil {
		return 0, err
	}
	return h.m.readAt("readat", p, off)
}

// Write writes p at the handle's position, or at the end of the file for an
// O_APPEND handle, and moves the position past the bytes written.
func (h *MemHandle) Write(p []byte) (int, error) {
	if err := h.check("write", false, true); err != nil {
		return 0, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.append {
		n, end, err := h.m.appendWrite("write", p)
		if n > 0 {
			h.mu.pos = end
		}
		return n, err
	}
	n, err := h.m.writeAt("write", p, h.mu.pos)
	h.mu.pos += int64(n)
	return n, err
}

// WriteString is Write of the bytes of s, without copying them first.
func (h *MemHandle) WriteString(s string) (int, error) {
	// Write only reads from its argument and does not retain it.
	return h.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// WriteAt writes p at offset off, like [MemFile.WriteAt]; it does not use or
// move the handle's position. As with os.File, it fails on an O_APPEND
// handle.
func (h *MemHandle) WriteAt(p []byte, off int64) (int, error) {
	if err := h.check("write", false, true); err != nil {
		return 0, err
	}
	if h.append {
		return 0, h.m.pathError("writeat", errMemAppendWriteAt)
	}
	return h.m.writeAt("writeat", p, off)
}

// Seek sets the position for the next Read or Write to offset, interpreted
// according to whence: [io.SeekStart], [io.SeekCurrent] or [io.SeekEnd]. The
// position may be past the end of the file; a position before the start is
// an error. Seek returns the new position.
func (h *MemHandle) Seek(offset int64, whence int) (int64, error) {
	if err := h.check("seek", false, false); err != nil {
		return 0, err
	}
	if err := h.m.checkOpen("seek"); err != nil {
		return 0, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = h.mu.pos
	case io.SeekEnd:
		size, err := h.m.size("seek")
		if err != nil {
			return 0, err
		}
		base = size
	default:
		return 0, h.m.pathError("seek", errMemWhence)
	}
	pos := base + offset
	if offset > 0 && pos < base || pos < 0 {
		return 0, h.m.pathError("seek", errMemSeekRange)
	}
	h.mu.pos = pos
	return pos, nil
}

// Truncate changes the size of the file, like [MemFile.Truncate]. The handle
// must be writable.
func (h *MemHandle) Truncate(size int64) error {
	if err := h.check("truncate", false, true); err != nil {
		return err
	}
	return h.m.truncate("truncate", size)
}

// Stat returns the name, size and modification time of the file, like
// [MemFile.Stat].
func (h *MemHandle) Stat() (fs.FileInfo, error) {
	if err := h.check("stat", false, false); err != nil {
		return nil, err
	}
	return h.m.stat("stat")
}

// Sync returns nil: a MemFile has no storage to flush to.
func (h *MemHandle) Sync() error {
	return h.check("sync", false, false)
}

// Close closes the handle. Closing it again returns an error matching
// [fs.ErrClosed]; the MemFile and its other handles are not affected.
func (h *MemHandle) Close() error {
	if !h.closed.CompareAndSwap(false, true) {
		return h.m.pathError("close", fs.ErrClosed)
	}
	return nil
}

// memCopyBufs holds the buffers of ReadFrom and WriteTo: they copy through a
// buffer of their own rather than hold the MemFile's lock while calling
// another Reader or Writer, which may be a handle on the same MemFile.
var memCopyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// ReadFrom writes everything r returns until [io.EOF], as a sequence of
// Writes: at the handle's position, or at the end for an O_APPEND handle. It
// returns the number of bytes written and the first error other than io.EOF.
func (h *MemHandle) ReadFrom(r io.Reader) (int64, error) {
	if err := h.check("write", false, true); err != nil {
		return 0, err
	}
	bp := memCopyBufs.Get().(*[]byte)
	defer memCopyBufs.Put(bp)
	return io.CopyBuffer(memWriterOnly{h}, r, *bp)
}

// WriteTo writes the file from the handle's position to its end to w, as a
// sequence of Reads, and returns the number of bytes written.
func (h *MemHandle) WriteTo(w io.Writer) (int64, error) {
	if err := h.check("read", true, false); err != nil {
		return 0, err
	}
	bp := memCopyBufs.Get().(*[]byte)
	defer memCopyBufs.Put(bp)
	return io.CopyBuffer(w, memReaderOnly{h}, *bp)
}

// memReaderOnly and memWriterOnly hide WriteTo and ReadFrom from io.CopyBuffer.
type memReaderOnly struct{ io.Reader }
type memWriterOnly struct{ io.Writer }
