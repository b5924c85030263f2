//go:build linux && !purego

package dirstore

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// memfd is the shared memory behind a MemFile after File: a memfd and a
// MAP_SHARED mapping of it. The mapping reserves more address space than
// the file needs, so that the file can grow, from either side, without a
// remap each time; pages past the end of the file are never touched, since
// touching them raises SIGBUS.
type memfd struct {
	fd      int
	mapping []byte    // as returned by unix.Mmap or unix.Mremap: len == cap
	mtime   time.Time // of the memfd at the last refresh
	cleanup runtime.Cleanup
}

// memfdMinReserve is the smallest mapping: address space is cheap on 64-bit
// systems, and the MemFile never touches the pages past the file's end.
const memfdMinReserve = 64 << 20

// memfdMaxRefaults bounds how often an access retries after the file shrank under
// it (which takes another process or the *os.File truncating concurrently).
const memfdMaxRefaults = 8

// memfdReserveFor returns the mapping length for a file of size bytes: a power
// of two at least twice the size, so that a file growing steadily is
// remapped a logarithmic number of times.
func memfdReserveFor(size int64) (int, error) {
	if size > memMaxSize/4 {
		return 0, errMemTooLarge
	}
	n := int64(memfdMinReserve)
	for n < 2*size {
		n *= 2
	}
	return int(n), nil
}

// release unmaps the memory and closes the descriptor.
func (f *memfd) release() {
	if f.mapping != nil {
		unix.Munmap(f.mapping)
		f.mapping = nil
	}
	if f.fd >= 0 {
		unix.Close(f.fd)
		f.fd = -1
	}
}

func (m *MemFile) releaseMappedLocked() {
	f := m.mu.mapped
	f.cleanup.Stop()
	f.release()
	m.mu.mapped = nil
}

// memfdName returns the name to give memfd_create: it shows in /proc as
// /memfd:<name>, and must be short and free of NUL bytes.
func memfdName(name string) string {
	name = strings.ReplaceAll("dirstore:"+name, "\x00", "_")
	if len(name) > 200 {
		name = name[:200]
	}
	return name
}

func (m *MemFile) fileLocked() (*os.File, error) {
	if m.mu.mapped == nil {
		if err := m.toMemfdLocked(); err != nil {
			return nil, err
		}
	}
	fd := m.mu.mapped.fd
	// A fresh open of the memfd gets a file description, and so an offset,
	// of its own; a dup shares the offset with every other dup.
	nfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		nfd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, m.pathError("dup", err)
		}
	}
	return os.NewFile(uintptr(nfd), m.name), nil
}

// toMemfdLocked moves the block from the heap into a new memfd.
func (m *MemFile) toMemfdLocked() error {
	fd, err := unix.MemfdCreate(memfdName(m.name), unix.MFD_CLOEXEC)
	if err != nil {
		return m.pathError("memfd_create", err)
	}
	f := &memfd{fd: fd}
	fail := func(op string, err error) error {
		f.release()
		return m.pathError(op, err)
	}
	data := m.mu.data
	// The kernel copies into fresh pages in bulk; copying through the
	// mapping would take a page fault per page.
	if _, err := memfdPwriteFull(fd, data, 0); err != nil {
		return fail("write", err)
	}
	reserve, err := memfdReserveFor(int64(len(data)))
	if err != nil {
		return fail("mmap", err)
	}
	f.mapping, err = unix.Mmap(fd, 0, reserve, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.mapping = nil
		return fail("mmap", err)
	}
	if len(data) > 0 {
		// Map the pages now, in one call, rather than with a page fault at
		// the first touch of each. Only an optimization: kernels before 5.14
		// refuse it.
		unix.Madvise(f.mapping[:len(data)], unix.MADV_POPULATE_WRITE)
	}
	f.cleanup = runtime.AddCleanup(m, (*memfd).release, f)
	m.mu.mapped = f
	m.mu.data = f.mapping[:len(data)]
	m.releaseAnonLocked()
	return nil
}

// memfdPwriteFull is pwrite(2) until all of p is written or an error.
func memfdPwriteFull(fd int, p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k, err := unix.Pwrite(fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, io.ErrShortWrite
		}
		n += k
	}
	return n, nil
}

