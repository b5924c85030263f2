package dirstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dirstore/dirstore"
)

// FuzzMemFile decodes its input into a sequence of operations on a MemFile
// and several handles (open with flags, Read, Write, WriteString, Seek,
// ReadAt, WriteAt, Truncate, ReadFrom, WriteTo, Stat, Close, and File, whose
// descriptor then joins the handles) and runs it three times: on the
// MemFile, on a plain []byte model, and on a real file through *os.File. Every
// result must agree: counts, bytes, sizes and errors (exactly between the
// MemFile and the model, which speaks the io/fs sentinels; by kind against
// the real file, whose errors are errnos).
//
// The real file lives in the fuzz worker's temporary directory and is
// reused across inputs. On ext4 emptying it costs a flush of its blocks
// (auto_da_alloc); TMPDIR=/dev/shm runs several times faster and spares the
// disk.
func FuzzMemFile(f *testing.F) {
	for _, seed := range memFileFuzzSeeds() {
		f.Add(seed)
	}
	path := filepath.Join(f.TempDir(), "reference")
	f.Fuzz(func(t *testing.T, data []byte) {
		runMemFileOps(t, path, data)
	})
}

// Operation codes of the fuzz input: one byte, then the operation's
// arguments, each one byte (h: handle index modulo the handle count, n: a
// length, o: an offset, s: a size, w: a whence) or two (O: a signed
// offset).
const (
	memOpOpen         = iota // flags byte: access mode %3, &4 O_APPEND, &8 O_TRUNC
	memOpClose               // h
	memOpRead                // h n
	memOpWrite               // h n
	memOpWriteStr            // h n
	memOpSeek                // h w O
	memOpReadAt              // h o o n
	memOpWriteAt             // h o o n
	memOpTruncate            // h s s
	memOpReadFrom            // h n
	memOpWriteTo             // h
	memOpStat                // h
	memOpSync                // h
	memOpFileReadAt          // o o n (MemFile.ReadAt)
	memOpFileWriteAt         // o o n (MemFile.WriteAt)
	memOpFileTruncate        // s s (MemFile.Truncate)
	memOpFileSize            // (MemFile.Size)
	memOpFile                // (MemFile.File: its descriptor joins the handles)
	memNumOps
)

const memMaxFuzzHandles = 8

// memFuzzInput reads the operations; past the end it reads zeros.
type memFuzzInput struct{ b []byte }

func (in *memFuzzInput) byte() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

// length: mostly short, sometimes a few KiB, to cross page boundaries.
func (in *memFuzzInput) length() int {
	if c := int(in.byte()); c < 200 {
		return c
	} else {
		return (c - 199) * 173
	}
}

// offset: 16 bits, the lowest 16 values negative.
func (in *memFuzzInput) offset() int64 {
	return int64(in.byte()) | int64(in.byte())<<8 - 16
}

// memFileLike is what a *MemHandle and an *os.File have in common.
type memFileLike interface {
	io.ReadWriteSeeker
	io.ReaderAt
	io.WriterAt
	io.Closer
	io.ReaderFrom
	io.WriterTo
	io.StringWriter
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	Sync() error
}

// memModelHandle is a handle of the model.
type memModelHandle struct {
	pos                         int64
	read, write, append, closed bool
	isOS                        bool // its MemFile side is the *os.File of File
}

// memModel is the []byte the MemFile must behave like, with the io/fs
// sentinels it must return.
type memModel struct {
	data    []byte
	handles []*memModelHandle
}

func (md *memModel) grow(end int64) {
	if end > int64(len(md.data)) {
		md.data = append(md.data, make([]byte, end-int64(len(md.data)))...)
	}
}

func (md *memModel) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fs.ErrInvalid
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= int64(len(md.data)) {
		return 0, io.EOF
	}
	n := copy(p, md.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (md *memModel) writeAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fs.ErrInvalid
	}
	if len(p) == 0 {
		return 0, nil
	}
	md.grow(off + int64(len(p)))
	return copy(md.data[off:], p), nil
}

