//go:build linux && !nouring

package backends

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dirstore/dirstore/internal/uring"
	"golang.org/x/sys/unix"
)

// NewUring returns an engine on Linux io_uring. The caller must Close it.
//
// Design, in short:
//   - Several rings (Options.Rings); a goroutine prefers the ring last used on
//     its P, so goroutines on different cores rarely share a lock.
//   - Any goroutine may submit: it writes its SQE under the ring's lock, and
//     the first goroutine to find no submitter in progress calls
//     io_uring_enter for everything queued, including SQEs other goroutines
//     add while it is in the system call. Many goroutines thus share one
//     system call.
//   - Waiting goroutines park on a channel; no OS thread waits per request.
//     Each ring has an eventfd registered with IORING_REGISTER_EVENTFD, read
//     by one goroutine through Go's netpoller. It reaps completions and wakes
//     their goroutines. Submitters also reap what completed inline.
//   - At most Options.QueueDepth requests per ring are in flight; more wait
//     in a FIFO in user space, so the completion queue never overflows.
//   - Reads take the cheapest path the engine knows for them. Without the
//     Direct flag, a read tries preadv2(RWF_NOWAIT) in the calling
//     goroutine: a page-cache hit then costs one system call and no
//     hand-off. Once a descriptor's probes have all succeeded many times in
//     a row, its reads use plain pread(2), which costs less again, with a
//     probe in place of one read in hintSample to notice when the file
//     leaves the page cache (readHints). A read that would block (a miss,
//     or Direct) waits in pread(2) in its own thread when it is the only
//     such read of the engine, and goes to the ring otherwise, so at most
//     one thread is ever blocked in a read.
//   - Writes without the Direct flag first try pwritev2 with RWF_NOWAIT.
//   - Where the file system has no non-blocking buffered writes (ext4), the
//     ring would pass every buffered write to a kernel io-wq thread; instead
//     at most Options.InlineWriters callers at a time write with pwrite(2)
//     themselves, and the others wait for a turn without holding a thread.
//
// Buffers: an in-flight request keeps its buffer reachable from the ring's
// slot table, and its caller waits for the request's CQE before returning,
// on every path including Close. Buffers passed through the interface escape
// to the heap, which the Go collector never moves.
func NewUring(opts *Options) (Backend, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return newUringEngine(o)
}

type uringEngine struct {
	opts          Options
	rings         []*ring
	affinity      sync.Pool // *ring: the ring each P used last
	next          atomic.Uint32
	closed        atomic.Bool
	shared        bool          // the Default engine: Close is a no-op
	noWriteNowait atomic.Bool   // pwritev2(RWF_NOWAIT) said EOPNOTSUPP
	inline        chan struct{} // semaphore of Options.InlineWriters; nil for none
	waiting       atomic.Int32  // reads that would block, in pread or the ring
	hints         readHints
}

var _ Backend = (*uringEngine)(nil)

func newUringEngine(o Options) (*uringEngine, error) {
	if uringSetupHook != nil {
		if err := uringSetupHook(); err != nil {
			return nil, err
		}
	}
	e := &uringEngine{opts: o}
	if o.InlineWriters > 0 {
		e.inline = make(chan struct{}, o.InlineWriters)
	}
	for range o.Rings {
		r, err := newRing(uint32(o.QueueDepth), uint32(o.MaxWorkers))
		if err != nil {
			for _, r := range e.rings {
				r.close()
			}
			return nil, err
		}
		e.rings = append(e.rings, r)
	}
	e.affinity.New = func() any {
		return e.rings[int(e.next.Add(1)-1)%len(e.rings)]
	}
	return e, nil
}

func (e *uringEngine) Name() string { return "uring" }

func (e *uringEngine) setShared() { e.shared = true }

func (e *uringEngine) describe(i *EngineInfo) {
	i.Async = true
	i.Rings = len(e.rings)
	i.QueueDepth = e.opts.QueueDepth
	i.FastPath = !e.opts.NoFastPath
}

// pickRing returns the ring this goroutine's P used last (sync.Pool keeps a
// private slot per P), or spreads new Ps round-robin.
func (e *uringEngine) pickRing() *ring {
	if len(e.rings) == 1 {
		return e.rings[0]
	}
	r := e.affinity.Get().(*ring)
	e.affinity.Put(r)
	return r
}

