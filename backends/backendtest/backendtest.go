// Package backendtest is a conformance suite for backends.Backend engines, in
// the spirit of testing/fstest: every engine must pass TestBackend.
//
// The suite checks positional reads and writes at random offsets from many
// goroutines against an in-memory model, batches, end-of-file behaviour,
// zero-filling writes past the end, kernel errors kept as unix.Errno, errors
// after Close, O_DIRECT I/O, the io.Reader contract through backends.File
// (testing/iotest.TestReader), and that no engine keeps, reads or writes a
// caller's buffer after the call returned.
//
// Randomised checks log their seed; -backendtest.seed replays one.
package backendtest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/dirstore/dirstore/backends"
	"golang.org/x/sys/unix"
)

var seedFlag = flag.Uint64("backendtest.seed", 0, "seed for backendtest's random checks (0: pick one)")

// TestBackend runs the suite. newBackend must return a new engine each time it
// is called (not the shared Default one): the suite closes what it gets.
func TestBackend(t *testing.T, newBackend func() (backends.Backend, error)) {
	t.Helper()
	open := func(t *testing.T) backends.Backend {
		t.Helper()
		b, err := newBackend()
		if err != nil {
			t.Fatalf("newBackend: %v", err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	tests := []struct {
		name string
		run  func(*testing.T, backends.Backend)
	}{
		{"Model", testModel},
		{"Batch", testBatch},
		{"EOF", testEOF},
		{"ZeroLength", testZeroLength},
		{"WritePastEnd", testWritePastEnd},
		{"Large", testLarge},
		{"Sync", testSync},
		{"Errors", testErrors},
		{"Direct", testDirect},
		{"Reader", testReader},
		{"BufferReturned", testBufferReturned},
		{"BufferReleased", testBufferReleased},
		{"Closed", testClosed},
		{"CloseWhileBusy", testCloseWhileBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open(t)) })
	}
}

func newRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -backendtest.seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// tempFile creates a file holding data and returns its descriptor, opened
// with flag, closed at the end of the test.
func tempFile(t *testing.T, data []byte, flag int) (int, string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(name, flag|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, name
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// testModel runs goroutines doing random reads, writes and batches against a
// model. Each goroutine owns the blocks i%goroutines == id, so the model is
// exact without serialising the goroutines.
func testModel(t *testing.T, b backends.Backend) {
	const (
		block      = 4096
		blocks     = 256
		goroutines = 16
		steps      = 300
	)
	r := newRand(t)
	model := randomBytes(r, block*blocks)
	fd, _ := tempFile(t, model, unix.O_RDWR)
	seeds := make([]uint64, goroutines)
	for i := range seeds {
		seeds[i] = r.Uint64()
	}
	var wg sync.WaitGroup
	errc := make(chan error, goroutines)
	for id := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seeds[id], uint64(id)))
			// span picks a range inside one of this goroutine's blocks.
			span := func() (int64, int) {
				blk := id + goroutines*r.IntN(blocks/goroutines)
				off := r.IntN(block)
				n := 1 + r.IntN(block-off)
				return int64(blk*block + off), n
			}
			for range steps {
				switch r.IntN(3) {
				case 0:
					off, n := span()
					p := randomBytes(r, n)
					if m, err := b.WriteAt(fd, p, off, 0); m != n || err != nil {
						errc <- fmt.Errorf("WriteAt(off=%d, len=%d) = %d, %v", off, n, m, err)
						return
					}
					copy(model[off:], p)
				case 1:
					off, n := span()
					p := make([]byte, n)
					if m, err := b.ReadAt(fd, p, off, 0); m != n || err != nil {
						errc <- fmt.Errorf("ReadAt(off=%d, len=%d) = %d, %v", off, n, m, err)
						return
					}
					if !bytes.Equal(p, model[off:off+int64(n)]) {
						errc <- fmt.Errorf("ReadAt(off=%d, len=%d): wrong bytes", off, n)
						return
					}
				case 2:
					// A batch of reads and writes on distinct blocks of ours.
					k := 1 + r.IntN(blocks/goroutines)
					perm := r.Perm(blocks / goroutines)[:k]
					ops := make([]backends.Op, k)
					for i, j := range perm {
						off := int64((id+goroutines*j)*block + r.IntN(block/2))
						n := 1 + r.IntN(block/2)
						ops[i] = backends.Op{Fd: fd, Off: off, Buf: make([]byte, n)}
						if r.IntN(2) == 0 {
							ops[i].Kind = backends.OpWrite
							ops[i].Buf = randomBytes(r, n)
						}
					}
					if err := b.Submit(ops); err != nil {
						errc <- fmt.Errorf("Submit: %v", err)
						return
					}
					for _, op := range ops {
						if op.N != len(op.Buf) || op.Err != nil {
							errc <- fmt.Errorf("Submit: %v(off=%d, len=%d) = %d, %v", op.Kind, op.Off, len(op.Buf), op.N, op.Err)
							return
						}
						if op.Kind == backends.OpWrite {
							copy(model[op.Off:], op.Buf)
						} else if !bytes.Equal(op.Buf, model[op.Off:op.Off+int64(op.N)]) {
							errc <- fmt.Errorf("Submit: read(off=%d, len=%d): wrong bytes", op.Off, len(op.Buf))
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	got := make([]byte, len(model)+1)
	n, err := b.ReadAt(fd, got, 0, 0)
	if n != len(model) || err != io.EOF {
		t.Fatalf("final ReadAt = %d, %v; want %d, EOF", n, err, len(model))
	}
	if !bytes.Equal(got[:n], model) {
		t.Fatal("file differs from model")
	}
}

// testBatch checks batches bigger than any queue, with reads past the end and
// invalid offsets mixed in.
func testBatch(t *testing.T, b backends.Backend) {
	r := newRand(t)
	const size = 1 << 20
	data := randomBytes(r, size)
	fd, _ := tempFile(t, data, unix.O_RDWR)
	if err := b.Submit(nil); err != nil {
		t.Errorf("Submit(nil) = %v", err)
	}
	ops := make([]backends.Op, 3000)
	for i := range ops {
		off := int64(r.IntN(size - 512))
		ops[i] = backends.Op{Fd: fd, Off: off, Buf: make([]byte, 1+r.IntN(512))}
	}
	ops[100] = backends.Op{Fd: fd, Off: size - 10, Buf: make([]byte, 20)} // crosses the end
	ops[200] = backends.Op{Fd: fd, Off: size + 10, Buf: make([]byte, 20)} // past the end
	ops[300] = backends.Op{Fd: fd, Off: -1, Buf: make([]byte, 20)}        // invalid
	ops[400] = backends.Op{Fd: fd, Off: 5, Buf: nil}                      // empty
	err := b.Submit(ops)
	if err != io.EOF {
		t.Errorf("Submit = %v, want io.EOF (first error in slice order)", err)
	}
	for i, op := range ops {
		switch i {
		case 100:
			if op.N != 10 || op.Err != io.EOF || !bytes.Equal(op.Buf[:10], data[size-10:]) {
				t.Errorf("op crossing the end: %d, %v", op.N, op.Err)
			}
		case 200:
			if op.N != 0 || op.Err != io.EOF {
				t.Errorf("op past the end: %d, %v", op.N, op.Err)
			}
		case 300:
			if op.N != 0 || op.Err == nil || op.Err == io.EOF {
				t.Errorf("op at offset -1: %d, %v; want an error", op.N, op.Err)
			}
		case 400:
			if op.N != 0 || op.Err != nil {
				t.Errorf("empty op: %d, %v", op.N, op.Err)
			}
		default:
			if op.N != len(op.Buf) || op.Err != nil || !bytes.Equal(op.Buf, data[op.Off:op.Off+int64(op.N)]) {
				t.Fatalf("op %d (off=%d, len=%d) = %d, %v or wrong bytes", i, op.Off, len(op.Buf), op.N, op.Err)
			}
		}
	}

	// A batch of writes, then a batch of reads of what they wrote.
	w := make([]backends.Op, 2000)
	for i := range w {
		w[i] = backends.Op{Kind: backends.OpWrite, Fd: fd, Off: int64(i) * 100, Buf: randomBytes(r, 100)}
	}
	if err := b.Submit(w); err != nil {
		t.Fatalf("write batch: %v", err)
	}
	rd := make([]backends.Op, len(w))
	for i := range rd {
		rd[i] = backends.Op{Fd: fd, Off: w[i].Off, Buf: make([]byte, 100)}
	}
	if err := b.Submit(rd); err != nil {
		t.Fatalf("read batch: %v", err)
	}
	for i := range rd {
		if rd[i].N != 100 || !bytes.Equal(rd[i].Buf, w[i].Buf) {
			t.Fatalf("read batch op %d: %d bytes or wrong bytes", i, rd[i].N)
		}
	}
}

func testEOF(t *testing.T, b backends.Backend) {
	const size = 10000
	data := randomBytes(rand.New(rand.NewPCG(1, 2)), size)
	fd, _ := tempFile(t, data, unix.O_RDONLY)
	for _, tc := range []struct {
		off     int64
		len     int
		wantN   int
		wantEOF bool
	}{
		{0, size, size, false},
		{0, size + 1, size, true},
		{size - 1, 1, 1, false},
		{size - 1, 2, 1, true},
		{size, 1, 0, true},
		{size + 100000, 10, 0, true},
		{5000, 10000, 5000, true},
		{size, 0, 0, false},
		{size + 5, 0, 0, false},
	} {
		t.Run(fmt.Sprintf("off=%d,len=%d", tc.off, tc.len), func(t *testing.T) {
			p := make([]byte, tc.len)
			n, err := b.ReadAt(fd, p, tc.off, 0)
			if n != tc.wantN || (err == io.EOF) != tc.wantEOF || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt = %d, %v; want %d, EOF %t", n, err, tc.wantN, tc.wantEOF)
			}
			if !bytes.Equal(p[:n], data[min(tc.off, size):min(tc.off+int64(n), size)]) {
				t.Fatal("wrong bytes")
			}
			ops := []backends.Op{{Fd: fd, Off: tc.off, Buf: make([]byte, tc.len)}}
			b.Submit(ops)
			if ops[0].N != tc.wantN || (ops[0].Err == io.EOF) != tc.wantEOF {
				t.Fatalf("Submit = %d, %v; want %d, EOF %t", ops[0].N, ops[0].Err, tc.wantN, tc.wantEOF)
			}
		})
	}
}

func testZeroLength(t *testing.T, b backends.Backend) {
	fd, _ := tempFile(t, []byte("abc"), unix.O_RDWR)
	for _, off := range []int64{0, 3, 100} {
		if n, err := b.ReadAt(fd, nil, off, 0); n != 0 || err != nil {
			t.Errorf("ReadAt(nil, %d) = %d, %v", off, n, err)
		}
		if n, err := b.WriteAt(fd, []byte{}, off, 0); n != 0 || err != nil {
			t.Errorf("WriteAt(empty, %d) = %d, %v", off, n, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != 3 {
		t.Errorf("size after empty writes = %d, %v; want 3", st.Size, err)
	}
}

func testWritePastEnd(t *testing.T, b backends.Backend) {
	fd, _ := tempFile(t, []byte("abc"), unix.O_RDWR)
	const off = 100000
	if n, err := b.WriteAt(fd, []byte("xyz"), off, 0); n != 3 || err != nil {
		t.Fatalf("WriteAt past the end = %d, %v", n, err)
	}
	got := make([]byte, off+10)
	n, err := b.ReadAt(fd, got, 0, 0)
	if n != off+3 || err != io.EOF {
		t.Fatalf("ReadAt = %d, %v; want %d, EOF", n, err, off+3)
	}
	want := append(append([]byte("abc"), make([]byte, off-3)...), "xyz"...)
	if !bytes.Equal(got[:n], want) {
		t.Fatal("the gap is not zero-filled")
	}
}

// testLarge moves more than any single page, queue slot or fast-path try.
func testLarge(t *testing.T, b backends.Backend) {
	r := newRand(t)
	fd, _ := tempFile(t, nil, unix.O_RDWR)
	data := randomBytes(r, 5<<20+123)
	if n, err := b.WriteAt(fd, data, 7, 0); n != len(data) || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	got := make([]byte, len(data))
	if n, err := b.ReadAt(fd, got, 7, 0); n != len(data) || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("wrong bytes")
	}
}

func testSync(t *testing.T, b backends.Backend) {
	fd, _ := tempFile(t, []byte("abc"), unix.O_RDWR)
	if _, err := b.WriteAt(fd, []byte("def"), 3, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Fsync(fd); err != nil {
		t.Errorf("Fsync = %v", err)
	}
	if err := b.Fdatasync(fd); err != nil {
		t.Errorf("Fdatasync = %v", err)
	}
	// Many at once, as a group commit would.
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 32 {
		wg.Go(func() {
			if err := b.Fdatasync(fd); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d concurrent Fdatasync calls failed", failed.Load())
	}
}

// testErrors checks that kernel errors come back as unix.Errno values.
func testErrors(t *testing.T, b backends.Backend) {
	wfd, _ := tempFile(t, []byte("abc"), unix.O_WRONLY)
	rfd, _ := tempFile(t, []byte("abc"), unix.O_RDONLY)
	p := make([]byte, 3)
	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", what, err, want)
		}
	}
	_, err := b.ReadAt(wfd, p, 0, 0)
	check("read of a write-only descriptor", err, unix.EBADF)
	_, err = b.WriteAt(rfd, p, 0, 0)
	check("write to a read-only descriptor", err, unix.EBADF)
	_, err = b.ReadAt(-1, p, 0, 0)
	check("read of descriptor -1", err, unix.EBADF)
	check("fsync of descriptor -1", b.Fsync(-1), unix.EBADF)
	check("fdatasync of descriptor -1", b.Fdatasync(-1), unix.EBADF)
	if n, err := b.ReadAt(rfd, p, -1, 0); n != 0 || err == nil || err == io.EOF {
		t.Errorf("ReadAt at offset -1 = %d, %v; want an error", n, err)
	}
	if n, err := b.WriteAt(rfd, p, -1, 0); n != 0 || err == nil {
		t.Errorf("WriteAt at offset -1 = %d, %v; want an error", n, err)
	}
	ops := []backends.Op{{Fd: wfd, Buf: p}, {Kind: backends.OpWrite, Fd: rfd, Buf: p}}
	check("Submit", b.Submit(ops), unix.EBADF)
	check("Submit read of a write-only descriptor", ops[0].Err, unix.EBADF)
	check("Submit write to a read-only descriptor", ops[1].Err, unix.EBADF)

	// /dev/full fails every write with ENOSPC.
	full, err := unix.Open("/dev/full", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Logf("no /dev/full (%v): ENOSPC not checked", err)
		return
	}
	defer unix.Close(full)
	n, err := b.WriteAt(full, []byte("x"), 0, 0)
	if n != 0 {
		t.Errorf("WriteAt to /dev/full = %d bytes", n)
	}
	check("write to /dev/full", err, unix.ENOSPC)
}

// testDirect does aligned O_DIRECT I/O with the Direct flag.
func testDirect(t *testing.T, b backends.Backend) {
	r := newRand(t)
	const block, blocks = 4096, 64
	model := randomBytes(r, block*blocks)
	name := filepath.Join(t.TempDir(), "direct")
	if err := os.WriteFile(name, model, 0o644); err != nil {
		t.Fatal(err)
	}
	if oDirect == 0 {
		t.Skip("no O_DIRECT on this system")
	}
	fd, err := unix.Open(name, unix.O_RDWR|oDirect|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("O_DIRECT not supported here: %v", err)
	}
	defer unix.Close(fd)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for id := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(id), 7))
			buf := backends.AlignedBuffer(block)
			for range 100 {
				blk := id + 8*r.IntN(blocks/8)
				off := int64(blk * block)
				if r.IntN(2) == 0 {
					for i := range buf {
						buf[i] = byte(r.Uint32())
					}
					if n, err := b.WriteAt(fd, buf, off, backends.Direct); n != block || err != nil {
						errc <- fmt.Errorf("direct WriteAt(off=%d) = %d, %v", off, n, err)
						return
					}
					copy(model[off:], buf)
				} else {
					if n, err := b.ReadAt(fd, buf, off, backends.Direct); n != block || err != nil {
						errc <- fmt.Errorf("direct ReadAt(off=%d) = %d, %v", off, n, err)
						return
					}
					if !bytes.Equal(buf, model[off:off+block]) {
						errc <- fmt.Errorf("direct ReadAt(off=%d): wrong bytes", off)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	buf := backends.AlignedBuffer(2 * block)
	n, err := b.ReadAt(fd, buf, int64(len(model)-block), backends.Direct)
	if n != block || err != io.EOF {
		t.Errorf("direct read across the end = %d, %v; want %d, EOF", n, err, block)
	}
}

// testReader runs testing/iotest.TestReader on a backends.File using the
// engine.
func testReader(t *testing.T, b backends.Backend) {
	r := newRand(t)
	for _, size := range []int{0, 1, 4095, 100 << 10} {
		t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
			data := randomBytes(r, size)
			_, name := tempFile(t, data, unix.O_RDONLY)
			f, err := backends.OpenFile(name, os.O_RDONLY, 0, &backends.FileOptions{Backend: b})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := iotest.TestReader(f, data); err != nil {
				t.Error(err)
			}
		})
	}
}

const scribble = 0xA5

// changed returns the index of the first byte of p that is not scribble, or -1.
func changed(p []byte) int {
	for i, c := range p {
		if c != scribble {
			return i
		}
	}
	return -1
}

// testBufferReturned checks that once a call returned, the engine neither
// writes into its buffer (reads) nor reads from it (writes) any more: buffers
// are scribbled over right after each call, and checked after more I/O and
// garbage collections.
func testBufferReturned(t *testing.T, b backends.Backend) {
	r := newRand(t)
	const size = 1 << 20
	data := randomBytes(r, size)
	fd, _ := tempFile(t, data, unix.O_RDWR)
	const goroutines, rounds = 16, 64
	bufs := make([][][]byte, goroutines)
	var wg sync.WaitGroup
	for id := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(id), 3))
			for range rounds {
				n := 1 + r.IntN(16<<10)
				off := int64(r.IntN(size + 4096)) // some reads cross the end
				p := make([]byte, n)
				switch r.IntN(3) {
				case 0:
					b.ReadAt(fd, p, off, 0)
				case 1:
					b.Submit([]backends.Op{{Fd: fd, Off: off, Buf: p}, {Fd: fd, Off: off / 2, Buf: p[:n/2]}})
				case 2:
					// Writes own a disjoint region past the data.
					p = append(p[:0], data[:n]...)
					b.WriteAt(fd, p, int64(size+id*(32<<10)), 0)
				}
				for i := range p {
					p[i] = scribble
				}
				bufs[id] = append(bufs[id], p)
			}
		})
	}
	wg.Wait()
	// More traffic and collections, then look at every buffer.
	for range 3 {
		big := make([]byte, 256<<10)
		b.ReadAt(fd, big, 0, 0)
		runtime.GC()
	}
	time.Sleep(20 * time.Millisecond)
	for id, list := range bufs {
		for k, p := range list {
			if i := changed(p); i >= 0 {
				t.Fatalf("goroutine %d call %d: buffer changed at %d after the call returned", id, k, i)
			}
		}
	}
	// The writes must hold the bytes given, not the scribbles made later.
	for id := range goroutines {
		got := make([]byte, 16)
		if _, err := b.ReadAt(fd, got, int64(size+id*(32<<10)), 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if bytes.Count(got, []byte{scribble}) == len(got) {
			t.Fatalf("goroutine %d: the file holds scribbles written to the buffer after WriteAt returned", id)
		}
	}
}

// testBufferReleased checks that the engine keeps no reference to buffers
// after the call: they must become garbage.
func testBufferReleased(t *testing.T, b backends.Backend) {
	fd, _ := tempFile(t, make([]byte, 1<<20), unix.O_RDWR)
	const n = 200
	var freed atomic.Int32
	for i := range n {
		p := make([]byte, 4096+i)
		runtime.AddCleanup(&p[0], func(struct{}) { freed.Add(1) }, struct{}{})
		switch i % 3 {
		case 0:
			b.ReadAt(fd, p, int64(i*4096), 0)
		case 1:
			b.WriteAt(fd, p, int64(i*4096), 0)
		case 2:
			b.Submit([]backends.Op{{Fd: fd, Off: int64(i), Buf: p}})
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for freed.Load() < n && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	// A few may stay reachable from stale stack slots; an engine that keeps
	// buffers (a cache, a pool of requests still pointing at them) keeps many.
	if got := freed.Load(); got < n-5 {
		t.Fatalf("%d of %d buffers were collected after their calls returned", got, n)
	}
}

func testClosed(t *testing.T, b backends.Backend) {
	fd, _ := tempFile(t, []byte("abc"), unix.O_RDWR)
	if err := b.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	p := make([]byte, 3)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want fs.ErrClosed", what, err)
		}
	}
	_, err := b.ReadAt(fd, p, 0, 0)
	check("ReadAt", err)
	_, err = b.WriteAt(fd, p, 0, 0)
	check("WriteAt", err)
	check("Fsync", b.Fsync(fd))
	check("Fdatasync", b.Fdatasync(fd))
	ops := []backends.Op{{Fd: fd, Buf: p}}
	check("Submit", b.Submit(ops))
	check("Submit's op", ops[0].Err)
	check("second Close", b.Close())
}

// testCloseWhileBusy closes the engine under load: every call returns either
// a result or fs.ErrClosed, Close returns after them, and buffers are left
// alone afterwards.
func testCloseWhileBusy(t *testing.T, b backends.Backend) {
	const size = 4 << 20
	fd, _ := tempFile(t, make([]byte, size), unix.O_RDWR)
	const goroutines = 64
	var wg sync.WaitGroup
	var ok, closed atomic.Int64
	errc := make(chan error, goroutines)
	bufs := make([][]byte, goroutines)
	start := make(chan struct{})
	for id := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(id), 5))
			<-start
			for {
				p := make([]byte, 64<<10)
				var err error
				var n int
				if id%2 == 0 {
					n, err = b.ReadAt(fd, p, int64(r.IntN(size-len(p))), 0)
				} else {
					n, err = b.WriteAt(fd, p, int64(r.IntN(size-len(p))), 0)
				}
				for i := range p {
					p[i] = scribble
				}
				bufs[id] = p
				switch {
				case err == nil && n == len(p):
					ok.Add(1)
				case errors.Is(err, fs.ErrClosed):
					closed.Add(1)
					return
				default:
					errc <- fmt.Errorf("call during Close = %d, %v", n, err)
					return
				}
			}
		})
	}
	close(start)
	time.Sleep(20 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	for id, p := range bufs {
		if changed(p) >= 0 {
			t.Fatalf("goroutine %d: buffer changed after its call returned", id)
		}
	}
	t.Logf("%d calls succeeded, %d saw the engine closed", ok.Load(), closed.Load())
	if closed.Load() != goroutines {
		t.Errorf("%d goroutines saw fs.ErrClosed, want %d", closed.Load(), goroutines)
	}
}
