package backends

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore/internal/sysmode"
)

// File is an open file whose I/O goes through a Backend.
//
// ReadAt, WriteAt, ReadMany, WriteMany, Sync, Truncate, Stat and Fd may be
// called concurrently with each other and with every method. Read, Write,
// Seek, Chunks and Lines use the File's position: they are serialised, but
// concurrent use of the position gives unspecified positions, as with any
// io.ReadSeeker. The File keeps its own position; it neither uses nor moves
// the descriptor's offset.
//
// Close must be called. It waits for calls in progress, then closes the
// descriptor; later calls fail with errors matching fs.ErrClosed.
//
// Errors are *fs.PathError values holding the file name and the kernel's
// unix.Errno, so errors.Is(err, unix.ENOSPC) and errors.Is(err,
// fs.ErrNotExist) work. The end of the file is io.EOF, unwrapped.
type File struct {
	name   string
	fd     int
	b      Backend
	flags  Flags
	append bool
	osFile *os.File // set by Wrap: it owns the descriptor
	cancel runtime.Cleanup
	refs   refs

	mu struct {
		sync.Mutex
		pos int64
	}
}

var (
	_ io.ReaderAt   = (*File)(nil)
	_ io.WriterAt   = (*File)(nil)
	_ io.ReadWriter = (*File)(nil)
	_ io.Seeker     = (*File)(nil)
	_ io.Closer     = (*File)(nil)
)

// FileOptions configure OpenFile and WrapFile. A nil *FileOptions means
// defaults.
type FileOptions struct {
	// Backend performs the File's I/O. Default: Default().
	Backend Backend
}

func (o *FileOptions) backend() Backend {
	if o == nil || o.Backend == nil {
		return Default()
	}
	return o.Backend
}

// Open opens the named file with os.OpenFile's flag and perm (O_CLOEXEC is
// added) and the Default engine. O_DIRECT in flag marks the File Direct.
func Open(name string, flag int, perm fs.FileMode) (*File, error) {
	return OpenFile(name, flag, perm, nil)
}

// OpenFile is Open with options.
func OpenFile(name string, flag int, perm fs.FileMode, opts *FileOptions) (*File, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Open(name, flag|unix.O_CLOEXEC, sysmode.Of(perm))
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	f := &File{name: name, fd: fd, b: opts.backend(), refs: newRefs(), append: flag&unix.O_APPEND != 0}
	if flag&oDirect != 0 {
		f.flags |= Direct
	}
	f.cancel = runtime.AddCleanup(f, func(fd int) { unix.Close(fd) }, fd)
	return f, nil
}

// Wrap returns a File doing f's I/O through the Default engine, starting at
// f's current offset. The File takes f over: use only the File afterwards;
// its Close closes f. Pipes and sockets are refused (errors.ErrUnsupported):
// positional I/O needs a seekable file.
func Wrap(f *os.File) (*File, error) {
	return WrapFile(f, nil)
}

// WrapFile is Wrap with options.
func WrapFile(f *os.File, opts *FileOptions) (*File, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, &fs.PathError{Op: "wrap", Path: f.Name(), Err: err}
	}
	fd := -1
	if err := sc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return nil, &fs.PathError{Op: "wrap", Path: f.Name(), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "wrap", Path: f.Name(), Err: err}
	}
	if t := st.Mode & unix.S_IFMT; t == unix.S_IFIFO || t == unix.S_IFSOCK {
		return nil, &fs.PathError{Op: "wrap", Path: f.Name(), Err: fmt.Errorf("not seekable: %w", errors.ErrUnsupported)}
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "wrap", Path: f.Name(), Err: err}
	}
	pos, err := unix.Seek(fd, 0, io.SeekCurrent)
	if err != nil {
		pos = 0 // character devices
	}
	w := &File{name: f.Name(), fd: fd, b: opts.backend(), osFile: f, refs: newRefs(), append: fl&unix.O_APPEND != 0}
	if fl&oDirect != 0 {
		w.flags |= Direct
	}
	w.mu.pos = pos
	return w, nil
}

// Name returns the name the File was opened with.
func (f *File) Name() string { return f.name }

// Fd returns the descriptor, or ^uintptr(0) after Close. It stays valid until
// Close; I/O on it bypasses the File's engine and position.
func (f *File) Fd() uintptr {
	if f.refs.isClosed() {
		return ^uintptr(0)
	}
	return uintptr(f.fd)
}

// Backend returns the engine doing the File's I/O.
func (f *File) Backend() Backend { return f.b }

// Flags returns what the File told its engine about the descriptor.
func (f *File) Flags() Flags { return f.flags }

func (f *File) wrapErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return &fs.PathError{Op: op, Path: f.name, Err: err}
}

func (f *File) closedErr(op string) error {
	return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
}

// ReadAt reads len(p) bytes at offset off (io.ReaderAt): when n < len(p),
// err is non-nil, and io.EOF at the end of the file. It may be called
// concurrently.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errNegativeOffset}
	}
	ok := f.refs.acquire()
	if !ok {
		return 0, f.closedErr("read")
	}
	n, err := f.b.ReadAt(f.fd, p, off, f.flags)
	f.refs.release()
	return n, f.wrapErr("read", err)
}