func (e *uringEngine) ReadAt(fd int, p []byte, off int64, flags Flags) (int, error) {
	if e.closed.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, unix.EINVAL
	}
	if len(p) == 0 {
		return 0, nil
	}
	if e.opts.NoFastPath {
		return e.do(reqRead, fd, p, off)
	}
	n := 0
	if flags&Direct == 0 {
		h := e.hints.of(fd)
		v := h.Load()
		if v == hintPlain && rand.Uint32()%hintSample != 0 {
			// This descriptor's reads have kept hitting the page cache:
			// pread(2) is the cheapest read there is.
			return preadFull(fd, p, off)
		}
		// Probe without blocking: the page cache or EAGAIN.
		var errno unix.Errno
		n, errno = readNowait(fd, p, off)
		switch errno {
		case 0:
			if n < len(p) {
				return n, io.EOF
			}
			if v < hintPlain {
				h.Store(v + 1) // a lost update only delays the switch
			}
			return n, nil
		case unix.EAGAIN:
			if v != 0 && !seededStickyHint {
				h.Store(0)
			}
		case unix.EOPNOTSUPP, unix.ENOSYS, unix.EINVAL:
			// No RWF_NOWAIT here: the ring, as for a miss.
		default:
			return n, errno
		}
	}
	// The read would block. Alone, it waits in pread(2) on its own thread:
	// at a depth of one the ring's round trip through the reaping goroutine
	// costs more, and there is nothing else for the thread or its P to do
	// meanwhile. With other reads waiting, it goes to the ring, which
	// holds no thread and leaves the P to the others.
	if e.waiting.Add(1) == 1 {
		m, err := preadFull(fd, p[n:], off+int64(n))
		e.waiting.Add(-1)
		return n + m, err
	}
	m, err := e.do(reqRead, fd, p[n:], off+int64(n))
	e.waiting.Add(-1)
	return n + m, err
}

// readNowait reads p at off with preadv2(RWF_NOWAIT) until p is full, the
// file ends (a short count and no error) or an error: EAGAIN where the
// page cache does not hold the rest.
func readNowait(fd int, p []byte, off int64) (int, unix.Errno) {
	n := 0
	for n < len(p) {
		m, errno := rwv2(unix.SYS_PREADV2, fd, p[n:min(len(p), n+maxRW)], off+int64(n))
		switch errno {
		case 0:
			if m == 0 {
				return n, 0
			}
			n += m
		case unix.EINTR:
		default:
			return n, errno
		}
	}
	return n, 0
}

func (e *uringEngine) WriteAt(fd int, p []byte, off int64, flags Flags) (int, error) {
	if e.closed.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, unix.EINVAL
	}
	n := 0
	if !e.opts.NoFastPath && flags&Direct == 0 && !e.noWriteNowait.Load() {
	fast:
		for n < len(p) {
			m, errno := rwv2(unix.SYS_PWRITEV2, fd, p[n:min(len(p), n+maxRW)], off+int64(n))
			switch errno {
			case 0:
				if m == 0 {
					return n, io.ErrShortWrite
				}
				n += m
			case unix.EINTR:
			case unix.EOPNOTSUPP, unix.ENOSYS:
				// ext4, for one, has no non-blocking buffered writes; stop
				// paying a system call to learn it again.
				e.noWriteNowait.Store(true)
				break fast
			case unix.EAGAIN, unix.EINVAL:
				break fast
			default:
				return n, errno
			}
		}
	}
	if n == len(p) {
		return n, nil
	}
	if e.inline != nil && flags&Direct == 0 && e.noWriteNowait.Load() {
		// The kernel would hand this write to an io-wq thread (15x the
		// latency of pwrite here, and one thread per file at a time); a
		// bounded number of callers write themselves instead, the others
		// wait without holding a thread.
		e.inline <- struct{}{}
		m, err := pwriteFull(fd, p[n:], off+int64(n))
		<-e.inline
		return n + m, err
	}
	m, err := e.do(reqWrite, fd, p[n:], off+int64(n))
	return n + m, err
}

func (e *uringEngine) Fsync(fd int) error {
	if e.closed.Load() {
		return ErrClosed
	}
	_, err := e.do(reqFsync, fd, nil, 0)
	return err
}

func (e *uringEngine) Fdatasync(fd int) error {
	if e.closed.Load() {
		return ErrClosed
	}
	_, err := e.do(reqFdatasync, fd, nil, 0)
	return err
}

