//go:build linux

// Package uring is a minimal io_uring binding written on golang.org/x/sys/unix:
// ring setup and mapping, access to submission and completion queue entries,
// io_uring_enter and io_uring_register.
//
// Names follow the kernel's uapi header (linux/io_uring.h), as x/sys/unix
// spells kernel constants.
//
// The package does not know about Go memory. An SQE holds buffer addresses as
// plain integers, invisible to the garbage collector: the caller must keep every
// buffer an SQE points at reachable (and not on a goroutine stack) until the
// matching CQE has been reaped. A Ring is not safe for concurrent use; callers
// serialise access to the submission queue and to the completion queue
// (the two may be used by different goroutines at the same time).
package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Setup flags (io_uring_params.flags).
const (
	IORING_SETUP_IOPOLL        = 1 << 0
	IORING_SETUP_SQPOLL        = 1 << 1
	IORING_SETUP_SQ_AFF        = 1 << 2
	IORING_SETUP_CQSIZE        = 1 << 3
	IORING_SETUP_CLAMP         = 1 << 4
	IORING_SETUP_ATTACH_WQ     = 1 << 5
	IORING_SETUP_R_DISABLED    = 1 << 6
	IORING_SETUP_SUBMIT_ALL    = 1 << 7
	IORING_SETUP_COOP_TASKRUN  = 1 << 8
	IORING_SETUP_TASKRUN_FLAG  = 1 << 9
	IORING_SETUP_SQE128        = 1 << 10
	IORING_SETUP_CQE32         = 1 << 11
	IORING_SETUP_SINGLE_ISSUER = 1 << 12
	IORING_SETUP_DEFER_TASKRUN = 1 << 13
	IORING_SETUP_NO_MMAP       = 1 << 14
	IORING_SETUP_NO_SQARRAY    = 1 << 16
)

// Features reported by the kernel (io_uring_params.features).
const (
	IORING_FEAT_SINGLE_MMAP   = 1 << 0
	IORING_FEAT_NODROP        = 1 << 1
	IORING_FEAT_SUBMIT_STABLE = 1 << 2
	IORING_FEAT_RW_CUR_POS    = 1 << 3
	IORING_FEAT_EXT_ARG       = 1 << 8
)

// io_uring_enter flags.
const (
	IORING_ENTER_GETEVENTS = 1 << 0
	IORING_ENTER_SQ_WAKEUP = 1 << 1
	IORING_ENTER_SQ_WAIT   = 1 << 2
	IORING_ENTER_EXT_ARG   = 1 << 3
)

// Submission queue ring flags (*sq_flags).
const (
	IORING_SQ_NEED_WAKEUP = 1 << 0
	IORING_SQ_CQ_OVERFLOW = 1 << 1
	IORING_SQ_TASKRUN     = 1 << 2
)

// Opcodes (io_uring_sqe.opcode).
const (
	IORING_OP_NOP          = 0
	IORING_OP_READV        = 1
	IORING_OP_WRITEV       = 2
	IORING_OP_FSYNC        = 3
	IORING_OP_ASYNC_CANCEL = 14
	IORING_OP_READ         = 22
	IORING_OP_WRITE        = 23
)

// SQE flags (io_uring_sqe.flags).
const (
	IOSQE_FIXED_FILE       = 1 << 0
	IOSQE_IO_DRAIN         = 1 << 1
	IOSQE_IO_LINK          = 1 << 2
	IOSQE_IO_HARDLINK      = 1 << 3
	IOSQE_ASYNC            = 1 << 4
	IOSQE_BUFFER_SELECT    = 1 << 5
	IOSQE_CQE_SKIP_SUCCESS = 1 << 6
)

// Opcode-specific flags.
const (
	IORING_FSYNC_DATASYNC        = 1 << 0
	IORING_ASYNC_CANCEL_ALL      = 1 << 0
	IORING_ASYNC_CANCEL_FD       = 1 << 1
	IORING_ASYNC_CANCEL_ANY      = 1 << 2
	IORING_ASYNC_CANCEL_USERDATA = 1 << 4
)

// io_uring_register opcodes.
const (
	IORING_REGISTER_FILES            = 2
	IORING_UNREGISTER_FILES          = 3
	IORING_REGISTER_EVENTFD          = 4
	IORING_UNREGISTER_EVENTFD        = 5
	IORING_REGISTER_PROBE            = 8
	IORING_REGISTER_ENABLE_RINGS     = 12
	IORING_REGISTER_IOWQ_MAX_WORKERS = 19
)

// mmap offsets.
const (
	IORING_OFF_SQ_RING = 0
	IORING_OFF_CQ_RING = 0x8000000
	IORING_OFF_SQES    = 0x10000000
)