func (md *memModel) truncate(size int64) error {
	if size < 0 {
		return fs.ErrInvalid
	}
	if size < int64(len(md.data)) {
		md.data = md.data[:size]
	}
	md.grow(size)
	return nil
}

func (h *memModelHandle) check(read, write bool) error {
	switch {
	case h.closed:
		return fs.ErrClosed
	case read && !h.read, write && !h.write:
		return fs.ErrPermission
	}
	return nil
}

// memErrKind names an error for comparison: exactly for MemFile and memModel
// errors, by kind ("error") for errnos.
func memErrKind(err error, exact bool) string {
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "EOF"
	case !exact:
		// os.File checks some arguments before it notices it is closed.
		return "error"
	case errors.Is(err, fs.ErrClosed):
		return "closed"
	case errors.Is(err, fs.ErrPermission):
		return "permission"
	case errors.Is(err, fs.ErrInvalid):
		return "invalid"
	case errors.Is(err, fs.ErrExist):
		return "exist"
	}
	return fmt.Sprintf("unexpected %v", err)
}

// memDiff describes where two byte strings differ, briefly.
func memDiff(a, b []byte) string {
	if bytes.Equal(a, b) {
		return fmt.Sprintf("same %d bytes", len(a))
	}
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(i-8, 0)
	return fmt.Sprintf("%d and %d bytes, first difference at %d: %q... vs %q...",
		len(a), len(b), i, a[lo:min(i+16, len(a))], b[lo:min(i+16, len(b))])
}

// memResult is what one operation returned in one world.
type memResult struct {
	n    int64
	data []byte
	err  error
}