// do runs one request on a ring and waits for it.
func (e *uringEngine) do(kind reqKind, fd int, p []byte, off int64) (int, error) {
	q := requestPool.Get().(*request)
	q.kind, q.fd, q.buf, q.off = kind, int32(fd), p, off
	q.w = &q.own
	q.own.left.Store(1)
	e.pickRing().start(q, q)
	<-q.own.done
	n, err := q.n, q.err
	*q = request{own: waiter{done: q.own.done}}
	requestPool.Put(q)
	runtime.KeepAlive(p)
	return n, err
}

func (e *uringEngine) Submit(ops []Op) error {
	if e.closed.Load() {
		for i := range ops {
			ops[i].N, ops[i].Err = 0, ErrClosed
		}
		return ErrClosed
	}
	reqs := make([]request, len(ops))
	w := &waiter{done: make(chan struct{}, 1)}
	var first, last *request
	count := 0
	var inline []*Op // buffered writes WriteAt would do in the caller
	for i := range ops {
		op := &ops[i]
		op.N, op.Err = 0, nil
		if op.Off < 0 {
			op.Err = unix.EINVAL
			continue
		}
		if len(op.Buf) == 0 {
			continue
		}
		if op.Kind == OpWrite && op.Flags&Direct == 0 && e.inline != nil && e.noWriteNowait.Load() {
			inline = append(inline, op)
			continue
		}
		q := &reqs[i]
		q.kind, q.fd, q.buf, q.off, q.op, q.w = reqRead, int32(op.Fd), op.Buf, op.Off, op, w
		if op.Kind == OpWrite {
			q.kind = reqWrite
		}
		if first == nil {
			first = q
		} else {
			last.next = q
		}
		last = q
		count++
	}
	if count > 0 {
		w.left.Store(int32(count))
		e.pickRing().start(first, last)
	}
	if len(inline) > 0 { // while the ring works
		e.inline <- struct{}{}
		for _, op := range inline {
			op.N, op.Err = pwriteFull(op.Fd, op.Buf, op.Off)
		}
		<-e.inline
	}
	if count > 0 {
		<-w.done
	}
	runtime.KeepAlive(reqs)
	return firstErr(ops)
}

func (e *uringEngine) Close() error {
	if e.shared {
		return nil
	}
	if e.closed.Swap(true) {
		return ErrClosed
	}
	var errs []error
	for _, r := range e.rings {
		errs = append(errs, r.close())
	}
	return errors.Join(errs...)
}

type reqKind uint8

const (
	reqRead reqKind = iota
	reqWrite
	reqFsync
	reqFdatasync
)

// request is one operation on its way through a ring.
type request struct {
	kind reqKind
	fd   int32
	buf  []byte // what remains to transfer; keeps the caller's buffer reachable
	off  int64
	n    int // bytes transferred so far
	err  error
	next *request // in the pending FIFO, or in a list of finished requests
	op   *Op      // batch member: where results go
	w    *waiter
	own  waiter // the waiter of a single request
}

// waiter is what a goroutine blocks on: left requests still to finish.
type waiter struct {
	left atomic.Int32
	done chan struct{} // capacity 1
}

var requestPool = sync.Pool{New: func() any {
	return &request{own: waiter{done: make(chan struct{}, 1)}}
}}

// finish publishes q's result and wakes its goroutine when it was the last
// request that goroutine waited for. q must not be touched afterwards: its
// owner may reuse it at once.
func (q *request) finish() {
	if q.op != nil {
		q.op.N, q.op.Err = q.n, q.err
	}
	w := q.w
	if w.left.Add(-1) == 0 {
		w.done <- struct{}{}
	}
}

// User data of SQEs not bound to a slot.
const (
	internalTag = 1 << 63
	probeTag    = internalTag | 1
	cancelTag   = internalTag | 2
)

// ring is one io_uring instance with its in-flight table.
type ring struct {
	r          *uring.Ring
	efd        *os.File // eventfd, read through the netpoller
	reaperDone chan struct{}
	drained    chan struct{} // closed when closing and nothing is in flight

	mu struct {
		sync.Mutex
		slots      []*request // in flight, indexed by user_data
		free       []uint32   // free slot numbers
		head, tail *request   // pending FIFO: waiting for a slot or SQ space
		inflight   int
		submitting bool // a goroutine is in the submit loop
		closed     bool
		drainSent  bool
	}

	// cq serialises reaping. Lock order: cq, then mu.
	cq struct {
		sync.Mutex
		buf []completion
	}
}