// SQE is struct io_uring_sqe (64 bytes).
type SQE struct {
	Opcode      uint8
	Flags       uint8
	Ioprio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32 // rw_flags, fsync_flags, cancel_flags, ...
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	SpliceFdIn  int32
	Addr3       uint64
	_           uint64
}

// CQE is struct io_uring_cqe (16 bytes).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// SQRingOffsets is struct io_sqring_offsets.
type SQRingOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

// CQRingOffsets is struct io_cqring_offsets.
type CQRingOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

// Params is struct io_uring_params.
type Params struct {
	SqEntries    uint32
	CqEntries    uint32
	Flags        uint32
	SqThreadCPU  uint32
	SqThreadIdle uint32
	Features     uint32
	WqFd         uint32
	Resv         [3]uint32
	SqOff        SQRingOffsets
	CqOff        CQRingOffsets
}

var (
	_ [64 - unsafe.Sizeof(SQE{})]byte
	_ [unsafe.Sizeof(SQE{}) - 64]byte
	_ [16 - unsafe.Sizeof(CQE{})]byte
	_ [120 - unsafe.Sizeof(Params{})]byte
	_ [unsafe.Sizeof(Params{}) - 120]byte
)

// Ring is one mapped io_uring instance.
type Ring struct {
	fd       int
	params   Params
	ringMem  []byte
	cqMem    []byte // nil with IORING_FEAT_SINGLE_MMAP
	sqeMem   []byte
	sqHead   *uint32
	sqTail   *uint32
	sqFlags  *uint32
	sqMask   uint32
	sqes     []SQE
	sqTailLo uint32 // tail including SQEs handed out but not yet published
	cqHead   *uint32
	cqTail   *uint32
	cqMask   uint32
	cqes     []CQE
}

// Setup creates a ring with at least entries submission queue entries.
// p may be nil; when not nil, its Flags, CqEntries (with IORING_SETUP_CQSIZE)
// and related fields are passed to the kernel, and the kernel's answer is
// available from Params.
func Setup(entries uint32, p *Params) (*Ring, error) {
	var params Params
	if p != nil {
		params = *p
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&params)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd), params: params}
	if err := r.mmap(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mmap() error {
	p := &r.params
	if p.Flags&(IORING_SETUP_SQE128|IORING_SETUP_CQE32|IORING_SETUP_NO_MMAP) != 0 {
		return errors.New("uring: SQE128, CQE32 and NO_MMAP are not supported")
	}
	sqSize := p.SqOff.Array + p.SqEntries*4
	if p.Flags&IORING_SETUP_NO_SQARRAY != 0 {
		sqSize = p.SqOff.Array // the kernel reports where the array would start
		if sqSize == 0 {
			sqSize = p.SqOff.Flags + 4
		}
	}
	cqSize := p.CqOff.Cqes + p.CqEntries*uint32(unsafe.Sizeof(CQE{}))
	single := p.Features&IORING_FEAT_SINGLE_MMAP != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	const prot = unix.PROT_READ | unix.PROT_WRITE
	const flags = unix.MAP_SHARED | unix.MAP_POPULATE
	var err error
	r.ringMem, err = unix.Mmap(r.fd, IORING_OFF_SQ_RING, int(sqSize), prot, flags)
	if err != nil {
		return fmt.Errorf("uring: mmap SQ ring: %w", err)
	}
	cq := r.ringMem
	if !single {
		r.cqMem, err = unix.Mmap(r.fd, IORING_OFF_CQ_RING, int(cqSize), prot, flags)
		if err != nil {
			return fmt.Errorf("uring: mmap CQ ring: %w", err)
		}
		cq = r.cqMem
	}
	sqeBytes := int(p.SqEntries) * int(unsafe.Sizeof(SQE{}))
	r.sqeMem, err = unix.Mmap(r.fd, IORING_OFF_SQES, sqeBytes, prot, flags)
	if err != nil {
		return fmt.Errorf("uring: mmap SQEs: %w", err)
	}

	sq := unsafe.Pointer(&r.ringMem[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.SqOff.Head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.SqOff.Tail))
	r.sqFlags = (*uint32)(unsafe.Add(sq, p.SqOff.Flags))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.SqOff.RingMask))
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), p.SqEntries)
	r.sqTailLo = atomic.LoadUint32(r.sqTail)
	if p.Flags&IORING_SETUP_NO_SQARRAY == 0 {
		// Identity mapping: slot i of the array always names SQE i, so the array
		// is written once here and never again.
		array := unsafe.Slice((*uint32)(unsafe.Add(sq, p.SqOff.Array)), p.SqEntries)
		for i := range array {
			array[i] = uint32(i)
		}
	}

	c := unsafe.Pointer(&cq[0])
	r.cqHead = (*uint32)(unsafe.Add(c, p.CqOff.Head))
	r.cqTail = (*uint32)(unsafe.Add(c, p.CqOff.Tail))
	r.cqMask = *(*uint32)(unsafe.Add(c, p.CqOff.RingMask))
	r.cqes = unsafe.Slice((*CQE)(unsafe.Add(c, p.CqOff.Cqes)), p.CqEntries)
	return nil
}