// refreshLocked reads the size of the file from the descriptor and makes
// the mapping cover it.
func (m *MemFile) refreshLocked() error {
	f := m.mu.mapped
	var st unix.Stat_t
	for {
		err := unix.Fstat(f.fd, &st)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return err
		}
	}
	if err := m.mapLocked(st.Size); err != nil {
		return err
	}
	m.mu.data = f.mapping[:st.Size]
	f.mtime = time.Unix(st.Mtim.Unix())
	return nil
}

// mapLocked makes the mapping at least size bytes long.
func (m *MemFile) mapLocked(size int64) error {
	f := m.mu.mapped
	if size <= int64(len(f.mapping)) {
		return nil
	}
	reserve, err := memfdReserveFor(size)
	if err != nil {
		return err
	}
	mapping, err := unix.Mremap(f.mapping, reserve, unix.MREMAP_MAYMOVE)
	if err != nil {
		return err
	}
	f.mapping = mapping
	m.mu.data = mapping[:len(m.mu.data)]
	return nil
}

func (m *MemFile) mappedModTimeLocked() time.Time {
	return m.mu.mapped.mtime
}

// readMappedRLocked is ReadAt on the mapping. It is called with the read
// lock held and releases it.
func (m *MemFile) readMappedRLocked(op string, p []byte, off int64) (int, error) {
	d := m.mu.data
	if off <= int64(len(d))-int64(len(p)) {
		// Within the size last seen: the common case, under the read lock.
		if n, ok := memfdCopyGuarded(p, d[off:]); ok {
			m.mu.RUnlock()
			return n, nil
		}
	}
	m.mu.RUnlock()
	if len(p) == 0 {
		return 0, nil
	}

	// The read reaches the end: learn where the end is now.
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return 0, m.pathError(op, fs.ErrClosed)
	}
	for range memfdMaxRefaults {
		if err := m.refreshLocked(); err != nil {
			return 0, m.pathError(op, err)
		}
		d := m.mu.data
		if off >= int64(len(d)) {
			return 0, io.EOF
		}
		if n, ok := memfdCopyGuarded(p, d[off:]); ok {
			if n < len(p) {
				return n, io.EOF
			}
			return n, nil
		}
	}
	return 0, m.pathError(op, unix.EIO)
}

// writeMappedLocked writes p at off into the shared memory.
func (m *MemFile) writeMappedLocked(p []byte, off int64) (int, error) {
	d := m.mu.data
	if off <= int64(len(d))-int64(len(p)) {
		if n, ok := memfdCopyGuarded(d[off:], p); ok {
			return n, nil
		}
		// The file shrank from outside.
		if err := m.refreshLocked(); err != nil {
			return 0, err
		}
	}
	// An extending write goes through pwrite(2), which grows the file to
	// at least off+len(p) but, unlike ftruncate, never cuts off what was
	// written past that through the descriptor meanwhile.
	end := off + int64(len(p))
	if err := m.mapLocked(end); err != nil {
		return 0, err
	}
	n, err := memfdPwriteFull(m.mu.mapped.fd, p, off)
	if end := off + int64(n); end > int64(len(m.mu.data)) {
		m.mu.data = m.mu.mapped.mapping[:end]
	}
	return n, err
}

func (m *MemFile) truncateMappedLocked(size int64) error {
	if size > memMaxSize {
		return errMemTooLarge
	}
	if err := m.mapLocked(size); err != nil {
		return err
	}
	for {
		err := unix.Ftruncate(m.mu.mapped.fd, size)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return err
		}
	}
	m.mu.data = m.mu.mapped.mapping[:size]
	return nil
}

// memfdCopyGuarded is copy(dst, src) where dst or src may be shared memory that
// another process has cut off: the access then raises SIGBUS, which
// memfdCopyGuarded reports as ok == false instead of crashing.
func memfdCopyGuarded(dst, src []byte) (n int, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			n, ok = 0, false
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return copy(dst, src), true
}