type completion struct {
	tag uint64
	res int32
}

func newRing(depth, maxWorkers uint32) (*ring, error) {
	p := uring.Params{
		Flags:     uring.IORING_SETUP_CQSIZE | uring.IORING_SETUP_CLAMP | uring.IORING_SETUP_SUBMIT_ALL,
		CqEntries: 2 * depth,
	}
	rr, err := uring.Setup(depth, &p)
	if errors.Is(err, unix.EINVAL) { // a kernel older than 5.18: no SUBMIT_ALL
		p = uring.Params{Flags: uring.IORING_SETUP_CQSIZE | uring.IORING_SETUP_CLAMP, CqEntries: 2 * depth}
		rr, err = uring.Setup(depth, &p)
	}
	if err != nil {
		return nil, explainSetup(err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		rr.Close()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := rr.RegisterEventfd(efd); err != nil {
		unix.Close(efd)
		rr.Close()
		return nil, err
	}
	// Kernels before 5.15 lack the limit; the ring still works.
	_, _ = rr.SetMaxWorkers(maxWorkers, maxWorkers)
	if err := probe(rr); err != nil {
		unix.Close(efd)
		rr.Close()
		return nil, err
	}
	r := &ring{
		r:          rr,
		efd:        os.NewFile(uintptr(efd), "io_uring-eventfd"), // non-blocking: reads park on the netpoller
		reaperDone: make(chan struct{}),
		drained:    make(chan struct{}),
	}
	n := rr.Params().SqEntries
	r.mu.slots = make([]*request, n)
	r.mu.free = make([]uint32, n)
	for i := range r.mu.free {
		r.mu.free[i] = n - 1 - uint32(i)
	}
	go r.reapLoop()
	return r, nil
}

// probe runs a NOP through the ring: seccomp filters may allow setup and
// still deny io_uring_enter.
func probe(rr *uring.Ring) error {
	sqe := rr.GetSQE()
	sqe.Opcode = uring.IORING_OP_NOP
	sqe.UserData = probeTag
	rr.Flush()
	for {
		_, err := rr.Enter(1, 1, uring.IORING_ENTER_GETEVENTS)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("io_uring_enter: %w", err)
		}
		break
	}
	if rr.CQReady() != 1 {
		return errors.New("io_uring: NOP did not complete")
	}
	cqe := rr.PeekCQE(0)
	tag, res := cqe.UserData, cqe.Res
	rr.CQAdvance(1)
	if tag != probeTag || res != 0 {
		return fmt.Errorf("io_uring: NOP completed with user_data %#x, res %d", tag, res)
	}
	return nil
}

func explainSetup(err error) error {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("%w (kernel without io_uring, or a seccomp filter)", err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w (denied by a seccomp filter or kernel.io_uring_disabled)", err)
	case errors.Is(err, unix.ENOMEM):
		return fmt.Errorf("%w (RLIMIT_MEMLOCK too low for the rings)", err)
	}
	return err
}

// start queues the requests first..last (linked by next) and submits them.
func (r *ring) start(first, last *request) {
	r.mu.Lock()
	if r.mu.closed {
		r.mu.Unlock()
		for q := first; q != nil; {
			next := q.next
			q.next = nil
			q.err = ErrClosed
			q.finish()
			q = next
		}
		return
	}
	if r.mu.tail == nil {
		r.mu.head = first
	} else {
		r.mu.tail.next = first
	}
	r.mu.tail = last
	r.fillLocked()
	submit := r.claimSubmitLocked()
	r.mu.Unlock()
	if submit {
		r.submitLoop()
	}
}

// fillLocked moves pending requests into free slots and SQEs.
func (r *ring) fillLocked() {
	for r.mu.head != nil && len(r.mu.free) > 0 {
		sqe := r.r.GetSQE()
		if sqe == nil {
			return
		}
		q := r.mu.head
		r.mu.head = q.next
		if r.mu.head == nil {
			r.mu.tail = nil
		}
		q.next = nil
		slot := r.mu.free[len(r.mu.free)-1]
		r.mu.free = r.mu.free[:len(r.mu.free)-1]
		r.mu.slots[slot] = q
		r.mu.inflight++

		switch q.kind {
		case reqRead, reqWrite:
			sqe.Opcode = uring.IORING_OP_READ
			if q.kind == reqWrite {
				sqe.Opcode = uring.IORING_OP_WRITE
			}
			sqe.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(q.buf))))
			sqe.Len = uint32(min(len(q.buf), maxRW))
			sqe.Off = uint64(q.off)
		case reqFsync:
			sqe.Opcode = uring.IORING_OP_FSYNC
		case reqFdatasync:
			sqe.Opcode = uring.IORING_OP_FSYNC
			sqe.OpFlags = uring.IORING_FSYNC_DATASYNC
		}
		sqe.Fd = q.fd
		sqe.UserData = uint64(slot)
	}
}