func runMemFileOps(t *testing.T, path string, input []byte) {
	const name = "fuzz.bin"
	ref, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	m := dirstore.NewMemFile(name)
	var md memModel
	var memHandles []memFileLike
	var osHandles []*os.File
	defer func() {
		for _, h := range memHandles {
			h.Close()
		}
		for _, h := range osHandles {
			h.Close()
		}
		ref.Close()
		m.Close()
	}()

	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("after %s:\n"+format, append([]any{strings.Join(log, "\n")}, args...)...)
	}
	// compare checks the three results of an operation. emptyIO marks a
	// zero-length transfer, where os.File makes no system call and so
	// misses a wrong access mode or even a closed file: only the count is
	// compared with it (and, for the descriptor of File, with the model).
	compare := func(mem, mod, real memResult, exact, emptyIO bool) {
		t.Helper()
		if mem.n != mod.n || !bytes.Equal(mem.data, mod.data) || !(emptyIO && !exact) && memErrKind(mem.err, exact) != memErrKind(mod.err, exact) {
			fail("MemFile: %d, %v\nmodel:   %d, %v\n%s", mem.n, mem.err, mod.n, mod.err, memDiff(mem.data, mod.data))
		}
		if mem.n != real.n || !bytes.Equal(mem.data, real.data) || !emptyIO && memErrKind(mem.err, false) != memErrKind(real.err, false) {
			fail("MemFile: %d, %v\nos.File: %d, %v\n%s", mem.n, mem.err, real.n, real.err, memDiff(mem.data, real.data))
		}
		var pe *fs.PathError
		if exact && mem.err != nil && mem.err != io.EOF && (!errors.As(mem.err, &pe) || pe.Path != name) {
			fail("MemFile error %#v is not an *fs.PathError naming %q", mem.err, name)
		}
	}
	checkContent := func() {
		t.Helper()
		got := make([]byte, len(md.data)+1)
		n, err := m.ReadAt(got, 0)
		if n != len(md.data) || err != io.EOF || !bytes.Equal(got[:n], md.data) {
			fail("MemFile.ReadAt of everything: %d, %v; model holds %d bytes\n%s", n, err, len(md.data), memDiff(got[:n], md.data))
		}
		if fi, err := ref.Stat(); err != nil || fi.Size() != int64(len(md.data)) {
			fail("os.File: Stat = %v, %v; model holds %d bytes", fi, err, len(md.data))
		}
		n, _ = ref.ReadAt(got, 0)
		if !bytes.Equal(got[:n], md.data) {
			fail("os.File and model differ:\n%s", memDiff(got[:n], md.data))
		}
	}

	in := &memFuzzInput{b: input}
	files := 0
	for step := 0; len(in.b) > 0 && step < 96; step++ {
		op := int(in.byte()) % memNumOps
		payload := func(n int) []byte {
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(step*7 + i*13 + 1)
			}
			return p
		}
		var hi int
		var mh *memModelHandle
		if op >= memOpClose && op <= memOpSync {
			if len(memHandles) == 0 {
				continue
			}
			hi = int(in.byte()) % len(memHandles)
			mh = md.handles[hi]
		}
		var mem, mod, real memResult
		exact := mh == nil || !mh.isOS
		emptyIO := false
		switch op {
		case memOpOpen:
			flags := in.byte()
			if len(memHandles) == memMaxFuzzHandles {
				continue
			}
			flag := []int{os.O_RDONLY, os.O_WRONLY, os.O_RDWR}[flags%3]
			if flags&4 != 0 {
				flag |= os.O_APPEND
			}
			if flags&8 != 0 {
				flag |= os.O_TRUNC
			}
			log = append(log, fmt.Sprintf("%d: h%d = OpenFile(%#x)", step, len(memHandles), flag))
			h, err := m.OpenFile(flag)
			o, oerr := os.OpenFile(path, flag, 0)
			if err != nil || oerr != nil {
				fail("OpenFile: %v; os: %v", err, oerr)
			}
			memHandles = append(memHandles, h)
			osHandles = append(osHandles, o)
			nh := &memModelHandle{read: flag&3 != os.O_WRONLY, write: flag&3 != os.O_RDONLY, append: flag&os.O_APPEND != 0}
			md.handles = append(md.handles, nh)
			if flag&os.O_TRUNC != 0 {
				md.data = md.data[:0]
			}
			continue

		case memOpFile:
			log = append(log, fmt.Sprintf("%d: h%d = File()", step, len(memHandles)))
			if len(memHandles) == memMaxFuzzHandles || files == 2 {
				continue
			}
			h, err := m.File()
			if errors.Is(err, errors.ErrUnsupported) {
				continue
			}
			o, oerr := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil || oerr != nil {
				fail("File: %v; os: %v", err, oerr)
			}
			files++
			memHandles = append(memHandles, h)
			osHandles = append(osHandles, o)
			md.handles = append(md.handles, &memModelHandle{read: true, write: true, isOS: true})
			continue

		case memOpClose:
			log = append(log, fmt.Sprintf("%d: h%d.Close()", step, hi))
			mem.err = memHandles[hi].Close()
			real.err = osHandles[hi].Close()
			mod.err = mh.check(false, false)
			mh.closed = true

		case memOpRead:
			n := in.length()
			log = append(log, fmt.Sprintf("%d: h%d.Read(%d)", step, hi, n))
			emptyIO = n == 0
			p, q := make([]byte, n), make([]byte, n)
			k, err := memHandles[hi].Read(p)
			mem = memResult{int64(k), p[:k], err}
			k, err = osHandles[hi].Read(q)
			real = memResult{int64(k), q[:k], err}
			if mod.err = mh.check(true, false); mod.err == nil {
				r := make([]byte, n)
				k, err := md.readAt(r, mh.pos)
				if k > 0 && err == io.EOF {
					err = nil
				}
				mh.pos += int64(k)
				mod = memResult{int64(k), r[:k], err}
			}

		case memOpWrite, memOpWriteStr, memOpReadFrom:
			n := in.length()
			p := payload(n)
			what := map[int]string{memOpWrite: "Write", memOpWriteStr: "WriteString", memOpReadFrom: "ReadFrom"}[op]
			log = append(log, fmt.Sprintf("%d: h%d.%s(%d bytes)", step, hi, what, n))
			switch op {
			case memOpWrite:
				k, err := memHandles[hi].Write(p)
				mem = memResult{n: int64(k), err: err}
				k, err = osHandles[hi].Write(p)
				real = memResult{n: int64(k), err: err}
			case memOpWriteStr:
				k, err := memHandles[hi].WriteString(string(p))
				mem = memResult{n: int64(k), err: err}
				k, err = osHandles[hi].WriteString(string(p))
				real = memResult{n: int64(k), err: err}
			case memOpReadFrom:
				// Hide WriteTo, so that ReadFrom reads in chunks.
				emptyIO = n == 0
				k, err := memHandles[hi].ReadFrom(struct{ io.Reader }{bytes.NewReader(p)})
				mem = memResult{n: k, err: err}
				k, err = osHandles[hi].ReadFrom(struct{ io.Reader }{bytes.NewReader(p)})
				real = memResult{n: k, err: err}
			}
			if mod.err = mh.check(false, true); mod.err == nil && n > 0 {
				if mh.append {
					mh.pos = int64(len(md.data))
				}
				k, err := md.writeAt(p, mh.pos)
				mh.pos += int64(k)
				mod = memResult{n: int64(k), err: err}
			}

		case memOpSeek:
			whence := int(in.byte()) % 3
			off := int64(int16(uint16(in.byte())|uint16(in.byte())<<8)) / 8
			log = append(log, fmt.Sprintf("%d: h%d.Seek(%d, %d)", step, hi, off, whence))
			pos, err := memHandles[hi].Seek(off, whence)
			mem = memResult{n: pos, err: err}
			pos, err = osHandles[hi].Seek(off, whence)
			real = memResult{n: pos, err: err}
			if mod.err = mh.check(false, false); mod.err == nil {
				base := []int64{0, mh.pos, int64(len(md.data))}[whence]
				if base+off < 0 {
					mod.err = fs.ErrInvalid
				} else {
					mh.pos = base + off
					mod.n = mh.pos
				}
			}
			if err != nil {
				mem.n, real.n = mod.n, mod.n // the position returned with an error means nothing
			}

		case memOpReadAt, memOpFileReadAt:
			off, n := in.offset(), in.length()
			emptyIO = n == 0
			p, q, r := make([]byte, n), make([]byte, n), make([]byte, n)
			var k int
			var err error
			if op == memOpReadAt {
				log = append(log, fmt.Sprintf("%d: h%d.ReadAt(%d, %d)", step, hi, n, off))
				k, err = memHandles[hi].ReadAt(p, off)
				mem = memResult{int64(k), p[:k], err}
				k, err = osHandles[hi].ReadAt(q, off)
				real = memResult{int64(k), q[:k], err}
				mod.err = mh.check(true, false)
			} else {
				log = append(log, fmt.Sprintf("%d: MemFile.ReadAt(%d, %d)", step, n, off))
				k, err = m.ReadAt(p, off)
				mem = memResult{int64(k), p[:k], err}
				k, err = ref.ReadAt(q, off)
				real = memResult{int64(k), q[:k], err}
			}
			if mod.err == nil {
				k, err := md.readAt(r, off)
				mod = memResult{int64(k), r[:k], err}
			}

		case memOpWriteAt, memOpFileWriteAt:
			off, n := in.offset(), in.length()
			p := payload(n)
			emptyIO = n == 0
			if op == memOpWriteAt {
				log = append(log, fmt.Sprintf("%d: h%d.WriteAt(%d bytes, %d)", step, hi, n, off))
				k, err := memHandles[hi].WriteAt(p, off)
				mem = memResult{n: int64(k), err: err}
				k, err = osHandles[hi].WriteAt(p, off)
				real = memResult{n: int64(k), err: err}
				if mod.err = mh.check(false, true); mod.err == nil && mh.append {
					mod.err = fs.ErrInvalid
				}
			} else {
				log = append(log, fmt.Sprintf("%d: MemFile.WriteAt(%d bytes, %d)", step, n, off))
				k, err := m.WriteAt(p, off)
				mem = memResult{n: int64(k), err: err}
				k, err = ref.WriteAt(p, off)
				real = memResult{n: int64(k), err: err}
			}
			if mod.err == nil {
				k, err := md.writeAt(p, off)
				mod = memResult{n: int64(k), err: err}
			}

		case memOpTruncate, memOpFileTruncate:
			size := in.offset() / 4
			if op == memOpTruncate {
				log = append(log, fmt.Sprintf("%d: h%d.Truncate(%d)", step, hi, size))
				mem.err = memHandles[hi].Truncate(size)
				real.err = osHandles[hi].Truncate(size)
				mod.err = mh.check(false, true)
				if mh.isOS && mem.err == nil {
					// The MemFile sees a shrink from outside at its next
					// look at the size (see File).
					m.Size()
				}
			} else {
				log = append(log, fmt.Sprintf("%d: MemFile.Truncate(%d)", step, size))
				mem.err = m.Truncate(size)
				real.err = ref.Truncate(size)
			}
			if mod.err == nil {
				mod.err = md.truncate(size)
			}

		case memOpWriteTo:
			log = append(log, fmt.Sprintf("%d: h%d.WriteTo()", step, hi))
			var a, b bytes.Buffer
			k, err := memHandles[hi].WriteTo(&a)
			mem = memResult{k, a.Bytes(), err}
			k, err = osHandles[hi].WriteTo(&b)
			real = memResult{k, b.Bytes(), err}
			if mod.err = mh.check(true, false); mod.err == nil {
				if mh.pos < int64(len(md.data)) {
					mod.data = append([]byte(nil), md.data[mh.pos:]...)
					mod.n = int64(len(mod.data))
					mh.pos = int64(len(md.data))
				}
			}

		case memOpStat:
			log = append(log, fmt.Sprintf("%d: h%d.Stat()", step, hi))
			if fi, err := memHandles[hi].Stat(); err == nil {
				mem.n = fi.Size()
			} else {
				mem.err = err
			}
			if fi, err := osHandles[hi].Stat(); err == nil {
				real.n = fi.Size()
			} else {
				real.err = err
			}
			if mod.err = mh.check(false, false); mod.err == nil {
				mod.n = int64(len(md.data))
			}

		case memOpSync:
			// Only the MemFile and the model: an fsync per input would
			// measure the disk.
			log = append(log, fmt.Sprintf("%d: h%d.Sync()", step, hi))
			mem.err = memHandles[hi].Sync()
			mod.err = mh.check(false, false)
			real = mem

		case memOpFileSize:
			log = append(log, fmt.Sprintf("%d: MemFile.Size()", step))
			mem.n = m.Size()
			fi, err := ref.Stat()
			if err != nil {
				t.Fatal(err)
			}
			real.n = fi.Size()
			mod.n = int64(len(md.data))
		}
		compare(mem, mod, real, exact, emptyIO)
		if step%16 == 15 {
			checkContent()
		}
	}
	checkContent()
	if testing.Verbose() {
		t.Logf("%d operations, %d bytes at the end", len(log), len(md.data))
	}
}

