package backends

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
)

// A Backend performs positional I/O on file descriptors. It is the plug-in
// point between the files of this module and the kernel: every engine
// (NewSync, NewUring) implements it, and the conformance suite in
// backends/backendtest checks that they agree.
//
// All methods may be called concurrently, from any number of goroutines.
//
// Buffers: a Backend reads from or writes into the caller's buffer only while a
// call is in progress. When a call returns, the kernel is done with every buffer
// the call was given, and the Backend keeps no reference to it. Engines never
// return early (on Close, for instance) while the kernel may still touch a buffer.
//
// Errors: failures from the kernel are returned as unix.Errno values (so
// errors.Is(err, unix.ENOSPC) works); a read that reaches the end of the file
// returns io.EOF; calls on a closed Backend return an error matching
// fs.ErrClosed. Backends do not know file names: File wraps their errors in
// *fs.PathError.
type Backend interface {
	// Name returns the engine's name: "sync" or "uring".
	Name() string

	// ReadAt reads len(p) bytes from fd starting at byte offset off, with the
	// io.ReaderAt contract: when n < len(p), err explains why; at the end of
	// the file err is io.EOF. A read of zero bytes returns 0, nil. It does not
	// use or change the descriptor's file position.
	ReadAt(fd int, p []byte, off int64, flags Flags) (n int, err error)

	// WriteAt writes all of p to fd at byte offset off, with the io.WriterAt
	// contract: it returns n < len(p) only with a non-nil error. Writing past
	// the end of the file extends it; the gap reads as zeros.
	WriteAt(fd int, p []byte, off int64, flags Flags) (n int, err error)

	// Fsync flushes fd's data and metadata to stable storage (fsync(2)).
	Fsync(fd int) error

	// Fdatasync flushes fd's data, and the metadata needed to read it back,
	// to stable storage (fdatasync(2)).
	Fdatasync(fd int) error

	// Submit performs every operation in ops as one batch and returns when all
	// of them are done. Each operation follows the ReadAt or WriteAt contract
	// and reports its own result in N and Err; Submit returns the first
	// non-nil Err in slice order. Operations in one batch run in no particular
	// order: overlapping writes, or a read overlapping a write, give
	// unspecified results.
	Submit(ops []Op) error

	// Close releases the engine's resources. It waits for operations in
	// flight; operations started after Close fail with an error matching
	// fs.ErrClosed. Close of the Backend returned by Default is a no-op.
	Close() error
}

// Flags describe a descriptor to an engine. Engines may ignore them.
type Flags uint32

const (
	// Direct marks a descriptor opened with O_DIRECT. Its data never sits in
	// the page cache, so engines skip page-cache fast paths, which would
	// otherwise wait for the device in the calling thread. As for any O_DIRECT
	// I/O, buffers, lengths and offsets must be aligned to the file system's
	// block size (AlignedBuffer helps).
	Direct Flags = 1 << iota
)

// OpKind says what an Op does.
type OpKind uint8

const (
	// OpRead reads len(Buf) bytes at Off into Buf.
	OpRead OpKind = iota
	// OpWrite writes Buf at Off.
	OpWrite
)

func (k OpKind) String() string {
	switch k {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one positional read or write in a batch (Backend.Submit,
// File.ReadMany, File.WriteMany). The caller fills the inputs; the engine
// fills the results.
type Op struct {
	Kind  OpKind
	Flags Flags
	Fd    int
	Buf   []byte
	Off   int64

	// N is the number of bytes transferred.
	N int
	// Err is nil when the operation transferred len(Buf) bytes, io.EOF for
	// a read that reached the end of the file first, or the failure.
	Err error
}

// Options configure the uring engine. A nil *Options means defaults.
// The sync engine has no options.
type Options struct {
	// QueueDepth is the number of submission queue entries of each ring, and
	// the number of operations each ring keeps in flight; more wait in a queue
	// in user space. It is rounded up to a power of two. Default 128; at most
	// 32768.
	QueueDepth int

	// Rings is the number of rings. Goroutines prefer the ring last used on
	// their P (the scheduler's processor), so rings spread submissions over
	// cores without a shared lock. Default: GOMAXPROCS at creation, at most 4.
	Rings int

	// MaxWorkers caps the kernel's io-wq threads per submitting thread. The
	// kernel uses them for operations it cannot start without blocking
	// (fsync, for one); they count as threads of the process. Default 2.
	MaxWorkers int

	// InlineWriters bounds the callers writing with pwrite(2) in their own
	// thread at once. It applies to writes without the Direct flag on file
	// systems that cannot do them without blocking (ext4): through the ring,
	// the kernel would hand each to an io-wq thread, at about 15 times the
	// latency of pwrite on the project's machine and one thread per file at
	// a time. Callers beyond the bound wait for a turn without holding a
	// thread, so a write held up by dirty-page throttling or the journal
	// holds at most InlineWriters threads. Default max(4, GOMAXPROCS);
	// negative sends such writes to the ring.
	InlineWriters int

	// NoFastPath sends every read and write through the ring. By default a
	// read or write on a descriptor without the Direct flag first tries
	// preadv2/pwritev2 with RWF_NOWAIT in the calling goroutine, which
	// succeeds without waiting when the data is in the page cache, and goes
	// to the ring only on EAGAIN; reads of a descriptor whose probes keep
	// succeeding use plain pread(2); and a read that would block waits in
	// pread(2) in its own thread when no other read of the engine waits.
	NoFastPath bool
}

const (
	defaultQueueDepth = 128
	maxQueueDepth     = 32768
	defaultMaxRings   = 4
	defaultMaxWorkers = 2
)

// withDefaults returns a validated copy of o with defaults filled in. It
// reports every problem at once.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	var errs []error
	switch {
	case c.QueueDepth == 0:
		c.QueueDepth = defaultQueueDepth
	case c.QueueDepth < 0 || c.QueueDepth > maxQueueDepth:
		errs = append(errs, fmt.Errorf("QueueDepth %d not in [1, %d]", c.QueueDepth, maxQueueDepth))
	default:
		d := 1
		for d < c.QueueDepth {
			d <<= 1
		}
		c.QueueDepth = d
	}
	switch {
	case c.Rings == 0:
		c.Rings = min(runtime.GOMAXPROCS(0), defaultMaxRings)
	case c.Rings < 0 || c.Rings > 1024:
		errs = append(errs, fmt.Errorf("Rings %d not in [1, 1024]", c.Rings))
	}
	if c.InlineWriters == 0 {
		c.InlineWriters = max(4, runtime.GOMAXPROCS(0))
	}
	switch {
	case c.MaxWorkers == 0:
		c.MaxWorkers = defaultMaxWorkers
	case c.MaxWorkers < 0:
		errs = append(errs, fmt.Errorf("MaxWorkers %d is negative", c.MaxWorkers))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("backends: invalid options: %w", errors.Join(errs...))
	}
	return c, nil
}

// New returns a new engine by name: "sync" or "uring". The caller must Close it.
func New(name string, opts *Options) (Backend, error) {
	switch strings.ToLower(name) {
	case "sync":
		return NewSync(), nil
	case "uring", "io_uring":
		return NewUring(opts)
	}
	return nil, fmt.Errorf("backends: unknown engine %q (want sync or uring): %w", name, errors.ErrUnsupported)
}