// WriteAt writes all of p at offset off (io.WriterAt), or returns an error.
// Writing past the end extends the file with zeros. It may be called
// concurrently. A File opened with O_APPEND refuses WriteAt, as os.File does.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if f.append {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: errAppendWriteAt}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: errNegativeOffset}
	}
	ok := f.refs.acquire()
	if !ok {
		return 0, f.closedErr("write")
	}
	n, err := f.b.WriteAt(f.fd, p, off, f.flags)
	f.refs.release()
	return n, f.wrapErr("write", err)
}

// Read reads up to len(p) bytes at the File's position and advances it
// (io.Reader). It returns io.EOF only with n == 0.
func (f *File) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readLocked(p)
}

func (f *File) readLocked(p []byte) (int, error) {
	ok := f.refs.acquire()
	if !ok {
		return 0, f.closedErr("read")
	}
	n, err := f.b.ReadAt(f.fd, p, f.mu.pos, f.flags)
	f.refs.release()
	f.mu.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, f.wrapErr("read", err)
}

// Write writes all of p at the File's position and advances it (io.Writer).
// With O_APPEND the data goes to the end of the file, and the position
// moves there.
func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ok := f.refs.acquire()
	if !ok {
		return 0, f.closedErr("write")
	}
	defer f.refs.release()
	n, err := f.b.WriteAt(f.fd, p, f.mu.pos, f.flags)
	if f.append {
		var st unix.Stat_t
		if serr := unix.Fstat(f.fd, &st); serr == nil {
			f.mu.pos = st.Size
		}
	} else {
		f.mu.pos += int64(n)
	}
	return n, f.wrapErr("write", err)
}

// Seek sets the File's position for the next Read or Write (io.Seeker).
// Seeking past the end is allowed; a negative position is an error.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refs.isClosed() {
		return 0, f.closedErr("seek")
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = f.mu.pos
	case io.SeekEnd:
		var st unix.Stat_t
		if err := unix.Fstat(f.fd, &st); err != nil {
			return 0, f.wrapErr("seek", err)
		}
		base = st.Size
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: unix.EINVAL}
	}
	pos := base + offset
	if pos < 0 || (offset > 0 && pos < base) {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: unix.EINVAL}
	}
	f.mu.pos = pos
	return pos, nil
}

// Sync commits the File's data and metadata to stable storage (fsync).
func (f *File) Sync() error {
	ok := f.refs.acquire()
	if !ok {
		return f.closedErr("sync")
	}
	err := f.b.Fsync(f.fd)
	f.refs.release()
	return f.wrapErr("sync", err)
}

// Datasync commits the File's data, and the metadata needed to read it, to
// stable storage (fdatasync).
func (f *File) Datasync() error {
	ok := f.refs.acquire()
	if !ok {
		return f.closedErr("datasync")
	}
	err := f.b.Fdatasync(f.fd)
	f.refs.release()
	return f.wrapErr("datasync", err)
}

// Truncate changes the File's size; growing adds zeros. The position does
// not move.
func (f *File) Truncate(size int64) error {
	ok := f.refs.acquire()
	if !ok {
		return f.closedErr("truncate")
	}
	defer f.refs.release()
	return f.wrapErr("truncate", ignoringEINTR(func() error { return unix.Ftruncate(f.fd, size) }))
}

// Stat returns the File's fs.FileInfo; Sys returns a *syscall.Stat_t.
func (f *File) Stat() (fs.FileInfo, error) {
	ok := f.refs.acquire()
	if !ok {
		return nil, f.closedErr("stat")
	}
	defer f.refs.release()
	fi, err := fstat(f.fd, f.name)
	if err != nil {
		return nil, f.wrapErr("stat", err)
	}
	return fi, nil
}

// ReadMany performs every op as a read of f, in one batch (Backend.Submit):
// the engine may send them all to the kernel with one system call. It sets
// each op's Kind, Fd and Flags, fills N and Err, and returns the first error
// in slice order. Ops may be read concurrently with other calls.
func (f *File) ReadMany(ops []Op) error { return f.many(OpRead, ops) }

// WriteMany performs every op as a write to f, in one batch. Ops of one
// batch must not overlap. See ReadMany.
func (f *File) WriteMany(ops []Op) error {
	if f.append {
		return &fs.PathError{Op: "writeat", Path: f.name, Err: errAppendWriteAt}
	}
	return f.many(OpWrite, ops)
}

func (f *File) many(kind OpKind, ops []Op) error {
	opName := kind.String()
	ok := f.refs.acquire()
	if !ok {
		for i := range ops {
			ops[i].N, ops[i].Err = 0, f.closedErr(opName)
		}
		return f.closedErr(opName)
	}
	for i := range ops {
		ops[i].Kind, ops[i].Fd, ops[i].Flags = kind, f.fd, ops[i].Flags|f.flags
	}
	f.b.Submit(ops)
	f.refs.release()
	var first error
	for i := range ops {
		op := &ops[i]
		if op.Err == unix.EINVAL && op.Off < 0 {
			op.Err = errNegativeOffset
		}
		op.Err = f.wrapErr(opName, op.Err)
		if first == nil {
			first = op.Err
		}
	}
	return first
}

// Close waits for calls in progress, then closes the File. A second Close
// returns an error matching fs.ErrClosed.
func (f *File) Close() error {
	if !f.refs.close() {
		return f.closedErr("close")
	}
	if f.osFile != nil {
		return f.osFile.Close()
	}
	f.cancel.Stop()
	if err := unix.Close(f.fd); err != nil {
		return f.wrapErr("close", err)
	}
	return nil
}