// memFileFuzzSeeds returns hand-made inputs that reach every operation and
// the corners of each: holes, O_TRUNC and O_APPEND with several handles,
// reads across the end, errors, and the move to a memfd half-way.
func memFileFuzzSeeds() [][]byte {
	b := func(ops ...[]byte) []byte { return bytes.Join(ops, nil) }
	op := func(code int, args ...byte) []byte { return append([]byte{byte(code)}, args...) }
	const rdonly, wronly, rdwr, app, trunc = 0, 1, 2, 4, 8
	return [][]byte{
		// Native pread/pwrite with a hole.
		b(op(memOpFileWriteAt, 16, 0, 5), op(memOpFileWriteAt, 31, 0, 5), op(memOpFileReadAt, 16, 0, 100),
			op(memOpFileReadAt, 24, 0, 5), op(memOpFileReadAt, 20, 0, 5), op(memOpFileSize)),
		// The raw-I/O walk of pyppin, through three handles.
		b(op(memOpFileWriteAt, 21, 0, 5), op(memOpOpen, rdonly), op(memOpSeek, 0, 2, 0xc8, 0xff), op(memOpRead, 0, 5),
			op(memOpWrite, 0, 5), op(memOpOpen, rdwr), op(memOpSeek, 1, 2, 0xc8, 0xff), op(memOpWrite, 1, 5),
			op(memOpSeek, 1, 0, 0, 0), op(memOpRead, 1, 20), op(memOpOpen, rdwr|trunc), op(memOpRead, 2, 20),
			op(memOpWrite, 2, 3), op(memOpRead, 0, 20), op(memOpClose, 0), op(memOpRead, 0, 1), op(memOpClose, 0)),
		// Appenders, writers and truncation.
		b(op(memOpOpen, wronly|app), op(memOpOpen, rdwr|app), op(memOpOpen, rdwr), op(memOpWrite, 0, 10), op(memOpWrite, 1, 3),
			op(memOpWrite, 2, 4), op(memOpWriteAt, 0, 20, 0, 2), op(memOpWriteAt, 2, 40, 0, 2), op(memOpTruncate, 2, 80, 0),
			op(memOpWrite, 0, 1), op(memOpSeek, 1, 1, 0, 0), op(memOpTruncate, 1, 8, 0), op(memOpWriteStr, 1, 7),
			op(memOpReadFrom, 0, 230), op(memOpStat, 2), op(memOpWriteTo, 2), op(memOpReadAt, 2, 0, 0, 250)),
		// Errors: modes, negative offsets and seeks, closed handles.
		b(op(memOpOpen, rdonly), op(memOpOpen, wronly), op(memOpWrite, 0, 3), op(memOpRead, 1, 3), op(memOpReadAt, 1, 0, 0, 3),
			op(memOpWriteAt, 0, 0, 0, 3), op(memOpReadAt, 0, 3, 0, 3), op(memOpWriteAt, 1, 3, 0, 3), op(memOpSeek, 0, 0, 0xf0, 0xff),
			op(memOpTruncate, 0, 0, 0), op(memOpTruncate, 1, 2, 0), op(memOpWriteTo, 1), op(memOpReadFrom, 0, 5),
			op(memOpClose, 0), op(memOpClose, 0), op(memOpStat, 0), op(memOpSync, 0), op(memOpSeek, 0, 1, 0, 0), op(memOpWrite, 0, 0)),
		// Pages: writes and reads across 4 KiB boundaries, shrinking and growing.
		b(op(memOpOpen, rdwr), op(memOpWriteAt, 0, 0xf0, 0x0f, 250), op(memOpFileTruncate, 0x10, 0x40), op(memOpRead, 0, 255),
			op(memOpFileWriteAt, 0xff, 0x1f, 230), op(memOpFileTruncate, 0x10, 0x30), op(memOpReadAt, 0, 0x00, 0x10, 240),
			op(memOpFileSize), op(memOpWriteTo, 0)),
		// The move to a memfd half-way, with writes through its descriptor.
		b(op(memOpOpen, rdwr), op(memOpWrite, 0, 100), op(memOpFile), op(memOpWrite, 1, 30), op(memOpRead, 0, 50),
			op(memOpSeek, 1, 2, 0, 0), op(memOpWrite, 1, 210), op(memOpRead, 0, 255), op(memOpReadAt, 0, 0, 0, 255),
			op(memOpTruncate, 1, 40, 0), op(memOpRead, 0, 10), op(memOpFileReadAt, 20, 0, 200), op(memOpOpen, wronly|app),
			op(memOpWrite, 2, 20), op(memOpReadAt, 1, 0, 0, 255), op(memOpFile), op(memOpTruncate, 3, 0, 1), op(memOpWriteTo, 3),
			op(memOpOpen, rdonly|trunc), op(memOpStat, 1), op(memOpFileWriteAt, 0, 1, 9), op(memOpRead, 1, 9)),
	}
}