// memAnonMin is the capacity from which a MemFile's block moves out of the
// Go heap into an anonymous mapping. Below it, a mapping per file would cost
// more than the copies it saves; above it, growth moves pages instead of
// copying bytes, and the old block is not left for the garbage collector to
// find (and for the heap goal to count twice). (The mapping does not ask for
// transparent huge pages: where the kernel compacts memory to find them,
// the first writes into a fresh mapping took seconds per GiB here.)
const memAnonMin = 4 << 20

// memAnon is an anonymous private mapping that holds a MemFile's block.
type memAnon struct {
	mapping []byte // as returned by unix.Mmap or unix.Mremap: len == cap
	cleanup runtime.Cleanup
	// touched is where the pages that growing writes have faulted in end:
	// the pages past it have never been written by one.
	touched int64
	// noPrefault is set once the kernel refuses MADV_POPULATE_WRITE.
	noPrefault bool
}

func (a *memAnon) release() {
	if a.mapping != nil {
		unix.Munmap(a.mapping)
		a.mapping = nil
	}
}

// memPageRound rounds n up to a multiple of the page size, or returns false
// if that overflows.
func memPageRound(n int64) (int64, bool) {
	page := int64(os.Getpagesize())
	if n > memMaxSize-page {
		return 0, false
	}
	return (n + page - 1) &^ (page - 1), true
}

// growAnonLocked returns the block, grown to capacity bytes (at least) of
// an anonymous mapping, with length size; the bytes of the block before
// its length are kept, those after it read as zeros unless the block was in
// the mapping already and they are stale. It returns false if the system
// refuses the mapping.
func (m *MemFile) growAnonLocked(size, capacity int64) ([]byte, bool) {
	n, ok := memPageRound(capacity)
	if !ok {
		return nil, false
	}
	if a := m.mu.anon; a != nil {
		mapping, err := unix.Mremap(a.mapping, int(n), unix.MREMAP_MAYMOVE)
		if err != nil {
			return nil, false
		}
		a.mapping = mapping
		return mapping[:size], true
	}
	mapping, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, false
	}
	copy(mapping, m.mu.data)
	a := &memAnon{mapping: mapping}
	a.cleanup = runtime.AddCleanup(m, (*memAnon).release, a)
	m.mu.anon = a
	return mapping[:size], true
}

// shrinkAnonLocked cuts the mapping down to a size of size bytes, giving
// the pages past it back to the system, and reports whether it did; it
// does not when the block is on the heap, or when so small a block belongs
// there.
func (m *MemFile) shrinkAnonLocked(size int64) bool {
	a := m.mu.anon
	if a == nil || size < memAnonMin/2 {
		return false
	}
	n, _ := memPageRound(size) // size < len(mapping): no overflow
	mapping, err := unix.Mremap(a.mapping, int(n), 0)
	if err != nil {
		return false
	}
	a.mapping = mapping
	a.touched = min(a.touched, n)
	m.mu.data = mapping[:size]
	return true
}

// prefaultAnonLocked maps in, with one system call, the pages of the
// anonymous mapping from off to end that a growing write is about to
// fill, rather than letting the copy into them take a page fault for each
// (a 1 MiB write would take 256). It does nothing for a block elsewhere.
func (m *MemFile) prefaultAnonLocked(off, end int64) {
	a := m.mu.anon
	if a == nil || a.noPrefault || end <= a.touched {
		return
	}
	page := int64(os.Getpagesize())
	from := max(off, a.touched) &^ (page - 1)
	to := min(end+page-1, int64(len(a.mapping))) &^ (page - 1)
	if to <= from {
		return
	}
	// Only an optimization: kernels before 5.14 refuse it.
	if err := unix.Madvise(a.mapping[from:to], unix.MADV_POPULATE_WRITE); err != nil && err != unix.EINTR {
		a.noPrefault = true
		return
	}
	a.touched = to
}

// releaseAnonLocked unmaps the anonymous mapping, if there is one; the
// block must not be in it any more.
func (m *MemFile) releaseAnonLocked() {
	if a := m.mu.anon; a != nil {
		a.cleanup.Stop()
		a.release()
		m.mu.anon = nil
	}
}