// Fd returns the ring's file descriptor.
func (r *Ring) Fd() int { return r.fd }

// Params returns the parameters the kernel filled in at setup.
func (r *Ring) Params() Params { return r.params }

// SQSpace returns how many SQEs can be obtained with GetSQE before the
// submission queue is full.
func (r *Ring) SQSpace() uint32 {
	return r.params.SqEntries - (r.sqTailLo - atomic.LoadUint32(r.sqHead))
}

// GetSQE returns the next free submission queue entry, zeroed, or nil when the
// queue is full. The entry reaches the kernel after Flush and Enter.
func (r *Ring) GetSQE() *SQE {
	if r.SQSpace() == 0 {
		return nil
	}
	sqe := &r.sqes[r.sqTailLo&r.sqMask]
	*sqe = SQE{}
	r.sqTailLo++
	return sqe
}

// Flush publishes the SQEs obtained since the last Flush to the kernel and
// returns how many SQEs are published but not yet consumed by the kernel.
func (r *Ring) Flush() uint32 {
	atomic.StoreUint32(r.sqTail, r.sqTailLo)
	return r.sqTailLo - atomic.LoadUint32(r.sqHead)
}

// SQFlags returns the submission ring's flags word (IORING_SQ_*).
func (r *Ring) SQFlags() uint32 { return atomic.LoadUint32(r.sqFlags) }

// Enter calls io_uring_enter. It returns the number of SQEs consumed.
// EINTR is returned to the caller, which decides whether to retry.
func (r *Ring) Enter(toSubmit, minComplete, flags uint32) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), 0, 0)
	if errno != 0 {
		return int(n), errno
	}
	return int(n), nil
}

// CQReady returns how many completions are waiting to be reaped.
func (r *Ring) CQReady() uint32 {
	return atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead)
}

// PeekCQE returns the i-th waiting completion (0 is the oldest); i must be
// below CQReady. The entry stays valid until CQAdvance passes it.
func (r *Ring) PeekCQE(i uint32) *CQE {
	head := atomic.LoadUint32(r.cqHead)
	return &r.cqes[(head+i)&r.cqMask]
}

// CQAdvance hands n reaped completion entries back to the kernel.
func (r *Ring) CQAdvance(n uint32) {
	atomic.AddUint32(r.cqHead, n)
}

// Register calls io_uring_register.
func (r *Ring) Register(opcode uint32, arg unsafe.Pointer, nrArgs uint32) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uintptr(opcode), uintptr(arg), uintptr(nrArgs), 0, 0)
	if errno != 0 {
		return int(n), errno
	}
	return int(n), nil
}

// RegisterEventfd makes the kernel signal efd whenever it posts completions.
func (r *Ring) RegisterEventfd(efd int) error {
	fd := int32(efd)
	_, err := r.Register(IORING_REGISTER_EVENTFD, unsafe.Pointer(&fd), 1)
	if err != nil {
		return fmt.Errorf("io_uring_register(EVENTFD): %w", err)
	}
	return nil
}

// SetMaxWorkers caps the kernel's io-wq worker threads (bounded: regular
// files and block devices; unbounded: everything else) that may serve requests
// which cannot be issued without blocking. Zero leaves a limit unchanged.
// It returns the previous limits.
func (r *Ring) SetMaxWorkers(bounded, unbounded uint32) ([2]uint32, error) {
	v := [2]uint32{bounded, unbounded}
	_, err := r.Register(IORING_REGISTER_IOWQ_MAX_WORKERS, unsafe.Pointer(&v[0]), 2)
	if err != nil {
		return v, fmt.Errorf("io_uring_register(IOWQ_MAX_WORKERS): %w", err)
	}
	return v, nil
}

// Close unmaps the ring and closes its descriptor. The kernel cancels or
// finishes requests still in flight; their buffers must stay valid until then,
// which is why callers close only after every CQE has been reaped.
func (r *Ring) Close() error {
	for _, m := range [][]byte{r.sqeMem, r.cqMem, r.ringMem} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	r.sqeMem, r.cqMem, r.ringMem = nil, nil, nil
	r.sqes, r.cqes = nil, nil
	if r.fd >= 0 {
		err := unix.Close(r.fd)
		r.fd = -1
		if err != nil {
			return fmt.Errorf("uring: close: %w", err)
		}
	}
	return nil
}
