// Package backends does positional file I/O for any number of goroutines on a
// small, fixed set of OS threads.
//
// In Go, a goroutine blocked in a read or write system call holds an OS
// thread. With many goroutines waiting on slow storage the thread count grows
// without bound, and the runtime stops the program at 10,000 threads. The
// engines here are the answer for streams: OpenStream's and Store.Open's
// Streams read and write through them. The Store's own Get, View, Set and
// SetFrom do not: they read with pread (or a memory map) and write with
// write and writev directly on the value files (internal/datadir), as a
// small value takes only a few system calls.
//
// # Engines
//
// A Backend is an engine. Two exist:
//
//   - sync (NewSync): pread(2) and pwrite(2) in the calling goroutine, on any
//     Unix. It is the reference the others are checked against; it holds a
//     thread per blocked call.
//   - uring (NewUring): Linux io_uring, written on golang.org/x/sys/unix.
//     Goroutines queue requests on a few rings and park on channels; one
//     goroutine per ring waits for completions through an eventfd and Go's
//     netpoller. No thread waits per request. Reads and writes of data in the
//     page cache take a fast path, preadv2/pwritev2 with RWF_NOWAIT in the
//     calling goroutine, and go to the ring only when that would block; a
//     descriptor whose reads keep finding the page cache is read with plain
//     pread, and a lone read that would block waits in pread too.
//     Build with the nouring tag to leave it out.
//
// Default picks the best engine that works on this machine, at run time:
// io_uring may be missing (old kernels, other systems) or denied by a seccomp
// filter (containers), and then Default falls back to sync. The environment
// variable DIRSTORE_BACKEND=sync|uring forces a choice; Info reports the
// engine in use, whether it is truly asynchronous, and why a better one was
// not used.
//
// # Files
//
// File wraps a descriptor with an engine: Open and Wrap make one. It has the
// methods of an *os.File that matter for storage (ReadAt, WriteAt, Read,
// Write, Seek, Sync, Truncate, Stat, Close, Fd), batches (ReadMany,
// WriteMany), and iterators over chunks and lines that start at the File's
// position.
//
// # Concurrency
//
// Backends and the positional methods of File (ReadAt, WriteAt, ReadMany,
// WriteMany) may be called concurrently. Read, Write and Seek share the
// File's position and must not be called concurrently, as with any
// io.ReadSeeker. Operations on overlapping ranges in flight at the same time
// give unspecified results.
//
// # Guarantees
//
// ReadAt and WriteAt follow io.ReaderAt and io.WriterAt exactly: a read
// shorter than asked returns an error (io.EOF at the end of the file); a
// write either writes everything or returns an error; writing past the end
// zero-fills the gap. A nil error from WriteAt means the kernel has the data,
// not that it is durable: Sync (fsync) or Datasync (fdatasync) make it so.
//
// When a call returns, the kernel is done with its buffer and the engine
// keeps no reference to it, on every path, Close included.
//
// Errors are *fs.PathError values that keep the kernel's unix.Errno:
// errors.Is(err, unix.ENOSPC) works, and calls after Close match
// fs.ErrClosed.
//
// # Conformance
//
// Package backendtest is a test suite every engine passes, in the spirit of
// testing/fstest.
package backends
