// Package filetest checks that a file type honours the io contracts on every
// path it offers for reading, in the manner of [testing/iotest.TestReader],
// which it runs over each of them. It serves MemFile handles and Streams, so
// they behave alike. Backend files are not checked here: backends/backendtest
// runs testing/iotest over them itself.
//
// A file type is described by an [Opener]: a function that opens a fresh
// reader at offset 0 on a file whose content is known. [TestReaders] runs
// the checks for one content; [Run] runs them in subtests over a standard
// set of contents ([Contents]).
package filetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/iotest"
)

// An Opener opens a new, independent reader positioned at offset 0 on a file
// holding the content given to TestReaders. The value must implement
// io.Reader or io.ReaderAt or both; the checks cover whatever else it
// implements among io.Seeker and io.WriterTo. If it implements io.Closer, it
// is closed after use.
type Opener func() (any, error)

// TestReaders checks every read path of the file that open opens, whose
// content must be content:
//   - "Read": iotest.TestReader over Read alone;
//   - "all": iotest.TestReader over the value with all its methods (Read,
//     Seek, ReadAt), plus checks of Seek errors;
//   - "ReadAt": iotest.TestReader over an io.SectionReader on ReadAt alone,
//     then exact checks of ReadAt at and past the end, with a negative
//     offset, from several goroutines at once, and that it does not move the
//     position used by Read;
//   - "WriteTo": WriteTo from offset 0 and, with Seek, from the middle.
//
// It returns the errors found, joined, each prefixed with its path.
func TestReaders(open Opener, content []byte) error {
	var errs []error
	try := func(path string, check func(f any) error) {
		f, err := open()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: open: %w", path, err))
			return
		}
		if err := check(f); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
		if c, ok := f.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: Close: %w", path, err))
			}
		}
	}

	f, err := open()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	_, isReader := f.(io.Reader)
	_, isSeeker := f.(io.ReadSeeker)
	_, isReaderAt := f.(io.ReaderAt)
	_, isWriterTo := f.(io.WriterTo)
	if c, ok := f.(io.Closer); ok {
		c.Close()
	}
	if !isReader && !isReaderAt {
		return fmt.Errorf("open returned a %T, which is neither an io.Reader nor an io.ReaderAt", f)
	}

	if isReader {
		try("Read", func(f any) error {
			return iotest.TestReader(struct{ io.Reader }{f.(io.Reader)}, content)
		})
		try("all", func(f any) error {
			if err := iotest.TestReader(f.(io.Reader), content); err != nil {
				return err
			}
			if isSeeker {
				return checkSeekErrors(f.(io.ReadSeeker), content)
			}
			return nil
		})
	}
	if isReaderAt {
		try("ReadAt", func(f any) error {
			ra := f.(io.ReaderAt)
			sr := io.NewSectionReader(ra, 0, int64(len(content)))
			if err := iotest.TestReader(sr, content); err != nil {
				return fmt.Errorf("through io.SectionReader: %w", err)
			}
			if err := checkReadAt(ra, content); err != nil {
				return err
			}
			if err := checkParallelReadAt(ra, content); err != nil {
				return err
			}
			if r, ok := f.(io.Reader); ok {
				return checkReadAtKeepsPosition(ra, r, content)
			}
			return nil
		})
	}
	if isWriterTo {
		try("WriteTo", func(f any) error {
			return checkWriteTo(f.(io.WriterTo), content, 0)
		})
		if isSeeker {
			try("Seek+WriteTo", func(f any) error {
				middle := int64(len(content) / 2)
				if _, err := f.(io.Seeker).Seek(middle, io.SeekStart); err != nil {
					return err
				}
				return checkWriteTo(f.(io.WriterTo), content, middle)
			})
		}
	}
	return errors.Join(errs...)
}

// checkSeekErrors checks what iotest.TestReader does not: a seek before the
// start fails and leaves the position alone, and a position past the end
// reads as the end.
func checkSeekErrors(r io.ReadSeeker, content []byte) error {
	size := int64(len(content))
	if pos, err := r.Seek(1, io.SeekStart); pos != 1 || err != nil {
		return fmt.Errorf("Seek(1, SeekStart) = %d, %v, want 1, nil", pos, err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		return errors.New("Seek(-1, SeekStart) succeeded, want an error")
	}
	if _, err := r.Seek(-size-2, io.SeekEnd); err == nil {
		return fmt.Errorf("Seek(%d, SeekEnd) succeeded, want an error", -size-2)
	}
	if pos, err := r.Seek(0, io.SeekCurrent); pos != 1 || err != nil {
		return fmt.Errorf("Seek(0, SeekCurrent) after failed seeks = %d, %v, want 1, nil", pos, err)
	}
	if pos, err := r.Seek(size+10, io.SeekStart); pos != size+10 || err != nil {
		return fmt.Errorf("Seek(%d, SeekStart) = %d, %v, want %d, nil", size+10, pos, err, size+10)
	}
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		return fmt.Errorf("Read(10) past the end = %d, %v, want 0, EOF", n, err)
	}
	return nil
}

