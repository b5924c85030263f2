//go:build linux

package uring

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setup makes a small ring, or skips when io_uring is unavailable here.
func setup(t testing.TB, entries uint32, flags uint32) *Ring {
	t.Helper()
	r, err := Setup(entries, &Params{Flags: flags})
	if err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestNopRoundTrip(t *testing.T) {
	r := setup(t, 4, 0)
	for i := range 10 { // wraps around the 4-entry rings
		for j := range 3 {
			sqe := r.GetSQE()
			if sqe == nil {
				t.Fatalf("round %d: SQ full after %d entries", i, j)
			}
			sqe.Opcode = IORING_OP_NOP
			sqe.UserData = uint64(i*10 + j)
		}
		if n := r.Flush(); n != 3 {
			t.Fatalf("Flush = %d, want 3", n)
		}
		if n, err := r.Enter(3, 3, IORING_ENTER_GETEVENTS); n != 3 || err != nil {
			t.Fatalf("Enter = %d, %v", n, err)
		}
		if r.CQReady() != 3 {
			t.Fatalf("CQReady = %d, want 3", r.CQReady())
		}
		for j := range uint32(3) {
			if c := r.PeekCQE(j); c.UserData != uint64(i*10+int(j)) || c.Res != 0 {
				t.Fatalf("CQE %d = %+v", j, *c)
			}
		}
		r.CQAdvance(3)
	}
}

func TestRead(t *testing.T) {
	r := setup(t, 8, 0)
	name := filepath.Join(t.TempDir(), "f")
	os.WriteFile(name, []byte("hello, ring"), 0o644)
	fd, err := unix.Open(name, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 32)
	sqe := r.GetSQE()
	sqe.Opcode = IORING_OP_READ
	sqe.Fd = int32(fd)
	sqe.Addr = uint64(uintptr(unsafe.Pointer(&buf[0])))
	sqe.Len = uint32(len(buf))
	sqe.Off = 7
	r.Flush()
	if _, err := r.Enter(1, 1, IORING_ENTER_GETEVENTS); err != nil {
		t.Fatal(err)
	}
	c := r.PeekCQE(0)
	if c.Res != 4 || string(buf[:4]) != "ring" {
		t.Fatalf("read res %d, %q", c.Res, buf[:4])
	}
	r.CQAdvance(1)
	runtime.KeepAlive(buf)
}

// BenchmarkCachedRead compares one 4 KiB read of a file in the page cache by
// pread, by preadv2(RWF_NOWAIT) and by io_uring in batches, from one
// goroutine. It is why the backends uring engine serves page-cache hits
// with preadv2 in the calling goroutine: on this project's machine a ring
// costs more per read than pread, even in batches of 32 with a registered
// file and SINGLE_ISSUER|DEFER_TASKRUN, before any hand-off between
// goroutines.
func BenchmarkCachedRead(b *testing.B) {
	const size = 64 << 20
	name := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(name, make([]byte, size), 0o644); err != nil {
		b.Fatal(err)
	}
	fd, err := unix.Open(name, unix.O_RDONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	off := func() int64 { return int64(rand.IntN(size/4096)) * 4096 }
	p := make([]byte, 4096)

	b.Run("pread", func(b *testing.B) {
		b.SetBytes(4096)
		for range b.N {
			unix.Pread(fd, p, off())
		}
	})
	b.Run("preadv2-nowait", func(b *testing.B) {
		b.SetBytes(4096)
		iov := unix.Iovec{Base: &p[0]}
		iov.SetLen(len(p))
		for range b.N {
			unix.Syscall6(unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1, uintptr(off()), 0, unix.RWF_NOWAIT)
		}
	})
	for _, batch := range []int{1, 32} {
		for _, fixed := range []bool{false, true} {
			b.Run(fmt.Sprintf("ring-batch=%d,fixed=%t", batch, fixed), func(b *testing.B) {
				runtime.LockOSThread() // SINGLE_ISSUER: one thread submits
				defer runtime.UnlockOSThread()
				r := setup(b, 128, IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN)
				rfd := int32(fd)
				var flags uint8
				if fixed {
					fds := []int32{int32(fd)}
					if _, err := r.Register(IORING_REGISTER_FILES, unsafe.Pointer(&fds[0]), 1); err != nil {
						b.Fatal(err)
					}
					rfd, flags = 0, IOSQE_FIXED_FILE
				}
				bufs := make([]byte, batch*4096)
				b.SetBytes(4096)
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					for j := range batch {
						s := r.GetSQE()
						s.Opcode = IORING_OP_READ
						s.Fd, s.Flags = rfd, flags
						s.Addr = uint64(uintptr(unsafe.Pointer(&bufs[j*4096])))
						s.Len = 4096
						s.Off = uint64(off())
					}
					r.Flush()
					if _, err := r.Enter(uint32(batch), uint32(batch), IORING_ENTER_GETEVENTS); err != nil {
						b.Fatal(err)
					}
					n := r.CQReady()
					for k := range n {
						if c := r.PeekCQE(k); c.Res != 4096 {
							b.Fatalf("res %d", c.Res)
						}
					}
					r.CQAdvance(n)
				}
				runtime.KeepAlive(bufs)
			})
		}
	}
}
