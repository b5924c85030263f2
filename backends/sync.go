package backends

import (
	"io"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// NewSync returns the portable engine: pread(2) and pwrite(2) in the calling
// goroutine. It is the reference the other engines are measured against.
// Every call holds an OS thread for as long as the kernel blocks, so with
// many goroutines waiting on slow storage the process's thread count grows
// (the Go runtime stops the program at 10,000 threads).
func NewSync() Backend { return &syncEngine{} }

type syncEngine struct {
	closed atomic.Bool
	shared bool // the Default engine: Close is a no-op
}

var _ Backend = (*syncEngine)(nil)

func (e *syncEngine) Name() string { return "sync" }

func (e *syncEngine) setShared() { e.shared = true }

func (e *syncEngine) ReadAt(fd int, p []byte, off int64, _ Flags) (int, error) {
	if e.closed.Load() {
		return 0, ErrClosed
	}
	return preadFull(fd, p, off)
}

func (e *syncEngine) WriteAt(fd int, p []byte, off int64, _ Flags) (int, error) {
	if e.closed.Load() {
		return 0, ErrClosed
	}
	return pwriteFull(fd, p, off)
}

func (e *syncEngine) Fsync(fd int) error {
	if e.closed.Load() {
		return ErrClosed
	}
	return ignoringEINTR(func() error { return unix.Fsync(fd) })
}

func (e *syncEngine) Fdatasync(fd int) error {
	if e.closed.Load() {
		return ErrClosed
	}
	return ignoringEINTR(func() error { return fdatasync(fd) })
}

func (e *syncEngine) Submit(ops []Op) error {
	closed := e.closed.Load()
	for i := range ops {
		op := &ops[i]
		switch {
		case closed:
			op.N, op.Err = 0, ErrClosed
		case op.Kind == OpWrite:
			op.N, op.Err = pwriteFull(op.Fd, op.Buf, op.Off)
		default:
			op.N, op.Err = preadFull(op.Fd, op.Buf, op.Off)
		}
	}
	return firstErr(ops)
}

func (e *syncEngine) Close() error {
	if e.shared {
		return nil
	}
	if e.closed.Swap(true) {
		return ErrClosed
	}
	return nil
}

// preadFull reads until p is full, the file ends or an error occurs.
func preadFull(fd int, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, unix.EINVAL
	}
	n := 0
	for n < len(p) {
		m, err := unix.Pread(fd, p[n:min(len(p), n+maxRW)], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

// pwriteFull writes all of p or fails.
func pwriteFull(fd int, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, unix.EINVAL
	}
	n := 0
	for n < len(p) {
		m, err := unix.Pwrite(fd, p[n:min(len(p), n+maxRW)], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrShortWrite
		}
		n += m
	}
	return n, nil
}

// maxRW bounds one system call's transfer, below Linux's MAX_RW_COUNT.
const maxRW = 1 << 30

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

func firstErr(ops []Op) error {
	for i := range ops {
		if ops[i].Err != nil {
			return ops[i].Err
		}
	}
	return nil
}