// checkReadAt checks ReadAt at offsets and lengths around the start, the
// middle and the end: the bytes, the count, and an error exactly when the
// count is short (io.EOF when the file ends first).
func checkReadAt(ra io.ReaderAt, content []byte) error {
	size := len(content)
	offsets := []int{0, 1, size / 2, size - 1, size, size + 1, size + 4096}
	lengths := []int{0, 1, 7, size / 2, size - 1, size, size + 1, 4096}
	for _, off := range offsets {
		if off < 0 {
			continue
		}
		for _, length := range lengths {
			if length < 0 {
				continue
			}
			p := bytes.Repeat([]byte{0xfe}, length)
			n, err := ra.ReadAt(p, int64(off))
			want := min(length, max(size-off, 0))
			if n != want {
				return fmt.Errorf("ReadAt(%d bytes, %d) = %d, %v, want %d bytes", length, off, n, err, want)
			}
			if lo := min(off, size); !bytes.Equal(p[:n], content[lo:lo+n]) {
				return fmt.Errorf("ReadAt(%d bytes, %d) read %q, want %q", length, off, p[:n], content[lo:lo+n])
			}
			switch {
			case n < length && err != io.EOF:
				return fmt.Errorf("ReadAt(%d bytes, %d) = %d, %v, want %d, EOF", length, off, n, err, n)
			case n == length && err != nil && (err != io.EOF || off+n < size):
				return fmt.Errorf("ReadAt(%d bytes, %d) = %d, %v, want %d, nil", length, off, n, err, n)
			}
		}
	}
	if n, err := ra.ReadAt(make([]byte, 1), -1); n != 0 || err == nil {
		return fmt.Errorf("ReadAt(1 byte, -1) = %d, %v, want 0 and an error", n, err)
	}
	return nil
}

// checkParallelReadAt checks that concurrent ReadAt calls each read the right
// bytes, as io.ReaderAt promises; under the race detector it also checks that
// they do not race.
func checkParallelReadAt(ra io.ReaderAt, content []byte) error {
	const goroutines, reads = 4, 64
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), uint64(len(content))))
			p := make([]byte, 1+len(content)/4)
			for range reads {
				off := rng.IntN(len(content) + 1)
				n, err := ra.ReadAt(p, int64(off))
				want := min(len(p), len(content)-off)
				if n != want || n < len(p) && err != io.EOF || !bytes.Equal(p[:n], content[off:off+n]) {
					errs[g] = fmt.Errorf("parallel ReadAt(%d bytes, %d) = %d, %v, want %d bytes of the content", len(p), off, n, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// checkReadAtKeepsPosition checks that ReadAt does not move the position
// that Read uses.
func checkReadAtKeepsPosition(ra io.ReaderAt, r io.Reader, content []byte) error {
	half := len(content) / 2
	got := make([]byte, half)
	if _, err := io.ReadFull(r, got); err != nil {
		return fmt.Errorf("ReadFull(%d bytes): %w", half, err)
	}
	if _, err := ra.ReadAt(make([]byte, len(content)), 0); err != nil && err != io.EOF {
		return fmt.Errorf("ReadAt of everything: %w", err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("ReadAll after ReadAt: %w", err)
	}
	if !bytes.Equal(rest, content[half:]) {
		return fmt.Errorf("Read after ReadAt returned %d bytes, want the %d bytes from offset %d", len(rest), len(content)-half, half)
	}
	return nil
}

// checkWriteTo checks that WriteTo writes the content from off on, and then
// leaves the reader at the end.
func checkWriteTo(wt io.WriterTo, content []byte, off int64) error {
	var buf bytes.Buffer
	n, err := wt.WriteTo(&buf)
	if err != nil || n != int64(len(content))-off || !bytes.Equal(buf.Bytes(), content[off:]) {
		return fmt.Errorf("WriteTo from offset %d = %d, %v and %d bytes, want %d, nil and the content", off, n, err, buf.Len(), int64(len(content))-off)
	}
	if r, ok := wt.(io.Reader); ok {
		if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			return fmt.Errorf("Read after WriteTo = %d, %v, want 0, EOF", n, err)
		}
	}
	if n, err := wt.WriteTo(&buf); n != 0 || err != nil {
		return fmt.Errorf("WriteTo at the end = %d, %v, want 0, nil", n, err)
	}
	return nil
}

// Contents returns the standard contents of Run: empty, tiny, around a page
// and a few pages long, with runs of zeros among random bytes so that a
// reader returning zeros for data, or data for a hole, is caught.
func Contents() [][]byte {
	sizes := []int{0, 1, 2, 3, 17, 4095, 4096, 4097, 3*4096 + 5, 65536 + 3}
	contents := make([][]byte, len(sizes))
	for i, size := range sizes {
		rng := rand.New(rand.NewPCG(uint64(size), 1))
		b := make([]byte, size)
		for j := range b {
			if j/512%3 != 2 { // every third 512-byte run stays zero
				b[j] = byte(rng.Uint32())
			}
		}
		contents[i] = b
	}
	return contents
}

// Run runs TestReaders in a subtest for each of Contents, named by size
// ("size=4097"). newFile creates a file holding content and returns its
// Opener; it may use t for cleanup and fail t if the file cannot be made.
func Run(t *testing.T, newFile func(t *testing.T, content []byte) Opener) {
	t.Helper()
	for _, content := range Contents() {
		t.Run(fmt.Sprintf("size=%d", len(content)), func(t *testing.T) {
			open := newFile(t, content)
			if err := TestReaders(open, content); err != nil {
				t.Error(err)
			}
		})
	}
}