// claimSubmitLocked publishes new SQEs and reports whether the caller must
// run the submit loop (nobody else is).
func (r *ring) claimSubmitLocked() bool {
	if r.mu.submitting || r.r.Flush() == 0 {
		return false
	}
	r.mu.submitting = true
	return true
}

// submitLoop calls io_uring_enter until no published SQE is left, picking up
// SQEs other goroutines add meanwhile.
func (r *ring) submitLoop() {
	for {
		r.mu.Lock()
		if !r.mu.closed {
			// The kernel posts CQEs before it moves the SQ head, so a reaper
			// may have found the SQ full: requests it could not place wait
			// for the submitter, who sees the head move.
			r.fillLocked()
		}
		n := r.r.Flush()
		if n == 0 {
			r.mu.submitting = false
			r.checkDrainedLocked()
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		_, err := r.r.Enter(n, 0, 0)
		switch err {
		case nil, unix.EINTR:
		case unix.EAGAIN, unix.EBUSY, unix.ENOMEM:
			// Out of kernel resources, or completions to reap first.
			r.reap(true)
			runtime.Gosched()
		default:
			panic(fmt.Sprintf("backends: io_uring_enter: %v", err))
		}
		r.reap(false) // what completed inline
	}
}

// reapLoop waits for the eventfd through the netpoller and reaps. It ends
// when close closes the eventfd.
func (r *ring) reapLoop() {
	defer close(r.reaperDone)
	var b [8]byte
	for {
		if _, err := r.efd.Read(b[:]); err != nil {
			return
		}
		if r.reap(true) {
			runtime.Gosched() // let the woken goroutines queue their next requests
			r.submitLoop()
		}
	}
}

// reap processes the completion queue. With wait false it gives up when
// another goroutine is reaping. It reports whether the caller claimed the
// submit loop (to send requests that moved into freed slots).
func (r *ring) reap(wait bool) (submit bool) {
	if wait {
		r.cq.Lock()
	} else if !r.cq.TryLock() {
		return false
	}
	ready := r.r.CQReady()
	if ready == 0 {
		r.cq.Unlock()
		return false
	}
	buf := r.cq.buf[:0]
	for i := range ready {
		c := r.r.PeekCQE(i)
		buf = append(buf, completion{c.UserData, c.Res})
	}
	r.r.CQAdvance(ready)
	r.cq.buf = buf

	var done *request
	r.mu.Lock()
	for _, c := range buf {
		if c.tag&internalTag != 0 {
			continue
		}
		slot := uint32(c.tag)
		q := r.mu.slots[slot]
		r.mu.slots[slot] = nil
		r.mu.free = append(r.mu.free, slot)
		r.mu.inflight--
		if q.complete(c.res) && !r.mu.closed {
			// Short transfer: queue the rest.
			if r.mu.tail == nil {
				r.mu.head = q
			} else {
				r.mu.tail.next = q
			}
			r.mu.tail = q
			continue
		}
		if r.mu.closed && (q.err == unix.ECANCELED || len(q.buf) > 0 && q.err == nil) {
			q.err = ErrClosed // canceled or cut short by Close
		}
		q.next = done
		done = q
	}
	if !r.mu.closed {
		r.fillLocked()
	}
	submit = r.claimSubmitLocked()
	if !submit && done != nil && !r.mu.submitting && !r.mu.closed {
		// Claim the submit loop before waking anyone: the goroutines woken
		// below usually come back at once with their next request, which
		// then waits in the SQ for the caller's next io_uring_enter instead
		// of each making its own (one system call, and one block-layer
		// plug and device notification, for the lot).
		r.mu.submitting = true
		submit = true
	}
	r.checkDrainedLocked()
	r.mu.Unlock()
	r.cq.Unlock()

	for q := done; q != nil; {
		next := q.next
		q.next = nil
		q.finish()
		q = next
	}
	return submit
}

// complete applies a CQE's result to q and reports whether q has more to do.
func (q *request) complete(res int32) (again bool) {
	if res < 0 {
		errno := unix.Errno(-res)
		if errno == unix.EINTR {
			return true
		}
		q.err = errno
		return false
	}
	switch q.kind {
	case reqFsync, reqFdatasync:
		return false
	}
	if res == 0 {
		if q.kind == reqRead {
			q.err = io.EOF
		} else {
			q.err = io.ErrShortWrite
		}
		return false
	}
	q.n += int(res)
	q.buf = q.buf[res:]
	q.off += int64(res)
	return len(q.buf) > 0
}

func (r *ring) checkDrainedLocked() {
	if r.mu.closed && r.mu.inflight == 0 && !r.mu.submitting && !r.mu.drainSent {
		r.mu.drainSent = true
		close(r.drained)
	}
}

// closeGrace is how long Close lets requests in flight finish before it
// cancels them.
const closeGrace = 200 * time.Millisecond

// close fails queued requests, waits for those in flight (canceling them
// after closeGrace: reads of pipes or sockets might never complete), and
// unmaps the ring only when the kernel has returned every buffer.
func (r *ring) close() error {
	r.mu.Lock()
	r.mu.closed = true
	pending := r.mu.head
	r.mu.head, r.mu.tail = nil, nil
	r.checkDrainedLocked()
	r.mu.Unlock()
	for q := pending; q != nil; {
		next := q.next
		q.next = nil
		q.err = ErrClosed
		q.finish()
		q = next
	}
	select {
	case <-r.drained:
	case <-time.After(closeGrace):
		// Still waiting: perhaps a read of a pipe or socket that may never
		// complete. Cancel everything; canceled calls return ErrClosed.
		r.mu.Lock()
		if sqe := r.r.GetSQE(); sqe != nil {
			sqe.Opcode = uring.IORING_OP_ASYNC_CANCEL
			sqe.OpFlags = uring.IORING_ASYNC_CANCEL_ANY
			sqe.Fd = -1
			sqe.UserData = cancelTag
		}
		submit := r.claimSubmitLocked()
		r.mu.Unlock()
		if submit {
			r.submitLoop()
		}
		<-r.drained
	}
	r.efd.Close() // ends reapLoop
	<-r.reaperDone
	return r.r.Close()
}

// rwv2 is preadv2 or pwritev2 with RWF_NOWAIT on one buffer, without the
// allocation of unix.Preadv2.
func rwv2(trap uintptr, fd int, p []byte, off int64) (int, unix.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	var iov unix.Iovec
	iov.Base = unsafe.SliceData(p)
	iov.SetLen(len(p))
	lo, hi := uintptr(off), uintptr(uint64(off)>>(unsafe.Sizeof(uintptr(0))*8-1)>>1)
	n, _, errno := unix.Syscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1, lo, hi, unix.RWF_NOWAIT)
	runtime.KeepAlive(p)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// readHints learns, per descriptor, whether reads keep finding the page
// cache. An entry counts the RWF_NOWAIT probes that succeeded in a row, up
// to hintPlain, from which the descriptor's reads use plain pread(2) and
// only one in hintSample probes; a probe that finds a page missing (EAGAIN)
// sets it back to 0. Entries are indexed by the descriptor, so a number
// reused for another file, or shared with one hintSlots apart, starts from
// the hint of the old one: it costs at most hintSample reads that block in
// pread before the next probe corrects it. The entries are written only
// while a descriptor is being learned, so reads of a learned one share
// their cache line without bouncing it between cores.
type readHints [hintSlots]atomic.Uint32

const (
	hintSlots  = 1 << 12
	hintPlain  = 64 // probes that succeed in a row before plain reads
	hintSample = 64 // plain reads per probe
)

// seededStickyHint is a seeded bug for the tests: a probe that finds a page
// missing leaves the hint as it is.
var seededStickyHint bool

func (h *readHints) of(fd int) *atomic.Uint32 { return &h[uint(fd)%hintSlots] }
